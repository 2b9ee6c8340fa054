"""The front-end protocol: raw waveform in, an embedding's log-mel patches out, one per F1 frame.

Every embedding runs on its own front end (`Embedding.frontend(model_config)`), an
instance of `Frontend` below. The mixers, the streaming step and the exports drive a
front end only through this base class, so a new embedding with a new front end is
one subclass, never a branch. `PatchGeometry` holds the sizes every log-mel front end
here derives from its rates, window, hop and patch length.
"""

import abc
import math
from typing import Any

import jax.numpy as jnp
import numpy as np


def periodic_hann(n: int):
  return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(n) / n)


def windowed_rows(x16, num_rows, spec):
  """Hann-windowed rows of a resampled signal: row r is samples [r * hop, r * hop + window).

  Args:
    x16: [..., m] (shorter than (num_rows - 1) * hop + window: zero-padded).
    num_rows: rows to cut (may be a symbolic dimension).
    spec: a front end's spec (`hop`, `window`).
  Returns:
    [..., num_rows, window], each row times a periodic Hann window.
  """
  k = -(-spec.window // spec.hop)  # hops a window spans
  need = (num_rows - 1 + k) * spec.hop
  m = x16.shape[-1]
  x16 = jnp.pad(x16, [(0, 0)] * (x16.ndim - 1) + [(0, need - m)]) if need > m else x16[..., :need]
  hops = x16.reshape(x16.shape[:-1] + (num_rows - 1 + k, spec.hop))
  # Shifted slices rather than a gather: XLA lowers them to copies.
  win = jnp.concatenate([hops[..., j:j + num_rows, :] for j in range(k)], axis=-1)[..., :spec.window]
  return win * jnp.asarray(periodic_hann(spec.window), x16.dtype)


class PatchGeometry:
  """Sizes shared by every log-mel front end here (VGGish's, musicnn's), from the fields
  `in_rate`, `out_rate`, `window`, `hop` and `patch_frames` of the dataclass that mixes it in."""

  @property
  def patch_samples(self) -> int:
    """Resampled samples one patch reads (15600 for VGGish)."""
    return (self.patch_frames - 1) * self.hop + self.window

  @property
  def ratio(self):
    """(up, down): out_rate / in_rate in lowest terms (160, 441)."""
    g = math.gcd(self.in_rate, self.out_rate)
    return self.out_rate // g, self.in_rate // g

  @property
  def patch_blocks(self) -> int:
    """Resampler blocks whose outputs cover a patch (98 for VGGish)."""
    return -(-self.patch_samples // self.ratio[0])

  @property
  def frame_input_samples(self) -> int:
    """Input samples one F1 frame's patch reads, ending with the frame (43659 for VGGish at 44.1 kHz).

    The patch's resampler blocks plus one block of which the first output
    block reads its `history` (shorter than a block).
    """
    return (self.patch_blocks + 1) * self.ratio[1]

  @property
  def patch_offset(self) -> int:
    """Resampled samples of a frame's input before its patch (80 for VGGish)."""
    return self.patch_blocks * self.ratio[0] - self.patch_samples


class Frontend(abc.ABC):
  """An embedding's front end: audio at the mixer's rate -> log-mel patches the embedding reads.

  Shape contract (float32; `...` is any leading shape, typically [batch, channels]):
    resample:       [..., n] at `spec.in_rate` -> [..., m] at `spec.out_rate`
                    (causal; blocks anchored at the end of the input).
    log_mel_rows:   [..., m] at `spec.out_rate` -> [..., num_rows, n_mels];
                    row r reads samples [r * hop, r * hop + window).
    log_mel_frames: [..., (num_frames - 1) * hop + frame_input_samples]
                    -> [..., num_frames, patch_frames, n_mels], one patch per
                    F1 frame, the last ending at the end of the input.
    frame_input:    whole signals [..., samples] -> (that input, num_frames).
  `spec` is a frozen dataclass with `PatchGeometry`'s sizes (`patch_frames`,
  `n_mels`, `hop`, `window`, `ratio`, `frame_input_samples`, ...).
  """

  spec: Any

  @property
  def frame_input_samples(self) -> int:
    """Input samples one F1 frame's patch reads."""
    return self.spec.frame_input_samples

  @property
  @abc.abstractmethod
  def resampler(self):
    """The spec of the resampler this front end runs (`vggish_frontend.FrontendSpec`)."""

  @abc.abstractmethod
  def resample(self, x):
    """[..., n] at the input rate -> [..., m] at the front end's rate."""

  @abc.abstractmethod
  def log_mel_rows(self, x16, num_rows):
    """[..., m] resampled -> [..., num_rows, n_mels]."""

  @abc.abstractmethod
  def log_mel_frames(self, x, num_frames, hop: int):
    """[..., (num_frames - 1) * hop + frame_input_samples] -> [..., num_frames, patch_frames, n_mels]."""

  @abc.abstractmethod
  def frame_input(self, audio, frame_spec):
    """Whole signals [..., samples] -> (x, g): every F1 frame's input and the F1 frame count."""

  @abc.abstractmethod
  def check_frame(self, f1: int) -> None:
    """Raises ValueError (naming the config key to raise) if an F1 frame is too short for a patch."""

  @abc.abstractmethod
  def shares_rows(self, hop: int) -> bool:
    """Whether F1 frames `hop` input samples apart share their log-mel rows."""

  @abc.abstractmethod
  def mel_power(self, log_mel):
    """Log-mel values [...] -> mel-band power [...], which scales as the signal's power (the
    front end's log inverted; squared where its bands sum magnitudes)."""

  @abc.abstractmethod
  def log_of_power(self, power):
    """Mel-band power [...] -> log-mel values [...] (`mel_power`'s inverse)."""

  def at_level(self, patches, level_db: float, max_boost_db: float, measured_db=None):
    """Log-mel patches [..., rows, n_mels], each as if its signal were scaled to one level.

    A patch's level is the mean of its mel-band power over rows and bands, in dB, or, given
    `measured_db` [...] (one per patch), that level in whatever measure `level_db` is in (the
    ALM's running active level of the channel, dBFS RMS). Each patch is scaled (in the power
    domain, which is the signal scaled by the root) so that its level is `level_db`, by at
    most `max_boost_db` up, so near-silence is not raised to the level (digital silence
    stays silence). An embedding trained on frames at one level (the student's distillation
    frames) then reads the same from a channel whatever its fader and input gain; the mixer
    hears the level from its F2 frames' RMS. A function of the patch (and its measured
    level) alone, so every path to the embedding (offline, streamed, exported) agrees.
    """
    power = self.mel_power(patches)
    if measured_db is None:
      mean = jnp.mean(power, axis=(-2, -1), keepdims=True)
      measured_db = 10.0 * jnp.log10(jnp.maximum(mean, 1e-30))
    else:
      measured_db = jnp.asarray(measured_db, power.dtype)[..., None, None]
    gain_db = jnp.minimum(level_db - measured_db, max_boost_db)
    return self.log_of_power(power * jnp.power(10.0, gain_db / 10.0))
