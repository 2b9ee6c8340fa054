"""VGGish-compatible log-mel front end, in JAX, from 44.1 kHz F1 frames.

Keeping the front end inside the model lets an exported mixer take raw waveform.
Each F1 frame is processed on its own, so no sample outside the frame (and in
particular none from the future) reaches the features:

1. Resample to 16 kHz inside the frame with a Kaiser-windowed sinc
   (`zero_crossings` lobes each side, cut-off `rolloff * 8 kHz`, beta 8.6;
   the frame is zero-extended at both edges). The ratio 160/441 has 160 phases,
   so the resampler is one dense matmul per 441-sample input block.
2. VGGish's log-mel (tensorflow/models research/audioset/vggish): periodic Hann
   window of 400 samples, hop 160, FFT 512, magnitude, 64 HTK mel bands
   125-7500 Hz (DC bin zeroed), `log(mel + 0.01)`.

A 975 ms frame gives exactly one 96 x 64 patch.
"""

import dataclasses
import functools
import math

import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class FrontendSpec:
  in_rate: int = 44100
  out_rate: int = 16000
  window: int = 400
  hop: int = 160
  n_fft: int = 512
  n_mels: int = 64
  fmin: float = 125.0
  fmax: float = 7500.0
  log_offset: float = 0.01
  patch_frames: int = 96
  zero_crossings: int = 16
  rolloff: float = 0.945

  @classmethod
  def from_config(cls, model_config):
    fe = model_config.frontend
    out_rate = int(fe.sample_rate)
    return cls(
        in_rate=int(model_config.sample_rate), out_rate=out_rate,
        window=int(round(fe.window_ms * out_rate / 1000)),
        hop=int(round(fe.hop_ms * out_rate / 1000)),
        n_fft=int(fe.n_fft), n_mels=int(fe.n_mels), fmin=float(fe.fmin), fmax=float(fe.fmax),
        log_offset=float(fe.log_offset), patch_frames=int(fe.patch_frames),
        zero_crossings=int(fe.resample_zero_crossings), rolloff=float(fe.resample_rolloff))

  @property
  def patch_samples(self) -> int:
    """16 kHz samples needed for one patch (15600 for VGGish)."""
    return (self.patch_frames - 1) * self.hop + self.window


# ---------------------------------------------------------------------------
# Resampling
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def resampler_matrices(in_rate: int, out_rate: int, zero_crossings: int, rolloff: float):
  """Polyphase windowed-sinc resampler as block matrices.

  Output sample m sits at input position m * in_rate / out_rate. With
  `up, down = out_rate / g, in_rate / g` the positions repeat every `up`
  outputs and `down` inputs, so output block q (outputs q*up ... q*up+up-1)
  reads only input samples q*down - pad ... q*down + down + extra.

  Returns:
    (up, down, pad, weights [pad + down + extra, up]) as float64 numpy.
  """
  g = math.gcd(in_rate, out_rate)
  up, down = out_rate // g, in_rate // g
  cutoff = rolloff * min(in_rate, out_rate) / 2.0  # Hz
  # Half-width of the kernel in input samples.
  half = zero_crossings * in_rate / (2.0 * cutoff)
  pad = int(math.ceil(half))
  extra = int(math.ceil(half)) + 1
  n_in = pad + down + extra
  positions = np.arange(up) * down / up  # input positions of a block's outputs
  taps = np.arange(n_in) - pad  # input offsets relative to the block start
  d = taps[:, None] - positions[None, :]  # [n_in, up]
  x = 2.0 * cutoff / in_rate * d
  window = np.where(np.abs(d) <= half,
                    np.i0(8.6 * np.sqrt(np.clip(1.0 - (d / half) ** 2, 0.0, 1.0))) / np.i0(8.6), 0.0)
  weights = 2.0 * cutoff / in_rate * np.sinc(x) * window
  return up, down, pad, weights


def resample(frames, num_out: int, spec: FrontendSpec):
  """[..., n_in] at spec.in_rate -> [..., num_out] at spec.out_rate, within each frame."""
  up, down, pad, weights = resampler_matrices(spec.in_rate, spec.out_rate, spec.zero_crossings,
                                              spec.rolloff)
  n_blocks = -(-num_out // up)
  k = -(-weights.shape[0] // down)  # input blocks each output block reads
  total = (n_blocks - 1 + k) * down
  n_in = frames.shape[-1]
  x = jnp.pad(frames, [(0, 0)] * (frames.ndim - 1) + [(pad, max(0, total - pad - n_in))])[..., :total]
  blocks = x.reshape(x.shape[:-1] + (n_blocks - 1 + k, down))
  w = np.zeros((k * down, up))
  w[:weights.shape[0]] = weights
  w = jnp.asarray(w.reshape(k, down, up), dtype=frames.dtype)
  out = sum(jnp.einsum('...qd,du->...qu', blocks[..., j:j + n_blocks, :], w[j]) for j in range(k))
  return out.reshape(out.shape[:-2] + (n_blocks * up,))[..., :num_out]


# ---------------------------------------------------------------------------
# Log-mel
# ---------------------------------------------------------------------------


def hertz_to_mel(f):
  return 1127.0 * np.log(1.0 + np.asarray(f, np.float64) / 700.0)


@functools.lru_cache(maxsize=8)
def mel_matrix(n_mels: int, n_bins: int, sample_rate: int, fmin: float, fmax: float):
  """[n_bins, n_mels] triangular HTK mel weights, as VGGish's mel_features builds them."""
  nyquist = sample_rate / 2.0
  if not 0.0 <= fmin < fmax <= nyquist:
    raise ValueError(f'Need 0 <= fmin < fmax <= {nyquist} Hz, got {fmin}, {fmax}.')
  bins_mel = hertz_to_mel(np.linspace(0.0, nyquist, n_bins))
  edges = np.linspace(hertz_to_mel(fmin), hertz_to_mel(fmax), n_mels + 2)
  lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
  lower_slope = (bins_mel[:, None] - lower[None]) / (center - lower)[None]
  upper_slope = (upper[None] - bins_mel[:, None]) / (upper - center)[None]
  weights = np.maximum(0.0, np.minimum(lower_slope, upper_slope))
  weights[0, :] = 0.0  # VGGish drops the DC bin
  return weights


def periodic_hann(n: int):
  return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def log_mel_patch(frames16k, spec: FrontendSpec):
  """[..., patch_samples] 16 kHz -> [..., patch_frames, n_mels] log-mel."""
  idx = np.arange(spec.patch_frames)[:, None] * spec.hop + np.arange(spec.window)[None, :]
  x = frames16k[..., idx] * jnp.asarray(periodic_hann(spec.window), frames16k.dtype)
  mag = jnp.abs(jnp.fft.rfft(x, n=spec.n_fft, axis=-1))
  mel = mag @ jnp.asarray(mel_matrix(spec.n_mels, spec.n_fft // 2 + 1, spec.out_rate, spec.fmin,
                                     spec.fmax), mag.dtype)
  return jnp.log(mel + spec.log_offset)


def log_mel(f1_frames, spec: FrontendSpec):
  """[..., f1] 44.1 kHz F1 frames -> [..., patch_frames, n_mels] VGGish log-mel patches.

  Raises:
    ValueError: if an F1 frame is too short to hold one patch.
  """
  n_in = f1_frames.shape[-1]
  available = int(math.floor(n_in * spec.out_rate / spec.in_rate))
  if available < spec.patch_samples:
    raise ValueError(f'An F1 frame of {n_in} samples at {spec.in_rate} Hz holds {available} samples at '
                     f'{spec.out_rate} Hz, fewer than the {spec.patch_samples} one log-mel patch needs; '
                     'raise config.model.f1_ms.')
  x16 = resample(f1_frames.astype(jnp.float32), spec.patch_samples, spec)
  return log_mel_patch(x16, spec)
