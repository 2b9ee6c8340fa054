"""Bleed applied on the fly: per example, a room from the bank, a severity and input levels.

A live stage puts one close microphone on each source, and every microphone also
hears every other source through the room. Per example, `draw` picks a room of
the bank (`alm_jax.data.rooms`), a bleed severity and input levels before and
after bleed; `apply_numpy` (the input pipeline's path) or `apply_batch_jax`
convolve them in; the target mix is never touched. A song laid out on a stage
(`alm_jax.data.stage`) brings its own responses instead of a bank room. The model
of the levels and the severity is in docs/data.md ("Bleed simulation").
"""

import dataclasses
import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import scipy.fft

from alm_jax.data.rooms import float_pair
from alm_jax.data.rooms import RirBank

BLEED_OFF_DB = -100.0  # bleed_severity reported when no bleed was simulated


# ---- per-example randomisation --------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Settings:
  """The per-example randomisation switches and ranges (config.data.bleed / levels)."""
  bleed: bool = True
  severity_db: tuple[float, float] = (-30.0, -6.0)
  levels: bool = True
  pre_bleed_db: tuple[float, float] = (-12.0, 12.0)
  post_bleed_db: tuple[float, float] = (-12.0, 12.0)
  backend: str = 'numpy'
  workers: int = 1

  @classmethod
  def from_config(cls, data_config) -> 'Settings':
    """From config.data (its `bleed` and `levels` sections)."""
    d = data_config
    backend = str(d.bleed.get('backend', 'numpy'))
    if backend not in ('numpy', 'jax'):
      raise ValueError(f"config.data.bleed.backend must be 'numpy' or 'jax', got {backend!r}.")
    return cls(bleed=bool(d.bleed.enabled), severity_db=float_pair(d.bleed.severity_db),
               levels=bool(d.levels.enabled), pre_bleed_db=float_pair(d.levels.pre_bleed_db),
               post_bleed_db=float_pair(d.levels.post_bleed_db), backend=backend,
               workers=int(d.bleed.get('workers', 1)))


class Draw(NamedTuple):
  """One example's random input conditions, for c channels."""
  pre_gain: np.ndarray     # float32 [c] linear
  post_gain: np.ndarray    # float32 [c] linear
  rirs: np.ndarray | None  # float32 [c, c, L] with severity applied, or None (no bleed)
  severity_db: float


def draw(rng: np.random.Generator, num_channels: int, bank: RirBank | None,
         settings: Settings, responses: np.ndarray | None = None) -> Draw:
  """Draws levels, a room, channel slots and a severity (see module docstring).

  Every random number is drawn whatever the switches, so turning one
  randomisation off leaves the others' values unchanged for the same seed.

  responses: float [c, c, L] the song's own stage (`alm_jax.data.stage.responses`, in the
    channels' order) instead of a bank room: its bleed is scaled by the drawn severity's
    offset from the middle of `severity_db` (the geometry's bleed at the middle), and the
    severity reported is the result's (`severity_of`). The same numbers are drawn either way.
  """
  c = int(num_channels)
  pre_db = rng.uniform(*settings.pre_bleed_db, size=c)
  post_db = rng.uniform(*settings.post_bleed_db, size=c)
  severity_db = float(rng.uniform(*settings.severity_db))
  room = int(rng.integers(bank.rirs.shape[0])) if bank is not None else 0
  slots = rng.permutation(bank.rirs.shape[1])[:c] if bank is not None else None
  if not settings.levels:
    pre_db, post_db = np.zeros(c), np.zeros(c)
  pre, post = (10.0 ** (pre_db / 20)).astype(np.float32), (10.0 ** (post_db / 20)).astype(np.float32)
  if not settings.bleed or c < 2:
    return Draw(pre, post, None, BLEED_OFF_DB)
  off = ~np.eye(c, dtype=bool)
  if responses is not None:
    h = np.array(responses, np.float32)
    if h.shape[:2] != (c, c):
      raise ValueError(f'Stage responses of shape {h.shape} for {c} channels.')
    offset_db = severity_db - float(np.mean(settings.severity_db))
    h[off] *= np.float32(10.0 ** (offset_db / 20))
    return Draw(pre, post, h, severity_of(h))
  if bank is None:
    raise ValueError('Bleed is enabled but no RIR bank was given.')
  if c > bank.rirs.shape[1]:
    raise ValueError(f'{c} channels but the RIR bank has {bank.rirs.shape[1]} sources per room; '
                     'rebuild it with config.model.max_channels >= the channel count.')
  h = bank.rirs[room][np.ix_(slots, slots)].astype(np.float32)
  e = bank.energy[room][np.ix_(slots, slots)].astype(np.float64)
  natural = np.mean((e * off).sum(axis=1) / np.diag(e))
  h[off] *= np.float32(math.sqrt(10.0 ** (severity_db / 10) / natural))
  return Draw(pre, post, h, severity_db)


def severity_of(h: np.ndarray) -> float:
  """dB: the mean over mics of (bleed energy / own-source energy) of responses h [c, c, L]."""
  e = np.sum(np.square(h, dtype=np.float64), axis=-1)
  off = ~np.eye(e.shape[0], dtype=bool)
  return float(10 * np.log10(np.mean((e * off).sum(axis=1) / np.diag(e))))


def apply_numpy(sources: np.ndarray, d: Draw, workers: int = 1) -> np.ndarray:
  """float32 sources [c, n] -> mic signals [c, n] under draw `d`."""
  if d.rirs is None:
    return sources * (d.pre_gain * d.post_gain)[:, None]
  # Both level sets are folded into the responses: one pass over the audio.
  h = d.rirs * d.post_gain[:, None, None] * d.pre_gain[None, :, None]
  return convolve_numpy(sources, h, workers=workers)


def ola_sizes(rir_samples: int) -> tuple[int, int]:
  """(FFT size, block hop) for overlap-add with responses of `rir_samples` taps.

  An FFT of about 4x the response keeps the zero-padding overhead near 25 %
  (a 2x FFT wastes half of every transform); hop = fft - taps + 1, so each
  block's output spills only into the next block.
  """
  nfft = scipy.fft.next_fast_len(4 * rir_samples, real=True)
  return nfft, nfft - rir_samples + 1


def convolve_numpy(x: np.ndarray, h: np.ndarray, workers: int = 1) -> np.ndarray:
  """Multichannel FIR mixing by overlap-add FFT convolution (scipy.fft).

  Args:
    x: float32 [sources, n].
    h: float32 [mics, sources, L].
  Returns:
    float32 [mics, n]: y[i] = sum_j (h[i, j] * x[j])[:n] (causal, cut to n).
  """
  c, n = x.shape
  taps = h.shape[-1]
  nfft, hop = ola_sizes(taps)
  nb = -(-n // hop)
  blocks = np.zeros((c, nb, nfft), np.float32)  # zero tails: no padding copy inside the FFT
  flat = np.zeros((c, nb * hop), np.float32)
  flat[:, :n] = x
  blocks[:, :, :hop] = flat.reshape(c, nb, hop)
  spec_x = scipy.fft.rfft(blocks, axis=-1, workers=workers)                     # [j, nb, F]
  spec_h = scipy.fft.rfft(h.astype(np.float32, copy=False), nfft, axis=-1, workers=workers)
  # Per frequency a [mics, sources] @ [sources, blocks] product: one batched matmul
  # is several times faster than einsum on complex64.
  spec_y = np.matmul(spec_h.transpose(2, 0, 1), spec_x.transpose(2, 0, 1))       # [F, i, nb]
  y = scipy.fft.irfft(np.ascontiguousarray(spec_y.transpose(1, 2, 0)), nfft, axis=-1,
                      workers=workers)                                            # [i, nb, nfft]
  out = y[:, :, :hop].copy()
  out[:, 1:, :taps - 1] += y[:, :-1, hop:]
  return out.reshape(-1, nb * hop)[:, :n]


@jax.jit
def convolve_jax(x, h):
  """`convolve_numpy` batched under jit: x [b, sources, n], h [b, mics, sources, L] -> [b, mics, n]."""
  bsz, c, n = x.shape
  taps = h.shape[-1]
  nfft, hop = ola_sizes(taps)
  nb = -(-n // hop)
  xp = jnp.pad(x.astype(jnp.float32), ((0, 0), (0, 0), (0, nb * hop - n)))
  blocks = jnp.pad(xp.reshape(bsz, c, nb, hop), ((0, 0), (0, 0), (0, 0), (0, nfft - hop)))
  spec_x = jnp.fft.rfft(blocks, axis=-1)
  spec_h = jnp.fft.rfft(h.astype(jnp.float32), nfft, axis=-1)
  spec_y = jnp.einsum('bijf,bjkf->bikf', spec_h, spec_x)
  y = jnp.fft.irfft(spec_y, nfft, axis=-1)
  out = y[..., :hop].at[:, :, 1:, :taps - 1].add(y[:, :, :-1, hop:])
  return out.reshape(bsz, -1, nb * hop)[..., :n]


def apply_batch_jax(sources: np.ndarray, draws: list[Draw], rir_samples: int) -> np.ndarray:
  """`apply_numpy` for a whole batch in one jitted call.

  Args:
    sources: float32 [b, C, n], channels past each draw's count are zero.
    draws: one Draw per example.
  Returns:
    float32 [b, C, n] numpy.
  """
  bsz, cmax, _ = sources.shape
  pre = np.zeros((bsz, cmax), np.float32)
  post = np.zeros((bsz, cmax), np.float32)
  h = np.zeros((bsz, cmax, cmax, rir_samples), np.float32)
  for e, d in enumerate(draws):
    c = d.pre_gain.shape[0]
    pre[e, :c], post[e, :c] = d.pre_gain, d.post_gain
    if d.rirs is None:
      h[e, np.arange(c), np.arange(c), 0] = 1.0  # identity: no bleed
    else:
      h[e, :c, :c] = d.rirs
  h *= post[:, :, None, None] * pre[:, None, :, None]
  return np.asarray(convolve_jax(sources, h))
