"""Multi-resolution STFT loss, as auraloss defines it (the loss the paper trained with).

`multi_resolution_stft_loss(pred [b, samples], target [b, samples], config.loss)` returns the
per-example losses [b] (or their mean over `example_mask`); `stft_magnitude` and
`stft_loss_terms` are its parts, and `mix_loss` is the same on a mix against a target cut to
its length. `balance_loss` (config.loss.balance_weight, for data with known mixing gains) and
`gain_change_loss` (config.loss.gain_change_weight) are optional terms on the gains themselves;
`stereo_loss` (the MR-STFT on mid and side) and `pan_loss` (config.loss.pan_weight) train a
mixer with pans.
The formulas, the torch.stft convention followed, the implementation notes and the batch
reduction (the one difference from auraloss): docs/model.md ("The loss").
"""

import dataclasses
from typing import Tuple

import jax
import jax.numpy as jnp
import numpy as np

from alm_jax import stereo


@dataclasses.dataclass(frozen=True)
class STFTResolution:
  """One STFT resolution, all sizes in samples (hashable: usable as a static jit argument)."""
  fft_size: int
  win_length: int
  hop_size: int

  def __post_init__(self):
    if not 0 < self.win_length <= self.fft_size:
      raise ValueError(f'STFT window length must be in (0, fft_size], got win_length={self.win_length}, '
                       f'fft_size={self.fft_size}; fix config.loss.win_lengths.')
    if self.hop_size <= 0:
      raise ValueError(f'STFT hop must be >= 1 sample, got {self.hop_size} (win_length {self.win_length}); '
                       'fix config.loss.hop_fraction.')

  def num_frames(self, num_samples: int) -> int:
    return 1 + (num_samples + 2 * (self.fft_size // 2) - self.fft_size) // self.hop_size

  def min_samples(self) -> int:
    # Reflect padding by N // 2 needs at least N // 2 + 1 samples (as torch.stft requires).
    return self.fft_size // 2 + 1


@dataclasses.dataclass(frozen=True)
class MRSTFTSpec:
  """The multi-resolution loss settings, read once from `config.loss` (hashable)."""
  resolutions: Tuple[STFTResolution, ...]
  w_sc: float = 1.0
  w_log_mag: float = 1.0
  eps: float = 1e-8

  @classmethod
  def from_config(cls, loss_config) -> 'MRSTFTSpec':
    """`config.loss` (fft_sizes, win_lengths, hop_fraction, w_sc, w_log_mag, eps) -> spec."""
    if isinstance(loss_config, MRSTFTSpec):
      return loss_config
    fft_sizes = tuple(int(n) for n in loss_config.fft_sizes)
    win_lengths = tuple(int(w) for w in loss_config.win_lengths)
    if not fft_sizes or len(fft_sizes) != len(win_lengths):
      raise ValueError(f'config.loss.fft_sizes {fft_sizes} and win_lengths {win_lengths} must be non-empty '
                       'and of equal length (one window per FFT size).')
    hop_fraction = float(loss_config.hop_fraction)
    resolutions = tuple(
        STFTResolution(fft_size=n, win_length=w, hop_size=int(hop_fraction * w))
        for n, w in zip(fft_sizes, win_lengths))
    return cls(resolutions=resolutions, w_sc=float(loss_config.w_sc),
               w_log_mag=float(loss_config.w_log_mag), eps=float(loss_config.eps))

  def min_samples(self) -> int:
    return max(r.min_samples() for r in self.resolutions)


def hann_window(win_length: int) -> np.ndarray:
  """Periodic Hann window, as torch.hann_window(win_length) (periodic=True): [win_length] float32."""
  k = np.arange(win_length, dtype=np.float64)
  return (0.5 - 0.5 * np.cos(2.0 * np.pi * k / win_length)).astype(np.float32)


def _frames(x, res: STFTResolution):
  """[..., n] float32 -> windowed frames [..., frames, win_length] (torch.stft centring, docs/model.md)."""
  n = x.shape[-1]
  half = res.fft_size // 2
  pad = [(0, 0)] * (x.ndim - 1) + [(half, half)]
  padded = jnp.pad(x, pad, mode='reflect')
  num_frames = res.num_frames(n)
  # Frame t's window covers padded[t*hop + offset : t*hop + offset + win].
  offset = (res.fft_size - res.win_length) // 2
  blocks_per_frame = -(-res.win_length // res.hop_size)
  num_blocks = num_frames - 1 + blocks_per_frame
  needed = num_blocks * res.hop_size
  tail = padded[..., offset:offset + needed]
  short = needed - tail.shape[-1]
  if short > 0:
    # Only samples past the last window's end are missing; they are sliced off below.
    tail = jnp.pad(tail, [(0, 0)] * (x.ndim - 1) + [(0, short)])
  blocks = tail.reshape(x.shape[:-1] + (num_blocks, res.hop_size))
  frames = jnp.concatenate(
      [blocks[..., j:j + num_frames, :] for j in range(blocks_per_frame)], axis=-1)
  frames = frames[..., :res.win_length]
  return frames * jnp.asarray(hann_window(res.win_length))


def stft_magnitude(x, res: STFTResolution, eps: float = 1e-8):
  """|STFT| as auraloss computes it: sqrt(max(re² + im², eps)).

  Args:
    x: [..., samples] audio, any float dtype (computed in float32).
    res: the resolution (FFT size, window length, hop).
    eps: floor on the squared magnitude.

  Returns:
    [..., frames, fft_size // 2 + 1] float32 (auraloss's layout is [..., bins, frames]; the loss does
    not care).
  """
  x = jnp.asarray(x, jnp.float32)
  if x.shape[-1] < res.min_samples():
    raise ValueError(f'STFT of {x.shape[-1]} samples with fft_size {res.fft_size}: reflect padding needs at '
                     f'least {res.min_samples()} samples; use longer segments or smaller config.loss.fft_sizes.')
  spec = jnp.fft.rfft(_frames(x, res), n=res.fft_size, axis=-1)
  power = jnp.square(spec.real) + jnp.square(spec.imag)
  return jnp.sqrt(jnp.maximum(power, eps))


def _safe_norm(sum_sq):
  # The gradient of sqrt at 0 is inf, and 0 · inf = NaN would poison the whole batch's gradient when a
  # prediction equals its target (e.g. silent padding examples); the subgradient 0 is used instead.
  positive = sum_sq > 0
  return jnp.where(positive, jnp.sqrt(jnp.where(positive, sum_sq, 1.0)), 0.0)


def stft_loss_terms(pred, target, res: STFTResolution, eps: float = 1e-8):
  """Per-example spectral convergence and log-magnitude distance at one resolution.

  Args:
    pred: [b, samples] predicted audio.
    target: [b, samples] target audio (Y in the definitions).
    res: the resolution.
    eps: floor on the squared magnitude.

  Returns:
    dict with 'sc' and 'log_mag', each float32 [b].
  """
  _check_pair(pred, target)
  # Two STFT calls, not one on the stacked pair: in a training step only `pred` is
  # differentiated, and a stacked call's backward would run its FFTs on the target's half too
  # (its cotangent is dropped only after them). Apart, the backward covers the prediction
  # alone: the loss and its gradient are the same bit for bit, about 30 % less work
  # (bench/README.md, "Training steps per hour").
  x_mag = stft_magnitude(pred, res, eps)
  y_mag = stft_magnitude(target, res, eps)
  axes = (-2, -1)
  sc = _safe_norm(jnp.sum(jnp.square(y_mag - x_mag), axis=axes)) / jnp.sqrt(
      jnp.sum(jnp.square(y_mag), axis=axes))  # >= sqrt(eps · bins): never 0
  log_mag = jnp.mean(jnp.abs(jnp.log(y_mag) - jnp.log(x_mag)), axis=axes)
  return {'sc': sc, 'log_mag': log_mag}


def stft_loss(pred, target, res: STFTResolution, w_sc: float = 1.0, w_log_mag: float = 1.0,
              eps: float = 1e-8):
  """Single-resolution auraloss STFT loss per example: w_sc · SC + w_log_mag · LM -> float32 [b]."""
  terms = stft_loss_terms(pred, target, res, eps)
  return w_sc * terms['sc'] + w_log_mag * terms['log_mag']


def multi_resolution_stft_loss(pred, target, loss_config, *, reduction: str = 'none',
                               example_mask=None):
  """Multi-resolution STFT loss (mean over resolutions of the single-resolution loss).

  Traceable inside jit (all sizes are static, taken from the config and the input shapes).

  Args:
    pred: [b, samples] predicted mono mix, any float dtype.
    target: [b, samples] target mix.
    loss_config: `config.loss` (fft_sizes, win_lengths, hop_fraction, w_sc, w_log_mag, eps) or an
      `MRSTFTSpec`.
    reduction: 'none' -> float32 [b] per-example losses; 'mean' -> float32 scalar, the mean over the
      examples where `example_mask` is True (all if None). See docs/model.md ("The loss") for how
      this differs from auraloss's batch-wide spectral convergence.
    example_mask: optional bool [b], False for padding examples (used by reduction='mean').

  Returns:
    float32 [b] (reduction='none') or float32 [] (reduction='mean').
  """
  if reduction not in ('none', 'mean'):
    raise ValueError(f"reduction must be 'none' or 'mean', got {reduction!r}.")
  spec = MRSTFTSpec.from_config(loss_config)
  _check_pair(pred, target)
  if pred.shape[-1] < spec.min_samples():
    largest = max(r.fft_size for r in spec.resolutions)
    raise ValueError(f'MR-STFT loss on {pred.shape[-1]} samples: the largest FFT ({largest}) needs at least '
                     f'{spec.min_samples()} samples; use longer segments or smaller config.loss.fft_sizes.')
  total = 0.0
  for res in spec.resolutions:
    total = total + stft_loss(pred, target, res, spec.w_sc, spec.w_log_mag, spec.eps)
  per_example = total / len(spec.resolutions)
  if reduction == 'mean':
    return masked_mean(per_example, example_mask)
  return per_example


def masked_mean(values, mask=None):
  """Mean of [b] values over mask == True; 0 when the mask is all False (no NaN into the gradient)."""
  if mask is None:
    return jnp.mean(values)
  mask = jnp.asarray(mask, bool)
  # where, not multiply: a non-finite padding value must not leak into the mean.
  total = jnp.sum(jnp.where(mask, values, 0.0))
  return total / jnp.maximum(jnp.sum(mask), 1).astype(values.dtype)


# The spec is a frozen dataclass of Python numbers, hence a valid static argument.
_mr_loss_jit = jax.jit(multi_resolution_stft_loss, static_argnames=('loss_config', 'reduction'))


def mr_stft_loss_jit(pred, target, loss_config):
  """Jitted per-example loss for use outside a training step (one compile per input shape)."""
  return _mr_loss_jit(pred, target, loss_config=MRSTFTSpec.from_config(loss_config))


def _check_pair(pred, target):
  if pred.shape != target.shape or len(pred.shape) < 1:
    raise ValueError(f'STFT loss needs prediction and target of the same shape [b, samples], got '
                     f'{tuple(pred.shape)} and {tuple(target.shape)}; trim or pad the target to the mix length.')


__all__ = [
    'STFTResolution', 'MRSTFTSpec', 'hann_window', 'stft_magnitude', 'stft_loss_terms', 'stft_loss',
    'multi_resolution_stft_loss', 'masked_mean', 'mr_stft_loss_jit', 'mix_loss', 'balance_loss',
    'gain_change_loss', 'stereo_loss', 'pan_loss', 'spread_loss'
]


def mix_loss(mix, target, loss_spec):
  """Per-example multi-resolution STFT loss [b] of mix [b, n] against target [b, >= n].

  The model mixes whole F2 frames only (n = frames × f2), so the target is cut
  to the mix's length. The loss is computed in float32 whatever the compute dtype.
  """
  n = mix.shape[-1]
  if target.shape[-1] < n:
    raise ValueError(f'target has {target.shape[-1]} samples, fewer than the mix ({n}).')
  return multi_resolution_stft_loss(mix.astype(jnp.float32),
                                           target[:, :n].astype(jnp.float32), loss_spec)


def _gains_db(gains, floor_db: float):
  """20 log10(g + floor): the gain terms' dB, with a gradient at g = 0 (metrics floor instead)."""
  return 20.0 * jnp.log10(gains.astype(jnp.float32) + 10.0 ** (floor_db / 20.0))


def balance_loss(gains, ideal_gains, channel_mask, floor_db: float = -80.0):
  """Per-example mean |balance error| in dB [b] of gains [b, c, t] against ideal_gains [b, c].

  The training form of `metrics.balance_error_db`: on every F2 frame, the gains in dB relative to
  their mean over the active channels, against the ideal gains relative to theirs (an overall
  level is no error), averaged over the active channels and the frames. Per frame rather than
  on the time-mean, so a gain that wanders around the right level costs too. Gains are taken as
  20 log10(g + floor) so a channel at zero keeps a gradient. An example whose ideal gains are
  unknown on an active channel (NaN, or not positive) gives 0.
  """
  mask = jnp.asarray(channel_mask, bool)
  ideal = jnp.asarray(ideal_gains, jnp.float32)
  known = jnp.all(jnp.where(mask, jnp.isfinite(ideal) & (ideal > 0), True), axis=-1)  # [b]
  ideal_db = 20.0 * jnp.log10(jnp.where(mask & known[:, None], ideal, 1.0))
  pred_db = _gains_db(gains, floor_db)
  m = mask.astype(jnp.float32)
  n = jnp.maximum(jnp.sum(m, axis=-1), 1.0)  # [b]
  pred_rel = pred_db - jnp.sum(pred_db * m[..., None], axis=1, keepdims=True) / n[:, None, None]
  ideal_rel = ideal_db - (jnp.sum(ideal_db * m, axis=-1) / n)[:, None]
  err = jnp.abs(pred_rel - ideal_rel[..., None]) * m[..., None]
  per_example = jnp.sum(err, axis=(1, 2)) / (n * gains.shape[-1])
  return jnp.where(known, per_example, 0.0)


def gain_change_loss(gains, channel_mask, floor_db: float = -80.0):
  """Per-example mean |gain change| in dB per frame [b] of gains [b, c, t].

  The training form of `metrics.gain_change_db_per_s` (times the frame duration): the mean over
  the active channels and the frame transitions of |g_dB[t+1] - g_dB[t]|, with the gains taken
  as 20 log10(g + floor) as in `balance_loss`. An L1 penalty, so it favours gains that hold
  still between the changes the music needs (the paper's complaint about DMC's jumps).
  """
  m = jnp.asarray(channel_mask, bool).astype(jnp.float32)
  db = _gains_db(gains, floor_db)
  change = jnp.mean(jnp.abs(jnp.diff(db, axis=-1)), axis=-1)  # [b, c]
  return jnp.sum(change * m, axis=-1) / jnp.maximum(jnp.sum(m, axis=-1), 1.0)


def stereo_loss(stereo_mix, target_stereo, loss_spec, side_weight: float = 1.0):
  """Per-example MR-STFT of a stereo mix on its mid and side channels [b].

  Args:
    stereo_mix: [b, 2, n] left/right.
    target_stereo: [b, 2, >= n] (cut to the mix's length).
    loss_spec: `config.loss` or an `MRSTFTSpec`.
    side_weight: the side (difference) term's weight (config.loss.side_weight).
  Returns:
    float32 [b]: MR-STFT(mid) + side_weight · MR-STFT(side), the side term 0 where
    the target's side is silent (`stereo.has_side`; the pan term still holds
    those pans). At the centre the mid is the
    mono mix (`stereo.mid_side`), so a centred mixer's mid term is the mono loss
    against the target's mid. docs/model.md ("Stereo").
  """
  n = stereo_mix.shape[-1]
  if target_stereo.shape[-1] < n:
    raise ValueError(f'target_stereo has {target_stereo.shape[-1]} samples, fewer than the mix ({n}).')
  pred = stereo.mid_side(stereo_mix.astype(jnp.float32))
  target = stereo.mid_side(target_stereo[..., :n].astype(jnp.float32))
  b = pred.shape[0]
  both = multi_resolution_stft_loss(pred.reshape(2 * b, n), target.reshape(2 * b, n),
                                    loss_spec).reshape(b, 2)
  return both[:, 0] + side_weight * jnp.where(stereo.has_side(target), both[:, 1], 0.0)


def pan_loss(pans, ideal_pans, channel_mask, *, width_only: bool = False):
  """Per-example mean |pan - designed pan| [b] of pans [b, c, t] against ideal_pans [b, c].

  Over the active channels and frames. An example whose pans are unknown on an
  active channel (NaN: data without a designed placement) gives 0.

  width_only: the error of the pan's width, | |pan| - |designed pan| |, blind to the side
  (config.loss.pan_width_weight). Where a part's side is uncertain the full error pays a
  wrong side as much as a right one earns, and the widths stay near the centre; this term
  teaches how far each part goes on its own.
  """
  pans = pans.astype(jnp.float32)

  def error(ideal):  # [b, c] -> [b, c, t]
    if width_only:
      return jnp.abs(jnp.abs(pans) - jnp.abs(ideal)[..., None])
    return jnp.abs(pans - ideal[..., None])

  return _mean_over_placed(error, ideal_pans, channel_mask)


def spread_loss(spread_logit, ideal_pans, channel_mask, *, off_centre: float = 0.05):
  """Per-example cross-entropy [b] of the pan layout's spread from its logit [b, c, t].

  The spread is register.Layout's s = sigmoid(logit).

  The target: 1 where the designed pan is off the centre (|p| > off_centre: the spread parts,
  and the hats, which sit above them all and so shift no other part's rank), else 0; over the
  active channels and frames. From the logit (log-sigmoid), so a confidently wrong spread still
  learns. An example whose pans are unknown on an active channel gives 0, as `pan_loss`.
  """
  logit = spread_logit.astype(jnp.float32)

  def cross_entropy(ideal):  # [b, c] -> [b, c, t]
    target = (jnp.abs(ideal) > off_centre)[..., None]
    return -jnp.where(target, jax.nn.log_sigmoid(logit), jax.nn.log_sigmoid(-logit))

  return _mean_over_placed(cross_entropy, ideal_pans, channel_mask)


def _mean_over_placed(term, ideal_pans, channel_mask):
  """Per-example mean [b] of term(designed pans [b, c]) [b, c, t] over active channels and frames.

  The pans' terms' one rule for unknown placements: an example whose designed pan is unknown
  (NaN) on an active channel gives 0, and `term` sees 0 there rather than the NaN.
  """
  mask = jnp.asarray(channel_mask, bool)
  ideal = jnp.asarray(ideal_pans, jnp.float32)
  known = jnp.all(jnp.where(mask, jnp.isfinite(ideal), True), axis=-1)  # [b]
  values = term(jnp.where(mask & known[:, None], ideal, 0.0))
  m = mask.astype(jnp.float32)[..., None]
  per_example = jnp.sum(values * m, axis=(1, 2)) / (jnp.maximum(jnp.sum(m, axis=(1, 2)), 1.0)
                                                    * values.shape[-1])
  return jnp.where(known, per_example, 0.0)
