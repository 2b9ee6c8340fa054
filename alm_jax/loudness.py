"""ITU-R BS.1770-4 loudness: K-weighting, gating blocks and integrated loudness (LUFS).

Host-side NumPy in float64, at any sample rate (the K-weighting stages are
derived for the rate from analog prototypes fitted to the 48 kHz coefficients
BS.1770 tabulates). The evaluation metrics (`alm_jax.metrics`) and the
equal-loudness console mixer (`alm_jax.models.console`) both measure with it.
NaN or Inf inputs raise ValueError; silence reads -inf LUFS.
"""

from typing import Optional, Sequence

import numpy as np
from scipy import signal as sps

# Analog prototypes of the K-weighting stages, fitted so that the bilinear transform at 48 kHz reproduces
# the coefficients tabulated in BS.1770 (to ~1e-8); they give the same filter at any other rate.
_SHELF_F0 = 1681.974450955533
_SHELF_GAIN_DB = 3.999843853973347
_SHELF_Q = 0.7071752369554196
_SHELF_VB_EXPONENT = 0.4996667741545416
_HIGHPASS_F0 = 38.13547087602444
_HIGHPASS_Q = 0.5003270373238773

_BLOCK_SECONDS = 0.4
_BLOCK_STEP = 0.25  # 75 % overlap
_ABSOLUTE_GATE_LUFS = -70.0
_RELATIVE_GATE_LU = -10.0
_LOUDNESS_OFFSET = -0.691


def k_weighting_coefficients(rate: int):
  """BS.1770 K-weighting at `rate` Hz: ((b_shelf, a_shelf), (b_highpass, a_highpass)), float64 [3] each."""
  rate = _check_rate(rate)
  k = np.tan(np.pi * _SHELF_F0 / rate)
  vh = 10.0 ** (_SHELF_GAIN_DB / 20.0)
  vb = vh ** _SHELF_VB_EXPONENT
  a0 = 1.0 + k / _SHELF_Q + k * k
  b_shelf = np.array([vh + vb * k / _SHELF_Q + k * k, 2.0 * (k * k - vh), vh - vb * k / _SHELF_Q + k * k]) / a0
  a_shelf = np.array([a0, 2.0 * (k * k - 1.0), 1.0 - k / _SHELF_Q + k * k]) / a0
  k = np.tan(np.pi * _HIGHPASS_F0 / rate)
  a0 = 1.0 + k / _HIGHPASS_Q + k * k
  b_hp = np.array([1.0, -2.0, 1.0])
  a_hp = np.array([a0, 2.0 * (k * k - 1.0), 1.0 - k / _HIGHPASS_Q + k * k]) / a0
  return (b_shelf, a_shelf), (b_hp, a_hp)


def k_weight(x, rate: int) -> np.ndarray:
  """K-weighted signal: [..., samples] -> float64 [..., samples] (zero initial filter state)."""
  x = finite_float64(x, 'audio')
  (bs, as_), (bh, ah) = k_weighting_coefficients(rate)
  return sps.lfilter(bh, ah, sps.lfilter(bs, as_, x, axis=-1), axis=-1)


def block_loudness(x, rate: int, channel_weights: Optional[Sequence[float]] = None):
  """Per-channel mean square of the K-weighted signal in each 400 ms gating block.

  Args:
    x: [samples] mono or [channels, samples].
    rate: sample rate in Hz.
    channel_weights: G_i per channel (default 1.0 each; BS.1770 uses 1.41 for the surround channels).

  Returns:
    (z [channels, blocks] float64, weights [channels] float64). Blocks start every 100 ms; only whole
    blocks are used (blocks j = 0 .. floor((T − 0.4 s) / 0.1 s)).
  """
  x = finite_float64(x, 'audio')
  if x.ndim == 1:
    x = x[None]
  if x.ndim != 2 or x.shape[0] == 0:
    raise ValueError(f'Loudness needs audio [samples] or [channels, samples], got shape {x.shape}.')
  rate = _check_rate(rate)
  block = int(round(_BLOCK_SECONDS * rate))
  step = int(round(_BLOCK_SECONDS * _BLOCK_STEP * rate))
  if x.shape[1] < block:
    raise ValueError(f'Integrated loudness needs at least one 400 ms block ({block} samples at {rate} Hz), '
                     f'got {x.shape[1]} samples; measure a longer excerpt.')
  if channel_weights is None:
    weights = np.ones(x.shape[0])
  else:
    weights = np.asarray(channel_weights, np.float64)
    if weights.shape != (x.shape[0],):
      raise ValueError(f'channel_weights has shape {weights.shape}, need one weight per channel '
                       f'({x.shape[0]}).')
  energy = np.square(k_weight(x, rate))
  cumulative = np.concatenate([np.zeros((x.shape[0], 1)), np.cumsum(energy, axis=-1)], axis=-1)
  starts = np.arange(0, x.shape[1] - block + 1, step)
  z = (cumulative[:, starts + block] - cumulative[:, starts]) / block
  # Differences of a running sum can come out a rounding error below zero in silent blocks.
  z = np.maximum(z, 0.0)
  return z, weights


def integrated_loudness(x, rate: int, channel_weights: Optional[Sequence[float]] = None) -> float:
  """Integrated (gated) loudness in LUFS, ITU-R BS.1770-4.

  K-weighting, 400 ms blocks with 75 % overlap, absolute gate −70 LUFS, relative gate −10 LU.

  Args:
    x: [samples] mono or [channels, samples] audio (full scale = 1.0).
    rate: sample rate in Hz (any rate above ~3.4 kHz; the filters are derived for it).
    channel_weights: optional G_i per channel (default 1.0).

  Returns:
    float LUFS; −inf when no block passes the absolute gate (silence). A full-scale 997 Hz sine in one
    channel reads −3.01 LUFS.
  """
  z, weights = block_loudness(x, rate, channel_weights)
  with np.errstate(divide='ignore'):
    block_lufs = _LOUDNESS_OFFSET + 10.0 * np.log10(weights @ z)
  above_absolute = block_lufs > _ABSOLUTE_GATE_LUFS
  if not np.any(above_absolute):
    return float('-inf')
  relative_gate = (_LOUDNESS_OFFSET + 10.0 * np.log10(weights @ z[:, above_absolute].mean(axis=1))
                   + _RELATIVE_GATE_LU)
  gated = above_absolute & (block_lufs > relative_gate)
  return float(_LOUDNESS_OFFSET + 10.0 * np.log10(weights @ z[:, gated].mean(axis=1)))


def loudness_difference(mix, target, rate: int) -> float:
  """Integrated loudness of `mix` minus that of `target`, in LU (positive: the mix is louder).

  Args:
    mix, target: [samples] or [channels, samples] each (channel counts may differ, e.g. a mono mix
      against a stereo reference mix).
    rate: sample rate in Hz.

  Returns:
    float LU; ±inf when exactly one of them is silent (below the absolute gate), nan when both are.
  """
  mix_lufs = integrated_loudness(mix, rate)
  target_lufs = integrated_loudness(target, rate)
  if np.isinf(mix_lufs) and np.isinf(target_lufs):
    return float('nan')
  return float(mix_lufs - target_lufs)


def finite_float64(x, name: str) -> np.ndarray:
  arr = np.asarray(x, dtype=np.float64)
  if not np.all(np.isfinite(arr)):
    raise ValueError(f'{name} contains NaN or Inf ({int(np.sum(~np.isfinite(arr)))} values); the model or '
                     'the audio file produced non-finite samples.')
  return arr


def _check_rate(rate) -> int:
  if int(rate) != rate or rate <= 2 * _SHELF_F0:
    raise ValueError(f'Sample rate must be an integer above {2 * _SHELF_F0:.0f} Hz for K-weighting, '
                     f'got {rate}.')
  return int(rate)
