"""Objective mix metrics for evaluation and validation.

All functions except `mr_stft_distance` are host-side NumPy: they accept NumPy or JAX arrays (JAX arrays
are copied to the host, a sync, so call them at evaluation/logging steps, never inside a jitted step),
compute in float64 and return NumPy float64 values. `mr_stft_distance` runs the training loss
(`alm_jax.losses`) under jit and returns NumPy float32.

Layouts: audio is [..., samples] ([channels, samples] for `integrated_loudness`), gains are
[..., channels, frames] linear amplitude, masks are bool [..., channels].

Non-finite results are part of the contract, not errors: a signal whose every 400 ms block lies below
−70 LUFS has loudness −inf, an estimate identical to its reference has SI-SDR +inf; summary code must
handle them (e.g. `si_sdr(..., max_db=...)`, or report counts of non-finite values). NaN or Inf *inputs*
raise ValueError. `mix_metrics` is the one suite that training validation and `alm_jax.evaluate` both
report, under the names `MIX_METRICS`, with SI-SDR capped at `SI_SDR_MAX_DB`.
"""

from typing import Optional

import numpy as np

from alm_jax import loudness

# The names `mix_metrics` returns, in report order ('mr_stft' only when given a loss config).
MIX_METRICS = ('mr_stft', 'loudness_diff_lu', 'si_sdr_db', 'gain_change_db_per_s',
               'clipping_fraction', 'balance_error_db')
# The names `stereo_metrics` returns: training validation (a model with pans) and
# `alm_jax.evaluate` (every system: a mono one placed at the centre) report them.
STEREO_METRICS = ('mr_stft_mid', 'mr_stft_side', 'pan_error')
# One perfect example must not make a mean +inf; 100 dB is far above any real mix.
SI_SDR_MAX_DB = 100.0

# ---- SI-SDR -------------------------------------------------------------------


def si_sdr(estimate, reference, *, zero_mean: bool = True, max_db: Optional[float] = None,
           silent_reference: str = 'nan'):
  """Scale-invariant signal-to-distortion ratio in dB (Le Roux et al., 2019), over the last axis.

  SI-SDR = 10 log10(‖α s‖² / ‖α s − ŝ‖²) with α = ⟨ŝ, s⟩ / ‖s‖² (after removing the means if
  zero_mean).

  Args:
    estimate: [..., samples] (the mix).
    reference: [..., samples] (the target mix), same shape.
    zero_mean: subtract each signal's mean first (the usual definition).
    max_db: if given, results are clamped to at most this value (turns +inf into max_db, for means).
    silent_reference: what an all-zero (after mean removal) reference gives: 'nan' (default, so padding
      examples of a batch do not abort an evaluation; mask them out) or 'raise' (ValueError).

  Returns:
    float64 [...] dB (a Python-compatible NumPy scalar for 1-D inputs). An estimate identical to its
    reference gives +inf (exactly: the residual is exactly zero); a silent estimate against a
    non-silent reference gives −inf.
  """
  est = loudness.finite_float64(estimate, 'estimate')
  ref = loudness.finite_float64(reference, 'reference')
  if est.shape != ref.shape or est.ndim == 0:
    raise ValueError(f'SI-SDR needs estimate and reference of the same shape [..., samples], got '
                     f'{est.shape} and {ref.shape}; trim both to the same length.')
  if zero_mean:
    est = est - est.mean(axis=-1, keepdims=True)
    ref = ref - ref.mean(axis=-1, keepdims=True)
  ref_energy = np.sum(ref * ref, axis=-1)
  silent = ref_energy == 0.0
  if silent_reference == 'raise':
    if np.any(silent):
      raise ValueError(f'SI-SDR is undefined for a silent reference ({int(np.sum(silent))} of '
                       f'{silent.size} references are all zero); drop or mask those examples.')
  elif silent_reference != 'nan':
    raise ValueError(f"silent_reference must be 'nan' or 'raise', got {silent_reference!r}.")
  alpha = np.sum(est * ref, axis=-1) / np.where(silent, 1.0, ref_energy)
  projection = alpha[..., None] * ref
  signal_energy = np.sum(projection * projection, axis=-1)
  noise_energy = np.sum(np.square(projection - est), axis=-1)
  with np.errstate(divide='ignore', invalid='ignore'):
    db = 10.0 * np.log10(signal_energy / noise_energy)
  # 0 / 0 here only occurs for a silent estimate (α = 0, residual = 0): no signal at all, −inf.
  db = np.where((signal_energy == 0.0) & (noise_energy == 0.0), -np.inf, db)
  db = np.where(silent, np.nan, db)
  if max_db is not None:
    db = np.minimum(db, max_db)  # NaN stays NaN
  return db[()] if db.ndim == 0 else db


# ---- gains ------------------------------------------------------------------


def gains_to_db(gains, floor_db: float = -120.0) -> np.ndarray:
  """Linear amplitude gains -> dB, floored at floor_db (a muted channel is floor_db, not −inf)."""
  g = loudness.finite_float64(gains, 'gains')
  if np.any(g < 0):
    raise ValueError('Gains must be non-negative linear amplitudes; got negative values.')
  return 20.0 * np.log10(np.maximum(g, 10.0 ** (floor_db / 20.0)))


def gain_change_db_per_s(gains, frame_seconds: float, channel_mask=None, *,
                             floor_db: float = -120.0):
  """Mean absolute gain change in dB per second (the "jumps" the paper criticises in DMC).

  mean over active channels and frame transitions of |g_dB[t+1] − g_dB[t]| / frame_seconds.

  Args:
    gains: [..., channels, frames] linear gains, one per frame of `frame_seconds`.
    frame_seconds: frame duration in seconds (F2 = 0.05 s for ALM-MR).
    channel_mask: bool [..., channels], False for padding channels (default: all active).
    floor_db: gains are floored at this level before taking the log.

  Returns:
    float64 [...] dB/s; 0 for constant gains; nan for an example with no active channel.
  """
  db = gains_to_db(gains, floor_db)
  if db.ndim < 2 or db.shape[-1] < 2:
    raise ValueError(f'Gain change needs gains [..., channels, frames] with >= 2 frames, got {db.shape}.')
  if frame_seconds <= 0:
    raise ValueError(f'frame_seconds must be positive, got {frame_seconds}.')
  mask = _channel_mask(channel_mask, db.shape[:-1])
  per_channel = np.mean(np.abs(np.diff(db, axis=-1)), axis=-1) / frame_seconds
  return _masked_channel_mean(per_channel, mask)


def balance_error_db(gains, target_gains, channel_mask=None, *, per_channel: bool = False,
                     floor_db: float = -120.0):
  """Level balance error against a target balance, in dB.

  Each side's balance is its channel gains in dB minus their mean over the active channels (so an
  overall level offset is not an error). Time-varying gains are summarised by their mean in dB.

  Args:
    gains: [..., channels] or [..., channels, frames] linear gains of the system.
    target_gains: [..., channels] or [..., channels, frames] linear target gains (e.g. the dataset's
      mixing coefficients).
    channel_mask: bool [..., channels] (default: all active). It fixes which axis is channels: an array
      with one more dimension than the mask has a trailing frames axis. Without a mask, arrays of equal
      rank are read as [..., channels]; pass the mask when both are [..., channels, frames].
    per_channel: return the signed per-channel errors instead of their mean absolute value.
    floor_db: gains are floored at this level before taking the log.

  Returns:
    per_channel=False: float64 [...] mean |error| over active channels (nan if none is active).
    per_channel=True: float64 [..., channels] signed error (system − target), nan at inactive channels.
  """
  pred_db = gains_to_db(gains, floor_db)
  target_db = gains_to_db(target_gains, floor_db)
  if channel_mask is not None:
    channel_shape = np.shape(channel_mask)
  elif abs(pred_db.ndim - target_db.ndim) == 1:
    # One side is time-varying: the other one's shape is [..., channels].
    channel_shape = min(pred_db.shape, target_db.shape, key=len)
  else:
    # Equal ranks without a mask are read as static gains [..., channels].
    channel_shape = pred_db.shape
  pred_db = _time_mean(pred_db, channel_shape, 'gains')
  target_db = _time_mean(target_db, channel_shape, 'target_gains')
  if pred_db.shape != target_db.shape:
    raise ValueError(f'gains and target_gains disagree on [..., channels]: {pred_db.shape} vs '
                     f'{target_db.shape}.')
  mask = _channel_mask(channel_mask, pred_db.shape)
  pred_rel = pred_db - _masked_channel_mean(pred_db, mask)[..., None]
  target_rel = target_db - _masked_channel_mean(target_db, mask)[..., None]
  error = np.where(mask, pred_rel - target_rel, np.nan)
  if per_channel:
    return error
  return _masked_channel_mean(np.abs(np.where(mask, error, 0.0)), mask)


def pan_error(pans, target_pans, channel_mask=None, *, per_channel: bool = False):
  """Pan error against a designed placement, in pan units (-1 left ... +1 right).

  Time-varying pans are summarised by their mean over the frames, as `balance_error_db`
  summarises gains.

  Args:
    pans: [..., channels, frames] (or [..., channels]) pans of the system.
    target_pans: [..., channels] the designed pans (NaN where unknown).
    channel_mask: bool [..., channels] (default: all active).
    per_channel: return the signed per-channel errors instead of their mean absolute value.
  Returns:
    per_channel=False: float64 [...] mean |error| over active channels (nan if none is
    active, or a target pan of an active channel is unknown).
    per_channel=True: float64 [..., channels] signed error (system - target), nan at
    inactive channels.
  """
  target = np.asarray(target_pans, np.float64)
  p = loudness.finite_float64(pans, 'pans')
  if p.ndim == target.ndim + 1:
    p = p.mean(axis=-1)
  if p.shape != target.shape:
    raise ValueError(f'pans {p.shape} and target_pans {target.shape} disagree on [..., channels].')
  mask = _channel_mask(channel_mask, p.shape)
  error = np.where(mask, p - target, np.nan)
  if per_channel:
    return error
  known = np.all(np.isfinite(np.where(mask, target, 0.0)), axis=-1)
  out = np.where(known, _masked_channel_mean(np.abs(np.where(mask, error, 0.0)), mask), np.nan)
  return out[()] if out.ndim == 0 else out


def stereo_metrics(stereo_mix, target_stereo, pans, target_pans, *, loss_config,
                   channel_mask=None) -> dict:
  """The stereo metrics (`STEREO_METRICS`) of stereo mixes against their targets.

  Args:
    stereo_mix: [..., 2, n] left/right (a mono system's: `stereo.centred(mix)`).
    target_stereo: [..., 2, >= n].
    pans: [..., channels, frames] the applied pans (0 for a mono system).
    target_pans: [..., channels] designed pans, NaN where unknown.
    loss_config: `config.loss` (the MR-STFT's resolutions).
  Returns:
    'mr_stft_mid', 'mr_stft_side': the MR-STFT distance of the mid and of the side
    (`stereo.mid_side`) to the target's; the side is NaN where the target's side is
    silent (`stereo.has_side`). 'pan_error': `pan_error`. float64 [...].
  """
  from alm_jax import stereo  # pylint: disable=g-import-not-at-top  (JAX, as mr_stft_distance)

  mix = loudness.finite_float64(stereo_mix, 'stereo_mix')
  target = loudness.finite_float64(target_stereo, 'target_stereo')
  if mix.ndim not in (2, 3) or mix.shape[-2] != 2 or target.shape[:-1] != mix.shape[:-1]:
    raise ValueError(f'stereo_metrics needs stereo_mix [..., 2, n] and target [..., 2, >= n], got '
                     f'{mix.shape} and {target.shape}.')
  ms, ms_target = stereo.mid_side(mix), stereo.mid_side(target[..., :mix.shape[-1]])
  n = mix.shape[-1]
  dist = mr_stft_distance(ms.reshape(-1, n), ms_target.reshape(-1, n), loss_config)
  dist = np.asarray(dist, np.float64).reshape(mix.shape[:-2] + (2,))
  out = {'mr_stft_mid': dist[..., 0],
         'mr_stft_side': np.where(stereo.has_side(ms_target), dist[..., 1], np.nan),
         'pan_error': pan_error(pans, target_pans, channel_mask)}
  return {k: np.asarray(v, np.float64)[()] for k, v in out.items()}


# ---- mix-level ----------------------------------------------------------------


def clipping_fraction(mix, threshold: float = 1.0):
  """Fraction of samples with |mix| > threshold, over the last axis: [..., samples] -> float64 [...]."""
  x = loudness.finite_float64(mix, 'mix')
  if x.ndim == 0 or x.shape[-1] == 0:
    raise ValueError(f'clipping_fraction needs audio [..., samples] with samples > 0, got {x.shape}.')
  frac = np.mean(np.abs(x) > threshold, axis=-1)
  return frac[()] if frac.ndim == 0 else frac


def mr_stft_distance(mix, target, loss_config):
  """The training loss as a metric: multi-resolution STFT distance of `mix` to `target`.

  Args:
    mix, target: [samples] or [b, samples], same shape.
    loss_config: `config.loss`.

  Returns:
    float32 [] for 1-D inputs, [b] otherwise (0 for identical signals). Compiled once per input shape.
  """
  from alm_jax import losses  # JAX is only needed by this metric

  mix = loudness.finite_float64(mix, 'mix').astype(np.float32)
  target = loudness.finite_float64(target, 'target').astype(np.float32)
  if mix.shape != target.shape or mix.ndim not in (1, 2):
    raise ValueError(f'mr_stft_distance needs mix and target of the same shape [samples] or [b, samples], '
                     f'got {mix.shape} and {target.shape}.')
  single = mix.ndim == 1
  if single:
    mix, target = mix[None], target[None]
  out = np.asarray(losses.mr_stft_loss_jit(mix, target, loss_config))
  return out[0] if single else out


# ---- the suite -----------------------------------------------------------------


def ideal_input_gains(track_gains, input_gain_db) -> np.ndarray:
  """Gains putting each input's own source at its target-mix level: float64 [..., channels].

  The source reaches the input at `input_gain_db` (pre- plus post-bleed level, dB) and the target
  mix at `track_gains` (linear, NaN where unknown, e.g. MedleyDB), so the ideal gain is their ratio;
  without bleed, sum_i gain_i * input_i is then the target mix. NaN stays NaN.
  """
  return np.asarray(track_gains, np.float64) / 10.0 ** (np.asarray(input_gain_db, np.float64) / 20.0)


def mix_metrics(mix, target, gains, *, rate: int, frame_seconds: float, channel_mask=None,
                ideal_gains=None, loss_config=None) -> dict:
  """Every objective metric of mixes against their targets, under the names `MIX_METRICS`.

  Args:
    mix: [..., n] the mixes (... is () or [b]).
    target: [..., >= n] the target mixes (cut to the mix's length).
    gains: [..., channels, frames] the applied linear gains, one per frame of `frame_seconds`.
    rate: sample rate in Hz.
    frame_seconds: gain frame duration (F2).
    channel_mask: bool [..., channels], False for padding channels (default: all active).
    ideal_gains: [..., channels] linear ideal gains (`ideal_input_gains`), NaN where unknown;
      an example with an unknown gain on an active channel has no balance error.
    loss_config: `config.loss`; given, 'mr_stft' (the training loss) is computed too (JAX).
  Returns:
    dict name -> float64 [...]: NaN where a metric is undefined (no ideal gains, fewer
    than 2 gain frames, a silent target), si_sdr_db capped at SI_SDR_MAX_DB.
  """
  mix = loudness.finite_float64(mix, 'mix')
  target = loudness.finite_float64(target, 'target')
  gains = loudness.finite_float64(gains, 'gains')
  if mix.ndim not in (1, 2) or target.shape[:-1] != mix.shape[:-1] or target.shape[-1] < mix.shape[-1]:
    raise ValueError(f'mix_metrics needs mix [..., n] and target [..., >= n] with ... = () or [b], '
                     f'got {mix.shape} and {target.shape}.')
  if gains.ndim != mix.ndim + 1 or gains.shape[:-2] != mix.shape[:-1]:
    raise ValueError(f'gains {gains.shape} is not [..., channels, frames] for mix {mix.shape}.')
  target = target[..., :mix.shape[-1]]
  mask = _channel_mask(channel_mask, gains.shape[:-1])
  nan = np.full(mix.shape[:-1], np.nan)
  out = {}
  if loss_config is not None:
    out['mr_stft'] = mr_stft_distance(mix, target, loss_config)
  out['loudness_diff_lu'] = np.reshape([loudness.loudness_difference(m, t, rate) for m, t in zip(
      mix.reshape(-1, mix.shape[-1]), target.reshape(-1, mix.shape[-1]))], mix.shape[:-1])
  out['si_sdr_db'] = si_sdr(mix, target, max_db=SI_SDR_MAX_DB)
  out['gain_change_db_per_s'] = (gain_change_db_per_s(gains, frame_seconds, mask)
                                 if gains.shape[-1] >= 2 else nan)
  out['clipping_fraction'] = clipping_fraction(mix)
  out['balance_error_db'] = nan
  if ideal_gains is not None:
    ideal = np.asarray(ideal_gains, np.float64)
    known = np.all(np.isfinite(np.where(mask, ideal, 0.0)), axis=-1)
    safe = np.where(mask & np.isfinite(ideal), np.maximum(ideal, 0.0), 1.0)
    out['balance_error_db'] = np.where(known, balance_error_db(gains, safe, mask), np.nan)
  return {k: np.asarray(v, np.float64)[()] for k, v in out.items()}


# ---- helpers ------------------------------------------------------------------


def _channel_mask(channel_mask, shape) -> np.ndarray:
  if channel_mask is None:
    return np.ones(shape, bool)
  mask = np.asarray(channel_mask, bool)
  if mask.shape != tuple(shape):
    raise ValueError(f'channel_mask has shape {mask.shape}, expected {tuple(shape)} ([..., channels]).')
  return mask


def _masked_channel_mean(values, mask):
  count = mask.sum(axis=-1)
  total = np.sum(np.where(mask, values, 0.0), axis=-1)
  with np.errstate(invalid='ignore', divide='ignore'):
    out = np.where(count > 0, total / np.maximum(count, 1), np.nan)
  return out[()] if out.ndim == 0 else out


def _time_mean(db, channel_shape, name):
  if db.shape == tuple(channel_shape):
    return db
  if db.ndim == len(channel_shape) + 1 and db.shape[:-1] == tuple(channel_shape):
    return db.mean(axis=-1)
  raise ValueError(f'{name} has shape {db.shape}; expected [..., channels] = {tuple(channel_shape)} or '
                   '[..., channels, frames].')
