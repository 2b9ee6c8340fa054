"""Multi-rate framing of multitrack audio, and the zero-latency gain shift.

Time is cut into non-overlapping F2 frames of `f2` samples. Every F2 frame `t`
is given the F1 frame (the embedding model's input, `f1` samples) of its group
`g = t // stride`. That F1 frame *ends where F2 frame `g * stride` ends*, so the
first F2 frame of a group is the last `f2` samples of its F1 frame and the next
`stride - 1` F2 frames reuse it:

    F2 frames:  |t0|t1|t2|t3|t4|t5|t6|t7| ...            (MR: 50 ms each)
    F1 frame 0: ..........|t0|                           (975 ms, ends with t0)
    F1 frame 1: ........................|t6|             (ends with t6, 300 ms later)

Hence the gain predicted on F2 frame `t` depends on no audio after the end of
frame `t`. Single rate is the special case `f1 == f2`, `stride == 1`.

The first F1 frames reach back before the start of the signal (in MR the first
one would start 925 ms before sample 0). They are **left-padded with digital
silence**, as a console that has been running on silent inputs would see; no
audio from the future is used to fill them. The model therefore produces a gain
from the very first F2 frame on, at the cost of a degraded embedding for the
first 975 ms. Samples after the last whole F2 frame are dropped: the mix has
`num_f2_frames * f2` samples.

The front end (`alm_jax.frontend`) reads each F1 frame's 975 ms plus its causal
resampler's history, `FrontendSpec.frame_input_samples` (43659) samples ending
with the frame, again silence before the signal; `frontend.frame_input` builds
that input for whole signals.
"""

import dataclasses

import jax.numpy as jnp


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
  """[..., samples] -> [..., f1_frames, f1], left-padded with silence (see module doc)."""
  num_samples = audio.shape[-1]
  t = spec.num_f2_frames(num_samples)
  g = spec.num_f1_frames(t)
  pad_left = spec.f1 - spec.f2
  hop = spec.stride * spec.f2
  # A frame of f1 samples spans k hops (the last one partly): gather them by
  # shifted reshapes, which XLA lowers to copies instead of a large gather.
  k = -(-spec.f1 // hop)
  total = (g - 1 + k) * hop
  # Right padding is never inside a returned frame: the last one ends at
  # sample ((g - 1) * stride + 1) * f2 <= t * f2.
  padded = jnp.pad(audio[..., :t * spec.f2],
                   [(0, 0)] * (audio.ndim - 1) + [(pad_left, max(0, total - pad_left - t * spec.f2))])
  padded = padded[..., :total]
  hops = padded.reshape(padded.shape[:-1] + (g - 1 + k, hop))
  pieces = [hops[..., j:j + g, :] for j in range(k)]
  frames = jnp.concatenate(pieces, axis=-1)
  return frames[..., :spec.f1]


def f1_index(num_f2_frames: int, spec: FrameSpec):
  """[f2_frames] int: the F1 frame used by each F2 frame."""
  return jnp.arange(num_f2_frames) // spec.stride


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
