"""Timbre augmentation: each training channel's source heard through a random, smooth equaliser.

`rendered_live`'s training split takes its pitched parts from one soundfont and its kits from
two; the test split's come from others (docs/data.md, "Splits"), so a mixer may learn those exact
timbres (on the shipped one it changed nothing: docs/results_notes.md, "Runs 5 and 6"). With
`config.data.timbre.enabled`, each channel's clean source, before bleed, passes through its own
random equaliser: a spectral tilt and a few bell bands, smooth in log-frequency and of zero
phase, its RMS over the window kept, so the designed gains still put it at its role's level;
the pipeline re-sums the target mix from the equalised sources. The draws come from the
example's generator after every other draw, so switching it on changes nothing else a seed
means. Training batches only, unless `in_eval` (an evaluation of unseen-sounding channels).
"""

import dataclasses

import numpy as np
from scipy import fft as sp_fft

from alm_jax.data import common

_PIVOT_HZ = 1000.0  # the tilt's hinge: 0 dB here, +-tilt_db three octaves away
_BELL_RANGE_HZ = (80.0, 8000.0)  # bell centres, log-uniform
_BELL_OCTAVES = (0.5, 2.0)  # bell widths (full width at half gain, in octaves), uniform
_PAD = 4096  # zero padding (samples) so the zero-phase filtering is linear, not circular


@dataclasses.dataclass(frozen=True)
class Settings:
  """config.data.timbre (configs/base.py)."""
  enabled: bool = False
  tilt_db: float = 6.0   # the tilt, uniform in +-tilt_db at 125 Hz / 8 kHz (three octaves from 1 kHz)
  bell_db: float = 6.0   # each bell's gain, uniform in +-bell_db
  bells: int = 2
  in_eval: bool = False  # also the evaluation batches

  @classmethod
  def from_config(cls, data_config) -> 'Settings':
    t = data_config.get('timbre')
    if t is None:  # configs from before the augmentation existed
      return cls()
    return cls(enabled=bool(t.enabled), tilt_db=float(t.tilt_db), bell_db=float(t.bell_db),
               bells=int(t.bells), in_eval=bool(t.in_eval))

  @property
  def equalises_evaluation(self) -> bool:
    """Whether evaluation batches are equalised too (the one rule: on, and in_eval)."""
    return self.enabled and self.in_eval


def draw_curves(rng: np.random.Generator, num_channels: int, freqs_hz: np.ndarray,
                settings: Settings) -> np.ndarray:
  """float64 [c, bins]: each channel's equaliser gain (dB) at `freqs_hz` [bins]."""
  c = int(num_channels)
  tilt = rng.uniform(-settings.tilt_db, settings.tilt_db, size=(c, 1))
  centre = np.exp(rng.uniform(*np.log(_BELL_RANGE_HZ), size=(c, settings.bells, 1)))
  width = rng.uniform(*_BELL_OCTAVES, size=(c, settings.bells, 1))
  gain = rng.uniform(-settings.bell_db, settings.bell_db, size=(c, settings.bells, 1))
  freqs = np.maximum(freqs_hz, 20.0)  # below 20 Hz: held
  curve = tilt * np.clip(np.log2(freqs / _PIVOT_HZ) / 3.0, -1.5, 1.0)  # <= 1.5x tilt in the bass
  # A bell is a Gaussian in octaves whose full width at half its gain is `width`.
  sigma = width / (2.0 * np.sqrt(2.0 * np.log(2.0)))
  rel = np.log2(freqs[None, None, :] / centre)
  return curve + np.sum(gain * np.exp(-0.5 * np.square(rel / sigma)), axis=1)


def apply(sources: np.ndarray, rng: np.random.Generator, settings: Settings,
          rate: int = common.SAMPLE_RATE) -> np.ndarray:
  """float32 sources [c, n] -> the same, each through its drawn equaliser, RMS kept.

  A silent channel stays silent. The curves are drawn whatever the audio, so the generator
  advances the same way for every window.
  """
  x = np.asarray(sources, np.float32)
  c, n = x.shape
  size = sp_fft.next_fast_len(n + _PAD, real=True)
  curves_db = draw_curves(rng, c, sp_fft.rfftfreq(size, 1.0 / rate), settings)
  y = sp_fft.irfft(sp_fft.rfft(x, size, axis=-1) * (10.0 ** (curves_db / 20.0)), size,
                   axis=-1)[:, :n]
  before = np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=-1))
  after = np.sqrt(np.mean(np.square(y, dtype=np.float64), axis=-1))
  scale = np.where(after > 0, before / np.maximum(after, 1e-30), 0.0)
  return (y * scale[:, None]).astype(np.float32)
