"""VGGish-compatible log-mel front end, in JAX, from 44.1 kHz audio.

A causal Kaiser-sinc resampler to 16 kHz (`resample`, blocks anchored at F1 frame ends) and
VGGish's 64-band log-mel (`log_mel_rows`); `log_mel_frames` gives each F1 frame's 96 x 64
patch, sharing rows between overlapping frames when `shares_rows` says so, and `frame_input`
builds the `FrontendSpec.frame_input_samples` (43659) samples a frame reads from whole signals;
`VGGishFrontend` is this front end as a `frontend.Frontend` (the 'vggish' and 'small'
embeddings run it).
Filter, log-mel parameters and the row sharing: docs/model.md ("The log-mel front end").
"""

import dataclasses
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from alm_jax import frames as framing
from alm_jax.embeddings import frontend


@dataclasses.dataclass(frozen=True)
class FrontendSpec(frontend.PatchGeometry):
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


# ---------------------------------------------------------------------------
# Resampling
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=8)
def resampler_taps(in_rate: int, out_rate: int, zero_crossings: int, rolloff: float):
  """Causal polyphase windowed-sinc resampler.

  Output sample u of block q (u < up) is the filtered input at position
  `q * down + u * down / up - delay`: the kernel's half-width `delay` later
  than the plain polyphase resampler, so it reads input samples
  `q * down - history ... q * down + down - 1` and nothing later.

  Returns:
    (up, down, history, weights [history + down, up]) as float64 numpy; row i
    weighs input sample `q * down - history + i`.
  """
  g = math.gcd(in_rate, out_rate)
  up, down = out_rate // g, in_rate // g
  cutoff = rolloff * min(in_rate, out_rate) / 2.0  # Hz
  half = zero_crossings * in_rate / (2.0 * cutoff)  # kernel half-width, input samples
  delay = int(math.ceil(half))
  history = 2 * delay
  if history > down:
    raise ValueError(f'Resampler history of {history} input samples exceeds its block of {down}: '
                     'lower config.model.frontend.resample_zero_crossings.')
  if (up - 1) * down / up - delay + half >= down:
    raise ValueError(f'Resampler kernel of {half:.1f} input samples is too short to be causal '
                     f'per block of {down}.')
  offsets = np.arange(-history, down)[:, None] - (np.arange(up) * down / up - delay)[None, :]
  window = np.where(np.abs(offsets) <= half,
                    np.i0(8.6 * np.sqrt(np.clip(1.0 - (offsets / half) ** 2, 0.0, 1.0))) / np.i0(8.6),
                    0.0)
  weights = 2.0 * cutoff / in_rate * np.sinc(2.0 * cutoff / in_rate * offsets) * window
  return up, down, history, weights


@functools.lru_cache(maxsize=8)
def _block_kernel(spec: FrontendSpec):
  """The resampler as a 2-tap convolution over blocks: [2, down, up] (previous block, this block)."""
  up, down, history, weights = resampler_taps(spec.in_rate, spec.out_rate, spec.zero_crossings,
                                              spec.rolloff)
  kernel = np.zeros((2, down, up))
  kernel[0, down - history:] = weights[:history]
  kernel[1] = weights[history:]
  return kernel


def resample(x, spec: FrontendSpec):
  """Causal resampling of whole signals.

  Args:
    x: [..., n] at `spec.in_rate`, n a multiple of the block size `down`
      (441). The first block only provides the history of the second.
  Returns:
    [..., (n // down - 1) * up] at `spec.out_rate`: output block q - 1 is
    computed from input blocks q - 1 (its last `history` samples) and q.
  """
  up, down = spec.ratio
  lead = x.shape[:-1]
  blocks = x.reshape((-1, x.shape[-1] // down, down))
  # Blocks as the channels of a 1-D convolution of width 2 (the block before
  # and this one): XLA's CPU convolution runs this ~2x faster than gathering
  # each block's inputs into one matrix product (measured).
  out = jax.lax.conv_general_dilated(blocks, jnp.asarray(_block_kernel(spec), x.dtype), (1,), 'VALID',
                                     dimension_numbers=('NWC', 'WIO', 'NWC'))
  return out.reshape(lead + (-1,))


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


def log_mel_rows(x16, num_rows, spec: FrontendSpec):
  """Log-mel rows of a 16 kHz signal: row r covers samples [r * hop, r * hop + window).

  Args:
    x16: [..., m] with m >= (num_rows - 1) * hop + window.
    num_rows: rows to compute (may be a symbolic dimension).
  Returns:
    [..., num_rows, n_mels].
  """
  mag = jnp.abs(jnp.fft.rfft(frontend.windowed_rows(x16, num_rows, spec), n=spec.n_fft, axis=-1))
  mel = mag @ jnp.asarray(mel_matrix(spec.n_mels, spec.n_fft // 2 + 1, spec.out_rate, spec.fmin,
                                     spec.fmax), mag.dtype)
  return jnp.log(mel + spec.log_offset)


def shares_rows(hop: int, spec: FrontendSpec) -> bool:
  """Whether F1 frames `hop` input samples apart share their 16 kHz samples and log-mel rows."""
  up, down = spec.ratio
  return hop % down == 0 and (hop // down * up) % spec.hop == 0


def check_frame(f1: int, spec: FrontendSpec):
  """Raises ValueError if an F1 frame of `f1` input samples is too short for one patch."""
  available = int(math.floor(f1 * spec.out_rate / spec.in_rate))
  if available < spec.patch_samples:
    raise ValueError(f'An F1 frame of {f1} samples at {spec.in_rate} Hz holds {available} samples at '
                     f'{spec.out_rate} Hz, fewer than the {spec.patch_samples} one log-mel patch needs; '
                     'raise config.model.f1_ms.')


def log_mel_frames(x, num_frames, hop: int, spec: FrontendSpec, rows_fn=None):
  """Log-mel patches of F1 frames ending every `hop` samples, the last at the end of x.

  Args:
    x: [..., (num_frames - 1) * hop + spec.frame_input_samples] at the input
      rate (`frame_input` builds it from a signal; silence before the signal).
    num_frames: F1 frames (may be a symbolic dimension).
    hop: input samples between the ends of consecutive F1 frames.
    spec: a front end's spec (`PatchGeometry` sizes; its `resampler`, if it
      has one, is the spec `resample` takes).
    rows_fn: (x16, num_rows, spec) -> rows; default VGGish's `log_mel_rows`.
  Returns:
    [..., num_frames, patch_frames, n_mels].
  """
  rows_fn = rows_fn or log_mel_rows
  resampler = getattr(spec, 'resampler', spec)
  x = x.astype(jnp.float32)
  up, down = spec.ratio
  if not shares_rows(hop, spec):
    one = isinstance(num_frames, int) and num_frames == 1
    if not one and hop % down == 0:
      # Frames start on resampler blocks: resample the signal once and cut each frame's samples
      # from it (the same numbers; a 3 s frame every 1 s resamples a third as much).
      x16 = resample(x, resampler)
      length = (spec.frame_input_samples // down - 1) * up
      x16 = framing.frames_ending(x16, num_frames, hop // down * up, length)[..., spec.patch_offset:]
      return rows_fn(x16, spec.patch_frames, spec)
    # One frame: any hop frames it, and frames_ending's cost grows with length / hop.
    hop = spec.frame_input_samples if one else hop
    frames = framing.frames_ending(x, num_frames, hop, spec.frame_input_samples)
    x16 = resample(frames, resampler)[..., spec.patch_offset:]
    return rows_fn(x16, spec.patch_frames, spec)
  rows_per_hop = hop // down * up // spec.hop
  # One resampled signal, one set of rows; patch j is rows [j * rows_per_hop, ... + patch_frames).
  x16 = resample(x, resampler)[..., spec.patch_offset:]
  rows = rows_fn(x16, (num_frames - 1) * rows_per_hop + spec.patch_frames, spec)
  k = -(-spec.patch_frames // rows_per_hop)
  pad = (num_frames - 1 + k) * rows_per_hop - rows.shape[-2]
  rows = jnp.pad(rows, [(0, 0)] * (rows.ndim - 2) + [(0, pad), (0, 0)])
  groups = rows.reshape(rows.shape[:-2] + (num_frames - 1 + k, rows_per_hop, spec.n_mels))
  patches = jnp.concatenate([groups[..., j:j + num_frames, :, :] for j in range(k)], axis=-2)
  return patches[..., :spec.patch_frames, :]


def frame_input(audio, frame_spec, spec: FrontendSpec):
  """The front end's input for every F1 frame of whole signals (see `frames.f1_frames`).

  Args:
    audio: [..., samples].
    frame_spec: `frames.FrameSpec`.
  Returns:
    (x [..., (g - 1) * hop + frame_input_samples], g): the samples up to the
    end of the last F1 frame, left-padded with silence, and the F1 frame count.
  """
  check_frame(frame_spec.f1, spec)
  return framing.frame_signal(audio, frame_spec, spec.frame_input_samples)


@dataclasses.dataclass(frozen=True)
class VGGishFrontend(frontend.Frontend):
  """VGGish's log-mel front end as a `frontend.Frontend` (its shape contract)."""
  spec: FrontendSpec

  @classmethod
  def from_config(cls, model_config) -> 'VGGishFrontend':
    return cls(FrontendSpec.from_config(model_config))

  @property
  def resampler(self) -> FrontendSpec:
    return self.spec

  def resample(self, x):
    return resample(x, self.spec)

  def log_mel_rows(self, x16, num_rows):
    return log_mel_rows(x16, num_rows, self.spec)

  def log_mel_frames(self, x, num_frames, hop: int):
    return log_mel_frames(x, num_frames, hop, self.spec)

  def frame_input(self, audio, frame_spec):
    return frame_input(audio, frame_spec, self.spec)

  def check_frame(self, f1: int) -> None:
    check_frame(f1, self.spec)

  def shares_rows(self, hop: int) -> bool:
    return shares_rows(hop, self.spec)

  # VGGish's mel bands sum magnitudes, not powers: their square scales as the signal's power.
  def mel_power(self, log_mel):
    return jnp.square(jnp.maximum(jnp.exp(log_mel) - self.spec.log_offset, 0.0))

  def log_of_power(self, power):
    return jnp.log(jnp.sqrt(power) + self.spec.log_offset)
