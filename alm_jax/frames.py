"""Multi-rate framing of multitrack audio, and the zero-latency gain shift.

`FrameSpec` holds the F1 (embedding) and F2 (gain) frame sizes and the stride; `f2_frames`
and `f1_frames` cut [..., samples] into [..., frames, f2] and [..., frames, f1] (an F1 frame
ends where the first F2 frame of its group ends, left-padded with silence before the signal),
`zero_latency_shift` applies the gain predicted on F2 frame t to frame t + 1, `smooth_gains`
ramps predicted gains in dB (config.model.gain_smooth_s), and `apply_gains`
mixes [batch, channels, samples] with [batch, channels, f2_frames] gains. The framing diagram,
the padding convention and the front end's frame input: docs/model.md ("Framing").
"""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np


@dataclasses.dataclass(frozen=True)
class FrameSpec:
  """Frame sizes in samples.

  Attributes:
    sample_rate: audio sample rate in Hz.
    f1: samples in an F1 (embedding) frame.
    f2: samples in an F2 (gain) frame.
    stride: F2 frames per F1 frame (a new F1 frame every `stride * f2` samples).
  """
  sample_rate: int
  f1: int
  f2: int
  stride: int

  def __post_init__(self):
    if self.f2 <= 0 or self.f1 < self.f2:
      raise ValueError(f'Need 0 < F2 <= F1 frame size, got F1={self.f1}, F2={self.f2} samples.')
    if self.stride < 1:
      raise ValueError(f'F1 stride must be >= 1 F2 frame, got {self.stride}.')

  @classmethod
  def from_config(cls, model_config):
    """Builds the spec from `config.model` (frame sizes in milliseconds)."""
    sr = int(model_config.sample_rate)
    return cls(
        sample_rate=sr,
        f1=ms_to_samples(model_config.f1_ms, sr),
        f2=ms_to_samples(model_config.f2_ms, sr),
        stride=int(model_config.f1_stride))

  def num_f2_frames(self, num_samples: int) -> int:
    return num_samples // self.f2

  def num_f1_frames(self, num_f2_frames: int) -> int:
    return -(-num_f2_frames // self.stride)

  def f1_end(self, group: int) -> int:
    """Sample index one past the end of F1 frame `group`."""
    return (group * self.stride + 1) * self.f2


def ms_to_samples(ms: float, sample_rate: int) -> int:
  # 975 ms at 44.1 kHz is 42997.5 samples: round half up so the frame covers it.
  return int(ms * sample_rate / 1000.0 + 0.5)


def f2_frames(audio, spec: FrameSpec):
  """[..., samples] -> [..., f2_frames, f2]; the tail that is not a whole frame is dropped."""
  t = spec.num_f2_frames(audio.shape[-1])
  return audio[..., :t * spec.f2].reshape(audio.shape[:-1] + (t, spec.f2))


def f1_frames(audio, spec: FrameSpec):
  """[..., samples] -> [..., f1_frames, f1], left-padded with silence (docs/model.md)."""
  x, g = frame_signal(audio, spec, spec.f1)
  return frames_ending(x, g, spec.stride * spec.f2, spec.f1)


def frame_signal(audio, spec: FrameSpec, length: int):
  """The samples that windows of `length` ending with each F1 frame read.

  Args:
    audio: [..., samples].
    length: samples per window, ending where its F1 frame ends (f1 for the
      frames themselves, more for a front end with history).
  Returns:
    (x [..., (g - 1) * stride * f2 + length], g): the signal up to the end of
    the last F1 frame, left-padded with silence, and the F1 frame count g.
  """
  t = spec.num_f2_frames(audio.shape[-1])
  g = spec.num_f1_frames(t)
  end = spec.f1_end(g - 1)
  before = length - spec.f2  # samples of the first window before its frame's end
  if before < 0:  # windows shorter than an F2 frame: the signal's start is never read
    return audio[..., -before:end], g
  return jnp.pad(audio[..., :end], [(0, 0)] * (audio.ndim - 1) + [(before, 0)]), g


def frames_ending(x, num_frames, hop: int, length: int):
  """Windows of `length` samples ending every `hop` samples, the last at the end of x.

  Args:
    x: [..., (num_frames - 1) * hop + length].
  Returns:
    [..., num_frames, length]: window j is x[..., j * hop : j * hop + length].
  """
  k = -(-length // hop)  # hops a window overlaps
  x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(k * hop - length, 0)])
  hops = x.reshape(x.shape[:-1] + (num_frames - 1 + k, hop))
  pieces = [hops[..., j:j + num_frames, :] for j in range(k)]
  return jnp.concatenate(pieces, axis=-1)[..., k * hop - length:]


def lag_problem(lag: int, stride: int):
  """Why an F1 lag (config.model.f1_lag) cannot be, or None: 0, or 0 < lag < stride."""
  if lag and not 0 < lag < stride:
    return (f'config.model.f1_lag={lag} must be below config.model.f1_stride={stride}: an F1 '
            'frame must be in force before the next one ends.')
  return None


def f1_index(num_f2_frames: int, spec: FrameSpec, lag: int = 0):
  """[f2_frames] int: the F1 frame used by each F2 frame; -1 before the first is in force.

  F1 frame g ends with F2 frame g * stride and is in force from F2 frame g * stride + lag
  (config.model.f1_lag: the frames its embedding's work is spread over, docs/streaming.md).
  """
  return (jnp.arange(num_f2_frames) - lag) // spec.stride


def frame_rms(frames, eps: float = 1e-12):
  """[..., n] -> [...]: root mean square of each frame."""
  return jnp.sqrt(jnp.mean(jnp.square(frames), axis=-1) + eps)


def zero_latency_shift(gains, initial_gain: float):
  """Applies the gain predicted on F2 frame t to frame t + 1.

  Args:
    gains: [..., f2_frames] predicted gains.
    initial_gain: gain for frame 0, for which no prediction exists yet.
  Returns:
    [..., f2_frames] gains to multiply the audio with.
  """
  first = jnp.full(gains.shape[:-1] + (1,), initial_gain, gains.dtype)
  return jnp.concatenate([first, gains[..., :-1]], axis=-1)


def smoothing_rate(time_constant_s: float, spec: FrameSpec) -> float:
  """The one-pole rate per F2 frame of a time constant in seconds (1.0: no smoothing)."""
  if time_constant_s <= 0:
    return 1.0
  return float(1.0 - math.exp(-spec.f2 / (time_constant_s * spec.sample_rate)))


_NOT_SET_DB = -1000.0  # no earlier gain to ramp from: a frame's gain starts where it is


def smooth_gains(gains, previous, rate: float):
  """A causal gain ramp: predicted gains [..., t] -> one-pole smoothed in dB [..., t].

  s[t] = s[t - 1] + rate * (dB(gains[t]) - s[t - 1]), from s[-1] = dB(previous [...]). A zero
  gain (a padded or muted channel) stays zero and the ramp restarts after it: a channel that
  comes in starts at its own gain, not from silence. rate 1.0 returns `gains`.
  """
  if rate >= 1.0:
    return gains
  gains = gains.astype(jnp.float32)
  on = gains > 0
  db = 20.0 * jnp.log10(jnp.maximum(gains, 1e-20))
  start = jnp.where(previous > 0, 20.0 * jnp.log10(jnp.maximum(previous, 1e-20)), _NOT_SET_DB)

  def step(s, x):
    x_db, x_on = x
    s = jnp.where(x_on, jnp.where(s > _NOT_SET_DB, s + rate * (x_db - s), x_db), _NOT_SET_DB)
    return s, s

  _, s = jax.lax.scan(step, start.astype(jnp.float32),
                      (jnp.moveaxis(db, -1, 0), jnp.moveaxis(on, -1, 0)))
  s = jnp.moveaxis(s, 0, -1)
  return jnp.where(on, jnp.power(10.0, jnp.maximum(s, -400.0) / 20.0), 0.0)


def apply_gains(audio, gains, channel_mask, spec: FrameSpec):
  """Gains each channel's F2 frames and sums the channels.

  Args:
    audio: [batch, channels, samples].
    gains: [batch, channels, f2_frames].
    channel_mask: [batch, channels] bool; masked channels contribute nothing.
    spec: the frame sizes.
  Returns:
    mix [batch, f2_frames * f2].
  """
  frames = f2_frames(audio, spec)  # [b, c, t, f2]
  g = jnp.where(channel_mask[..., None], gains, 0.0).astype(frames.dtype)
  mix = jnp.einsum('bctn,bct->btn', frames, g)
  return mix.reshape(mix.shape[0], -1)


def stack(arrays, axis: int):
  """np/jnp.stack(arrays, axis) as a concatenation of expanded arrays.

  JAX has a `stack` primitive that jax2onnx cannot convert (inside a scan or a cond it fails the
  whole export), so whatever an exported graph computes stacks through this. numpy in, numpy out.
  """
  xp = jnp if any(isinstance(a, jax.Array) for a in arrays) else np
  return xp.concatenate([xp.expand_dims(a, axis) for a in arrays], axis=axis)
