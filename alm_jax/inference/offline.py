"""Offline mixing of arrays with any mixer, dispatched on its capabilities.

Everything here takes the mixer built once where the command started (a
`protocol.LoadedMixer`: mixer, parameters, config), never a config to build
one from; compiled engines are cached by the config they were built from
(`cached`, the one compile cache, shared with `streaming`).

Causal mixers are mixed chunk by chunk (`ChunkedMixer`): one jitted
`Mixer.step` per chunk of whole F1 hops, the state carried between chunks, so
the result equals one step over the whole signal. Per-segment mixers (DMC-OG)
are mixed segment by segment (`SegmentMixer`, `Mixer.mix_segments`),
non-causally as published. Both cut the signal into equal pieces, complete
the last with silence (a causal mixer's earlier outputs cannot change; the
segment mean ignores silence), dispatch every piece to the device and fetch
the results once (`_mix_in_pieces`), so one compilation per (batch,
channels) serves every length. The mix keeps every input sample: the
trailing partial F2 frame gets its gain like any other, and `gains` has
ceil(samples / f2) frames. Details: docs/inference.md.
"""

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from alm_jax import checks
from alm_jax.models import compiler_options
from alm_jax.models import protocol

DEFAULT_CHUNK_SECONDS = 9.6  # 32 MR hops: big enough to amortise dispatch, small enough for RAM


class SettingsError(ValueError):
  """A mixing setting that does not fit the checkpoint's model."""


# ---- one compile cache ----------------------------------------------------------------------

_CACHE: dict = {}


def cached(kind: str, config, *key, make):
  """`make()` once per (kind, config, *key): mixers of the same model share their compilations.

  The one compile cache of inference: offline engines and streams (`streaming`) alike.
  """
  full_key = (kind, config.to_json_best_effort(sort_keys=True)) + key
  if full_key not in _CACHE:
    _CACHE[full_key] = make()
  return _CACHE[full_key]


def _put(tree):
  # Every argument committed to one device: jit keys its cache on where
  # arguments live, so numpy params and restored (committed) params would
  # otherwise compile twice.
  return jax.device_put(tree, jax.local_devices()[0])


def _mix_in_pieces(mix_piece, carry, audio, size: int, f2: int, *, pad_last: bool = True):
  """Pad, put, loop, get, trim: mixes audio [b, c, n] in pieces of `size` samples.

  Args:
    mix_piece: (carry, piece [b, c, size]) -> (carry, outputs): `gains` [b, c, size / f2] and
      `mix` [b, size], and from a stereo mixer `pans` [b, c, size / f2] and `stereo`
      [b, 2, size]; already jitted; it only dispatches.
    carry: the device state before the first piece.
    pad_last: complete the last piece with silence (one compile for every
      length); False mixes it at its own length, so the carry after it is the
      state at the end of the audio.
  Returns:
    (the outputs for the whole audio as numpy: `mix` [b, n], `gains` [b, c, ceil(n / f2)],
    and `pans`, `stereo` [b, 2, n] from a stereo mixer; the last carry).
  """
  n = audio.shape[-1]
  outputs = []
  for start in range(0, n, size):
    piece = audio[..., start:start + size]
    if pad_last and piece.shape[-1] < size:
      piece = np.pad(piece, [(0, 0), (0, 0), (0, size - piece.shape[-1])])
    carry, out = mix_piece(carry, _put(piece))
    # Fetched piece by piece in the background: the host keeps only the outputs,
    # never a chunk's intermediate arrays, so memory is bounded by the song's mix.
    outputs.append(out)
  outputs = jax.device_get(outputs)  # one transfer: the loop only dispatched
  # Per-sample outputs keep n samples, per-frame ones ceil(n / f2) frames.
  keep = {k: n if k in ('mix', 'stereo') else -(-n // f2) for k in outputs[0]}
  return {k: np.concatenate([o[k] for o in outputs], axis=-1)[..., :keep[k]]
          for k in outputs[0]}, carry


def _checked(mixer, audio, channel_mask):
  audio = np.asarray(audio, np.float32)
  channel_mask = np.asarray(channel_mask, bool)
  checks.check_shapes(audio.shape, channel_mask.shape, 1, mixer.capabilities.max_channels)
  return audio, channel_mask


# ---- causal mixers ---------------------------------------------------------------------------


class ChunkedMixer:
  """Mixes arrays of any length chunk by chunk with one jitted `Mixer.step`.

  One compilation per distinct (batch, channels) shape: lengths never cause a
  recompilation. Callers that pad batch and channels to fixed sizes (the CLI)
  compile once.
  """

  def __init__(self, loaded: protocol.LoadedMixer, chunk_seconds: float = DEFAULT_CHUNK_SECONDS):
    self.mixer = loaded.mixer
    self.mixer.refuse('chunk')
    caps = self.mixer.capabilities
    self.chunk_samples = max(1, math.ceil(chunk_seconds * caps.sample_rate / caps.hop)) * caps.hop
    # A stereo mixer's step also gives its pans and stereo mix (protocol.Mixer.step_stereo).
    self._step = jax.jit(self.mixer.step_stereo if caps.stereo else self.mixer.step,
                         donate_argnums=(1,), compiler_options=compiler_options(loaded.config))

  @property
  def num_compiles(self) -> int:
    return self._step._cache_size()  # pylint: disable=protected-access

  def __call__(self, params, audio, channel_mask, *, state=None, return_state: bool = False):
    """Mixes audio [b, c, n] (numpy) -> dict(mix [b, n], gains [b, c, ceil(n / f2)]) as numpy.

    A stereo mixer's dict also holds `pans` [b, c, ceil(n / f2)] and `stereo` [b, 2, n].
    With `return_state`, returns (outputs, state) and n must be whole F1 hops:
    the state after the last sample, from which a later call with `state`
    continues the same song (a long show mixed in parts equals one call).
    """
    protocol.check_params_convention(params)
    audio, channel_mask = _checked(self.mixer, audio, channel_mask)
    b, c, n = audio.shape
    caps = self.mixer.capabilities
    if return_state and n % caps.hop:
      raise ValueError(f'To carry the state on, mix whole F1 hops ({caps.hop} samples) per call; '
                       f'got {n} samples.')
    params, mask = _put(params), _put(channel_mask)
    start = _put(self.mixer.init_state(b, c) if state is None else state)
    if caps.stereo:
      mix_piece = lambda st, piece: self._step(params, st, piece, mask)
    else:
      def mix_piece(st, piece):
        st, gains, mix = self._step(params, st, piece, mask)
        return st, {'gains': gains, 'mix': mix}
    out, state = _mix_in_pieces(mix_piece, start, audio, self.chunk_samples, caps.f2,
                                pad_last=not return_state)
    return (out, state) if return_state else out


def get_mixer(loaded: protocol.LoadedMixer,
              chunk_seconds: float = DEFAULT_CHUNK_SECONDS) -> ChunkedMixer:
  """A cached `ChunkedMixer`, so repeated calls reuse its compilation."""
  return cached('chunked', loaded.config, float(chunk_seconds),
                make=lambda: ChunkedMixer(loaded, chunk_seconds))


def mix_whole(mixer: protocol.Mixer, params, audio, channel_mask):
  """Mixes whole signals as one step from the initial state (traceable; the export's serve function).

  Args:
    mixer: a built `protocol.Mixer`.
    audio: [batch, channels, samples], any samples >= 1 (may be symbolic).
    channel_mask: [batch, channels] bool.
  Returns:
    dict with `mix` [batch, samples] and `gains` [batch, channels, ceil(samples / f2)]; a
    stereo mixer's also `pans` [batch, channels, ceil(samples / f2)] and `stereo`
    [batch, 2, samples].
  """
  mixer.refuse('chunk')
  caps = mixer.capabilities
  b, c, n = audio.shape
  padded_n = caps.hop * ((n + caps.hop - 1) // caps.hop)  # symbolic-friendly ceil
  padded = jnp.pad(audio.astype(jnp.float32), [(0, 0), (0, 0), (0, padded_n - n)])
  frames = (n + caps.f2 - 1) // caps.f2
  if caps.stereo:
    _, out = mixer.step_stereo(params, mixer.init_state(b, c), padded, channel_mask.astype(bool))
    return {'mix': out['mix'][:, :n], 'gains': out['gains'][..., :frames],
            'pans': out['pans'][..., :frames], 'stereo': out['stereo'][..., :n]}
  _, gains, mix = mixer.step(params, mixer.init_state(b, c), padded, channel_mask.astype(bool))
  return {'mix': mix[:, :n], 'gains': gains[..., :frames]}


# ---- per-segment mixers ----------------------------------------------------------------------


def frames_per_segment(loaded: protocol.LoadedMixer, segment_seconds: float | None = None) -> int:
  """F2 frames per segment of a per-segment mixer.

  Args:
    segment_seconds: the segment length; None: the training segment,
      `config.data.segment_seconds`. Rounded down to whole F2 frames, as the
      training segments are framed.
  Raises:
    SettingsError: a segment shorter than one F1 frame, which the model cannot embed.
  """
  caps = loaded.capabilities
  seconds = float(loaded.config.data.segment_seconds if segment_seconds is None
                  else segment_seconds)
  count = int(round(seconds * caps.sample_rate)) // caps.f2
  if count * caps.f2 < caps.f1:
    raise SettingsError(
        f'A segment of {seconds:g} s holds {count} whole F2 frames ({count * caps.f2} samples), '
        f'less than one F1 frame ({caps.f1} samples): give --segment_seconds >= '
        f'{-(-caps.f1 // caps.f2) * caps.f2 / caps.sample_rate:g}.')
  return count


def describe_per_segment(loaded: protocol.LoadedMixer, segment_seconds: float | None = None) -> str:
  """One line for the log: how a per-segment mixer mixes, and that it is not causal."""
  caps = loaded.capabilities
  count = frames_per_segment(loaded, segment_seconds)
  return (f'per-segment model ({caps.description}), NON-CAUSAL as published: each '
          f'{count * caps.f2 / caps.sample_rate:g} s segment ({count} F2 frames) is mixed with one '
          'gain per channel computed from the whole segment, future samples included, so it '
          'cannot run live; gains jump at segment boundaries. The last partial segment is '
          'completed with silence, which the segment mean leaves out.')


def mix_segments_whole(mixer: protocol.Mixer, params, audio, channel_mask, segment_frames: int):
  """Whole signals with a per-segment mixer, completed with silence to whole segments (traceable)."""
  mixer.refuse('segments')
  f2 = mixer.capabilities.f2
  size = int(segment_frames) * f2
  n = audio.shape[-1]
  padded_n = size * ((n + size - 1) // size)  # symbolic-friendly ceil
  padded = jnp.pad(audio.astype(jnp.float32), [(0, 0), (0, 0), (0, padded_n - n)])
  out = mixer.mix_segments(params, padded, channel_mask.astype(bool), segment_frames)
  return {'mix': out['mix'][:, :n], 'gains': out['gains'][..., :(n + f2 - 1) // f2]}


class SegmentMixer:
  """Mixes arrays of any length with a per-segment mixer, one segment per jitted call."""

  def __init__(self, loaded: protocol.LoadedMixer, segment_seconds: float | None = None):
    self.mixer = loaded.mixer
    self.mixer.refuse('segments')
    self.config = loaded.config
    self.segment_frames = frames_per_segment(loaded, segment_seconds)
    self.segment_samples = self.segment_frames * self.mixer.capabilities.f2
    self._mix = jax.jit(functools.partial(mix_segments_whole, self.mixer,
                                          segment_frames=self.segment_frames),
                        compiler_options=compiler_options(loaded.config))

  @property
  def num_compiles(self) -> int:
    return self._mix._cache_size()  # pylint: disable=protected-access

  def __call__(self, params, audio, channel_mask):
    """Mixes audio [b, c, n] (numpy) -> dict(mix [b, n], gains [b, c, ceil(n / f2)]) as numpy."""
    protocol.check_params_convention(params)
    audio, channel_mask = _checked(self.mixer, audio, channel_mask)
    params, mask = _put(params), _put(channel_mask)

    def piece_fn(carry, piece):
      return carry, self._mix(params, piece, mask)

    return _mix_in_pieces(piece_fn, None, audio, self.segment_samples,
                          self.mixer.capabilities.f2)[0]


def get_segment_mixer(loaded: protocol.LoadedMixer,
                      segment_seconds: float | None = None) -> SegmentMixer:
  """A cached `SegmentMixer`, so repeated calls reuse its compilation."""
  return cached('segments', loaded.config, frames_per_segment(loaded, segment_seconds),
                make=lambda: SegmentMixer(loaded, segment_seconds))


# ---- dispatch --------------------------------------------------------------------------------


def get_offline_mixer(loaded: protocol.LoadedMixer, *,
                      chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
                      segment_seconds: float | None = None):
  """The cached offline engine the mixer's capabilities call for (chunked or per-segment)."""
  if loaded.capabilities.per_segment:
    return get_segment_mixer(loaded, segment_seconds)
  if segment_seconds is not None:
    loaded.mixer.refuse('segments')
  return get_mixer(loaded, chunk_seconds)


def mix_arrays(loaded: protocol.LoadedMixer, audio, channel_mask, *,
               chunk_seconds: float = DEFAULT_CHUNK_SECONDS, segment_seconds: float | None = None):
  """Mixes a batch of multitrack signals with the engine the mixer's capabilities call for.

  Args:
    loaded: the mixer and its parameters (`restore.load_mixer`, `models.load`).
    audio: [batch, channels, samples] float numpy at the model's rate, >= 1 sample.
    channel_mask: [batch, channels] bool, False for padded channels.
    chunk_seconds: chunk length (rounded up to whole F1 hops); causal mixers only.
    segment_seconds: per-segment mixers only: the segment (None: the training segment).
  Returns:
    dict with `mix` [batch, samples] and `gains` [batch, channels, ceil(samples / f2)], numpy.
  Raises:
    ValueError: NaN/Inf audio, a batch element without an active channel, bad
      shapes or more channels than the mixer allows; UnsupportedModelError for
      segment_seconds given to a causal mixer.
  """
  checks.check_values(audio, channel_mask)
  return get_offline_mixer(loaded, chunk_seconds=chunk_seconds,
                           segment_seconds=segment_seconds)(loaded.params, audio, channel_mask)
