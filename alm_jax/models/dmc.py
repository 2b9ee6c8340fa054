"""The Differentiable Mixing Console (DMC) baseline, gains only, in the ALM framework.

Steinmetz et al., ICASSP 2021: a shared embedding per channel, a masked mean over channels as
context, and an MLP whose sigmoid is mapped to a dB gain, mix = sum_c gain[c] * audio[c] for
audio [b, c, n]. `DMC` is the flax module (`build_module`); `build_mixer` gives the per-frame
model (`config.dmc_per_frame`, DMC-B-0L, causal with `zero_latency`) the ALM's
`stepping.StagedMixer` and the per-segment one (DMC-OG, non-causal as published) a
`SegmentDMC` mixed by `mix_by_segments`. The model, both rates and how they mix and export:
docs/baselines.md ("The model", "DMC-OG", "DMC-B-0L").
"""

from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from alm_jax import checks
from alm_jax import embeddings
from alm_jax import frames
from alm_jax.models import protocol
from alm_jax.models import stepping
from alm_jax.models.alm import compute_dtype


def masked_channel_mean(x, channel_mask):
  """x [b, c, ..., d], channel_mask [b, c] bool -> mean over the active channels [b, 1, ..., d].

  Padded channels get weight 0, so they cannot leak into the context whatever
  audio they hold.
  """
  m = channel_mask.astype(bool).reshape(channel_mask.shape + (1,) * (x.ndim - 2))
  total = jnp.sum(jnp.where(m, x, 0.0), axis=1, keepdims=True)
  count = jnp.maximum(jnp.sum(m, axis=1, keepdims=True), 1).astype(x.dtype)
  return total / count


def gain_from_unit(p, min_gain_db: float, max_gain_db: float):
  """Maps p in (0, 1) linearly to [min_gain_db, max_gain_db] dB, then to a linear gain."""
  gain_db = min_gain_db + p * (max_gain_db - min_gain_db)
  return jnp.power(10.0, gain_db / 20.0)


def segment_mean(emb, f1_frames, channel_mask):
  """Per-channel mean of the embeddings over a segment's F1 frames.

  F1 frames in which every active channel is digital silence (exact zeros: the
  padding that makes batches and songs the same length) are left out, so padding
  a segment with silence does not change its gains.

  Args:
    emb: [b, c, g, d] embeddings of the F1 frames.
    f1_frames: [b, c, g, f1] the frames they came from.
    channel_mask: [b, c] bool.
  Returns:
    [b, c, 1, d] in emb's dtype.
  """
  peak = jnp.max(jnp.abs(f1_frames), axis=-1)  # [b, c, g]
  sounding = jnp.any(channel_mask[..., None] & (peak > 0), axis=1)  # [b, g]
  w = sounding.astype(jnp.float32)[:, None, :, None]  # [b, 1, g, 1]
  total = jnp.sum(emb.astype(jnp.float32) * w, axis=2, keepdims=True)
  count = jnp.maximum(jnp.sum(w, axis=2, keepdims=True), 1.0)
  return (total / count).astype(emb.dtype)


class PostProcessor(nn.Module):
  """DMC's post-processor: Dense -> PReLU -> dropout per hidden layer, then Dense(1).

  Returns the pre-sigmoid logit, [..., 1].
  """
  hidden: Sequence[int]
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, deterministic: bool = True):
    for i, f in enumerate(self.hidden):
      x = nn.Dense(f, dtype=self.dtype, name=f'dense{i}')(x)
      x = nn.PReLU(negative_slope_init=0.25, name=f'prelu{i}')(x)
      x = nn.Dropout(self.dropout)(x, deterministic=deterministic)
    return nn.Dense(1, dtype=self.dtype, name=f'dense{len(self.hidden)}')(x)


class DMC(nn.Module):
  """The Differentiable Mixing Console (mono gain only).

  Attributes:
    config: `config.model` as a FrozenConfigDict (see configs/dmc_og.py).
  Parameter tree top level: embedding, post_processor.
  """
  config: ml_collections.FrozenConfigDict

  def setup(self):
    cfg = self.config
    if cfg.gain_activation != 'sigmoid_db':
      raise ValueError(f"DMC maps a sigmoid to dB: set config.model.gain_activation = 'sigmoid_db', "
                       f'got {cfg.gain_activation!r}.')
    if not cfg.min_gain_db < cfg.max_gain_db:
      raise ValueError(f'config.model.min_gain_db ({cfg.min_gain_db}) must be below '
                       f'config.model.max_gain_db ({cfg.max_gain_db}).')
    dtype = compute_dtype(cfg)
    self.frame_spec = frames.FrameSpec.from_config(cfg)
    self.front = embeddings.frontend_for(cfg)  # the embedding's own front end
    self.embedding = embeddings.build_embedding(cfg.embedding, dtype)
    self.post_processor = PostProcessor(tuple(cfg.mlp_dims), cfg.dmc_dropout, dtype)

  def _check_per_frame(self, stage: str):
    if not self.config.dmc_per_frame:
      raise ValueError(
          f'DMC.{stage}: this DMC predicts one gain per segment (config.model.dmc_per_frame=False, '
          'DMC-OG), from embeddings averaged over the whole input, so it cannot run frame by frame '
          'or chunk by chunk. Mix whole segments with the model call, or whole songs segment by '
          'segment with alm_jax.models.dmc.mix_by_segments; see docs/baselines.md.')

  # ---- per-stage methods, the interface of AiLiveMixer's, for chunked mixing -----

  def embed(self, signal, num_frames, channel_mask, deterministic: bool = True):
    """Front-end input (see `AiLiveMixer.embed`) -> embeddings [b, c, g, dim]; channels do not interact yet."""
    del channel_mask, deterministic  # the context is formed in `head`
    self._check_per_frame('embed')
    return self._embed(signal, num_frames)

  def embed_patches(self, patches, channel_mask, deterministic: bool = True):
    """Log-mel patches [b, c, g, rows, bands] -> embeddings [b, c, g, dim] (`embed` after its front end)."""
    del channel_mask, deterministic
    self._check_per_frame('embed_patches')
    lead = patches.shape[:-2]
    e = self.embedding_of(patches.reshape((-1,) + patches.shape[-2:]))
    return e.reshape(lead + e.shape[-1:])

  def embedding_of(self, patches):
    """Log-mel patches [n, rows, bands] -> the embedding network's outputs [n, dim]."""
    return self.embedding(patches)

  def contextualize(self, e, channel_mask, deterministic: bool = True):
    """The identity: DMC forms its context in `head`."""
    del channel_mask, deterministic
    return e

  def condition(self, emb, f2_frames, channel_mask, deterministic: bool = True):
    """The identity on the embeddings [b, c, t, d]: DMC does not see the frames' audio."""
    del f2_frames, channel_mask, deterministic
    self._check_per_frame('condition')
    return emb

  def recur(self, carry, x):
    """The identity: DMC has no recurrence. carry [b, c, h] is passed through."""
    self._check_per_frame('recur')
    return carry, x

  def head(self, y, channel_mask, deterministic: bool = True):
    """Embeddings [b, c, t, d] -> predicted gains [b, c, t] (float32, 0 on masked channels)."""
    self._check_per_frame('head')
    return self._gains(y, channel_mask, deterministic)

  @property
  def carry_size(self) -> int:
    return int(self.config.gru_hidden)

  def initial_carry(self, batch: int, channels: int):
    return jnp.zeros((batch, channels, self.carry_size), jnp.float32)

  # ---- the computation -------------------------------------------------------

  def _embed(self, signal, num_frames):
    """Front-end input [b, c, (g - 1) * hop + frame_input_samples] -> embeddings [b, c, g, dim]."""
    hop = self.frame_spec.stride * self.frame_spec.f2
    patches = self.front.log_mel_frames(signal, num_frames, hop)  # [b, c, g, rows, bands]
    lead = patches.shape[:-2]
    e = self.embedding_of(patches.reshape((-1,) + patches.shape[-2:]))
    return e.reshape(lead + e.shape[-1:])

  def _gains(self, emb, channel_mask, deterministic: bool):
    """Embeddings [b, c, g, d] -> linear gains [b, c, g] (float32, 0 on masked channels)."""
    context = jnp.broadcast_to(masked_channel_mean(emb, channel_mask), emb.shape)
    logit = self.post_processor(jnp.concatenate([emb, context], axis=-1), deterministic)
    p = jax.nn.sigmoid(logit[..., 0].astype(jnp.float32))
    g = gain_from_unit(p, self.config.min_gain_db, self.config.max_gain_db)
    return jnp.where(channel_mask[..., None], g, 0.0)

  def __call__(self, audio, channel_mask, train: bool = False):
    """Mixes whole signals.

    Args:
      audio: [batch, channels, samples] at config.sample_rate. In per-segment
        mode the whole input is one segment.
      channel_mask: [batch, channels] bool, False for padded channels.
      train: enables dropout (needs a 'dropout' rng).
    Returns:
      dict with `pred_gains` [b, c, t] (gain predicted for each F2 frame; one
      value per channel repeated over t in per-segment mode), `gains` [b, c, t]
      (gain applied to each F2 frame: `pred_gains` shifted by one frame in
      zero-latency mode) and `mix` [b, t * f2].
    """
    spec = self.frame_spec
    checks.check_shapes(audio.shape, channel_mask.shape, spec.f1)
    channel_mask = channel_mask.astype(bool)
    audio = audio.astype(jnp.float32)
    t = spec.num_f2_frames(audio.shape[-1])

    emb = self._embed(*self.front.frame_input(audio, spec))  # [b, c, g, d]
    if self.config.dmc_per_frame:
      pred = self._gains(emb, channel_mask, not train)  # [b, c, g]
      pred = jnp.take(pred, frames.f1_index(t, spec), axis=2)  # [b, c, t]
    else:
      seg = segment_mean(emb, frames.f1_frames(audio, spec), channel_mask)  # [b, c, 1, d]
      pred = self._gains(seg, channel_mask, not train)  # [b, c, 1]
      pred = jnp.broadcast_to(pred, pred.shape[:2] + (t,))
    gains = (frames.zero_latency_shift(pred, self.config.initial_gain)
             if self.config.zero_latency else pred)
    gains = jnp.where(channel_mask[..., None], gains, 0.0)
    return {'pred_gains': pred, 'gains': gains,
            'mix': frames.apply_gains(audio, gains, channel_mask, spec)}


def mix_by_segments(model: DMC, params, audio, channel_mask, segment_frames: int):
  """Mixes signals of any length with a per-segment DMC (DMC-OG), one segment per model call.

  The signal is cut into consecutive segments of `segment_frames` F2 frames,
  each mixed with its own gains, as the model was trained (one gain per channel
  per segment). The last segment is completed with silence, which the segment
  mean ignores. Samples after the last whole F2 frame are dropped, as in the
  model call. Traceable; one compilation per input shape.

  Args:
    model: a DMC with `config.dmc_per_frame = False` and no zero latency.
    params: its parameters (the 'params' collection).
    audio: [batch, channels, samples].
    channel_mask: [batch, channels] bool.
    segment_frames: F2 frames per segment; training used
      `round(config.data.segment_seconds * sample_rate) // f2`.
  Returns:
    dict with `gains` [b, c, t] (constant within each segment) and `mix`
    [b, t * f2], t = samples // f2.
  """
  cfg = model.config
  if cfg.dmc_per_frame or cfg.zero_latency:
    raise ValueError('mix_by_segments is for per-segment models without zero latency (DMC-OG: '
                     'config.model.dmc_per_frame=False, zero_latency=False); mix per-frame models '
                     'with alm_jax.mix.')
  spec = frames.FrameSpec.from_config(cfg)
  seg = int(segment_frames) * spec.f2
  if seg < spec.f1:
    raise ValueError(f'segment_frames={segment_frames} gives segments of {seg} samples, shorter than '
                     f'one F1 frame ({spec.f1} samples).')
  b, c, n = audio.shape
  t = n // spec.f2
  k = -(-t // int(segment_frames))
  x = jnp.pad(audio[..., :t * spec.f2].astype(jnp.float32), [(0, 0), (0, 0), (0, k * seg - t * spec.f2)])
  x = x.reshape(b, c, k, seg).transpose(0, 2, 1, 3).reshape(b * k, c, seg)
  out = model.apply({'params': params}, x, jnp.repeat(channel_mask, k, axis=0))
  gains = out['gains'].reshape(b, k, c, segment_frames).transpose(0, 2, 1, 3).reshape(b, c, -1)
  return {'gains': gains[..., :t], 'mix': out['mix'].reshape(b, k * seg)[:, :t * spec.f2]}


# ---- the mixer protocol -------------------------------------------------------------------------

NOT_CAUSAL = ('This is a per-segment DMC (DMC-OG, config.model.dmc_per_frame=False): each gain depends '
              'on the whole segment, future samples included, so it cannot be mixed live, block by '
              'block or chunk by chunk, nor exported as a streaming step. Mix or export it offline '
              '(segment by segment, python -m alm_jax.mix / export without --streaming); see '
              'docs/baselines.md.')


def build_module(model_config) -> DMC:
  """The trainable module (`config.model` frozen, with `dtype`)."""
  return DMC(model_config)


def capabilities(model_config) -> protocol.Capabilities:
  spec = frames.FrameSpec.from_config(model_config)
  per_frame = bool(model_config.dmc_per_frame)
  refusal = None
  if not per_frame:
    refusal = NOT_CAUSAL
  elif not model_config.zero_latency:
    refusal = ('config.model.zero_latency is False: the gain predicted on an F2 frame is applied to '
               'that same frame, one F2 frame of latency; streaming needs zero_latency=True.')
  return protocol.Capabilities(
      description='DMC-B-0L' if per_frame else 'DMC-OG', sample_rate=spec.sample_rate,
      f1=spec.f1, f2=spec.f2, stride=spec.stride, max_channels=int(model_config.max_channels),
      causal=per_frame, zero_latency=per_frame and bool(model_config.zero_latency),
      per_segment=not per_frame, initial_gain=float(model_config.initial_gain),
      streaming_refusal=refusal)


class SegmentDMC:
  """`protocol.Mixer` of a per-segment DMC (DMC-OG): `mix_segments` only, `step` refused."""

  def __init__(self, model_config):
    if model_config.zero_latency:
      raise protocol.UnsupportedModelError(
          'This per-segment DMC has config.model.zero_latency=True, which has no defined segment '
          'mix (the one gain of a segment would be applied to the next F2 frame); DMC-OG is '
          'trained with zero_latency=False (configs/dmc_og.py).')
    self.module = build_module(model_config)
    self.capabilities = capabilities(model_config)

  def refuse(self, use: str) -> None:
    if use in ('stream', 'chunk'):
      raise protocol.UnsupportedModelError(NOT_CAUSAL)

  def init_state(self, batch: int, channels: int):
    self.refuse('stream')

  def step(self, params, state, chunk, channel_mask):
    self.refuse('stream')

  def gains_in_force(self, state):
    self.refuse('stream')

  def mix_segments(self, params, audio, channel_mask, segment_frames: int) -> dict:
    """Whole segments [b, c, k * segment_frames * f2] -> {'mix' [b, n], 'gains' [b, c, n / f2]}."""
    return mix_by_segments(self.module, params, audio, channel_mask, segment_frames)


def build_mixer(model_config):
  if model_config.dmc_per_frame:
    return stepping.StagedMixer(build_module(model_config), capabilities(model_config),
                                embedding_dim=int(model_config.embedding.dim))
  return SegmentDMC(model_config)
