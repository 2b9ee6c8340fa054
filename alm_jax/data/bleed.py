"""Bleed simulation: a cached bank of room impulse responses and its on-the-fly use.

A live stage puts one close microphone on each source, and every microphone
also hears every other source through the room ("bleed"). The paper simulates
this with pyroomacoustics, randomising the room, the bleed severity and the
input levels before and after bleed; the target mix stays the clean human mix.

Bank (precomputed once, cached on disk, deterministic by `seed`): room k gets a
random shoebox (size in [room_min, room_max] m, RT60 in `rt60` s turned into a
wall absorption by Sabine's formula, image-source order capped at `max_order`),
`C = config.model.max_channels` sources at least `min_source_spacing` m apart,
and one close mic per source at `mic_distance` m. pyroomacoustics computes the
C x C impulse responses h[k, mic, source]; every row (one mic) is shifted so the
direct path of its own source lands on sample 0 and scaled so that peak is 1,
which keeps each mic time-aligned with the (untouched) target mix. Responses are
cut to `rir_seconds` with a raised-cosine fade and stored as float16
[K, C, C, L] plus their float32 energies [K, C, C].

Per example (`draw` then `apply_numpy` / `convolve_jax`), with c <= C channels:
  pre-bleed levels   x_j = s_j * 10^(pre_j / 20)          (how loud each source is)
  bleed              m_i = sum_j h'_ij * x_j               (c channels -> random c mic/
                                                            source slots of a random room)
  post-bleed levels  y_i = m_i * 10^(post_i / 20)          (input gain of each channel)
where h' scales the off-diagonal responses by one factor so that the mean over
mics of (bleed energy / own-source energy) equals the drawn severity (dB,
uniform in `severity_db`); the room keeps how the bleed spreads over mics.
`config.data.bleed.enabled = False` skips the room (severity reported as
BLEED_OFF_DB), `config.data.levels.enabled = False` sets both level sets to 0 dB.

Where the convolution runs -- measured with bench/input_pipeline.py on 2 CPU cores
shared with other jobs (so process CPU time per batch is quoted; wall time was
about 3x that), overlap-add FFT convolution with all c x c paths:
                                quickstart batch          ALM-MR batch
                                4 x <=6 ch x 4 s, L=3969  4 x <=8 ch x 20 s, L=8820
  numpy/scipy.fft, per example       0.09 s                   0.71 s
  JAX jit, one padded batch call     0.16 s                   1.34 s
(19 active channels in both batches.) The input pipeline therefore uses scipy.fft
(`config.data.bleed.backend = 'numpy'`, the default): it is the faster CPU path
(it skips padded channels, which a fixed-shape jitted call cannot), needs no
device->host copy to honour the pipeline's numpy interface, and leaves the
accelerator to the training step. `backend = 'jax'` runs the same overlap-add
under jit on the default device, for a GPU host whose CPUs cannot keep up (the
bench prints both next to the train step, so this is visible per machine).
"""

import dataclasses
import functools
import hashlib
import io
import json
import math
import os
from typing import NamedTuple

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import scipy.fft

from alm_jax import outputs
from alm_jax import paths

BLEED_OFF_DB = -100.0  # bleed_severity reported when no bleed was simulated
_BANK_FORMAT = 1  # bump when the bank's meaning changes, to invalidate caches


@dataclasses.dataclass(frozen=True)
class BankSpec:
  """Everything that determines an RIR bank (and so its cache key)."""
  size: int
  channels: int
  rir_samples: int
  sample_rate: int = 44100
  seed: int = 0
  rt60: tuple[float, float] = (0.2, 0.8)
  room_min: tuple[float, float, float] = (4.0, 4.0, 2.5)
  room_max: tuple[float, float, float] = (15.0, 12.0, 5.0)
  mic_distance: tuple[float, float] = (0.03, 0.3)
  min_source_spacing: float = 1.0
  max_order: int = 12

  @classmethod
  def from_config(cls, config) -> 'BankSpec':
    """From the full config: config.data.bleed and config.model (channels, rate).

    Fields absent from config.data.bleed take this class's defaults.
    """
    b = config.data.bleed
    d = cls(size=1, channels=1, rir_samples=1)
    rate = int(config.model.sample_rate)
    return cls(size=int(b.bank_size), channels=int(config.model.max_channels),
               rir_samples=int(round(float(b.get('rir_seconds', 0.2)) * rate)), sample_rate=rate,
               seed=int(b.get('seed', d.seed)), rt60=_pair(b.get('rt60', d.rt60)),
               room_min=_triple(b.get('room_min', d.room_min)),
               room_max=_triple(b.get('room_max', d.room_max)),
               mic_distance=_pair(b.get('mic_distance', d.mic_distance)),
               min_source_spacing=float(b.get('min_source_spacing', d.min_source_spacing)),
               max_order=int(b.get('max_order', d.max_order)))

  def validate(self):
    if self.size < 1:
      raise ValueError(f'config.data.bleed.bank_size must be >= 1, got {self.size}.')
    if self.channels < 1:
      raise ValueError(f'config.model.max_channels must be >= 1, got {self.channels}.')
    if self.rir_samples < 16:
      raise ValueError(f'config.data.bleed.rir_seconds gives {self.rir_samples} samples; use at '
                       'least a few milliseconds.')
    if any(lo > hi for lo, hi in zip(self.room_min, self.room_max)):
      raise ValueError(f'config.data.bleed.room_min {self.room_min} exceeds room_max '
                       f'{self.room_max}.')
    if min(self.room_min[:2]) < 2.0 or self.room_min[2] < 2.0:
      raise ValueError(f'config.data.bleed.room_min {self.room_min} is too small to place '
                       'sources and mics; use at least 2 m per side.')
    if not 0 < self.mic_distance[0] <= self.mic_distance[1] < self.min_source_spacing / 2:
      raise ValueError(f'config.data.bleed.mic_distance {self.mic_distance} must be positive, '
                       'ordered, and below half of min_source_spacing '
                       f'({self.min_source_spacing}) so each mic is closest to its own source.')
    if not 0 < self.rt60[0] <= self.rt60[1]:
      raise ValueError(f'config.data.bleed.rt60 {self.rt60} must be positive and ordered.')
    if self.max_order < 0:
      raise ValueError(f'config.data.bleed.max_order must be >= 0, got {self.max_order}.')

  def key(self) -> str:
    blob = json.dumps({'format': _BANK_FORMAT, **dataclasses.asdict(self)}, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]


def _pair(v):
  return tuple(float(x) for x in v)[:2]


def _triple(v):
  return tuple(float(x) for x in v)[:3]


class RirBank(NamedTuple):
  rirs: np.ndarray    # float16 [K, C, C, L]: h[k, mic, source, tap]
  energy: np.ndarray  # float32 [K, C, C]: sum of squares of each response


# ---- room simulation ---------------------------------------------------------


def _absorption(rt60: float, dims: np.ndarray, max_order_cap: int, rir_seconds: float):
  """Sabine's inverse: wall energy absorption and image-source order for a target RT60.

  A short RT60 in a big room needs absorption > 1, which no wall has; such rooms
  get the most absorbent feasible walls (0.95) and so a somewhat longer RT60.
  The order also stops at reflections that arrive after the kept `rir_seconds`:
  the simulation cost grows with the cube of the order.
  """
  c = 343.0
  volume = float(np.prod(dims))
  surface = 2 * (dims[0] * dims[1] + dims[0] * dims[2] + dims[1] * dims[2])
  e_abs = 24 * math.log(10) * volume / (c * surface * rt60)
  # Reflections out to c * rt60 metres: the largest sphere inside the diamond of
  # image rooms of a given order (as pyroomacoustics.inverse_sabine).
  radius = min(a * b / math.hypot(a, b) for a, b in ((dims[0], dims[1]), (dims[0], dims[2]),
                                                   (dims[1], dims[2])))
  order = math.ceil(c * min(rt60, rir_seconds) / radius)
  return float(min(e_abs, 0.95)), int(max(0, min(order, max_order_cap)))


def _place(rng, dims, spec: BankSpec):
  """Source and close-mic positions [C, 3] inside the room."""
  margin = 0.5
  lo = np.array([margin, margin, 0.5])
  hi = np.array([dims[0] - margin, dims[1] - margin, min(2.0, dims[2] - 0.5)])
  spacing = spec.min_source_spacing
  sources = []
  tries = 0
  while len(sources) < spec.channels:
    p = rng.uniform(lo, hi)
    tries += 1
    if all(np.linalg.norm(p - q) >= spacing for q in sources):
      sources.append(p)
    elif tries > 200:
      # The room is too small for this many sources at this spacing: start over
      # closer together rather than fail (the mic distance check below still holds).
      sources, tries, spacing = [], 0, spacing * 0.8
      if spacing < 2 * spec.mic_distance[1]:
        raise ValueError(
            f'Cannot place {spec.channels} sources in a {dims.round(1).tolist()} m room; raise '
            'config.data.bleed.room_min or lower min_source_spacing / mic_distance.')
  sources = np.stack(sources)
  mics = np.empty_like(sources)
  for i, s in enumerate(sources):
    for _ in range(100):
      v = rng.normal(size=3)
      v /= np.linalg.norm(v)
      m = s + v * rng.uniform(*spec.mic_distance)
      inside = np.all(m > 0.1) and np.all(m < dims - 0.1)
      own = np.linalg.norm(m - s)
      others = [np.linalg.norm(m - q) for j, q in enumerate(sources) if j != i]
      if inside and all(own < o for o in others):
        break
    else:  # pragma: no cover - only for degenerate settings
      raise ValueError('Could not place a close mic; lower config.data.bleed.mic_distance.')
    mics[i] = m
  return sources, mics


def simulate_room(spec: BankSpec, index: int) -> np.ndarray:
  """Room `index` of the bank: float32 [C mics, C sources, L] (see module docstring)."""
  import pyroomacoustics as pra  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng([spec.seed, index])
  dims = rng.uniform(spec.room_min, spec.room_max)
  rt60 = rng.uniform(*spec.rt60)
  e_abs, order = _absorption(rt60, dims, spec.max_order,
                              spec.rir_samples / spec.sample_rate)
  sources, mics = _place(rng, dims, spec)
  room = pra.ShoeBox(dims, fs=spec.sample_rate, materials=pra.Material(e_abs), max_order=order)
  for s in sources:
    room.add_source(s)
  room.add_microphone_array(mics.T)
  room.compute_rir()
  c, length = spec.channels, spec.rir_samples
  fade = np.ones(length, np.float32)
  n_fade = max(1, length // 10)
  fade[-n_fade:] = 0.5 * (1 + np.cos(np.linspace(0, np.pi, n_fade)))
  out = np.zeros((c, c, length), np.float32)
  for i in range(c):
    own = np.asarray(room.rir[i][i], np.float64)
    t0 = int(np.argmax(np.abs(own)))
    peak = own[t0]
    for j in range(c):
      h = np.asarray(room.rir[i][j], np.float64)[t0:t0 + length] / peak
      out[i, j, :h.size] = h
  return out * fade


def build_bank(spec: BankSpec) -> RirBank:
  spec.validate()
  rirs = np.empty((spec.size, spec.channels, spec.channels, spec.rir_samples), np.float16)
  energy = np.empty((spec.size, spec.channels, spec.channels), np.float32)
  for k in range(spec.size):
    h = simulate_room(spec, k)
    energy[k] = np.sum(h.astype(np.float64) ** 2, axis=-1)
    rirs[k] = h.astype(np.float16)
    if (k + 1) % 32 == 0:
      logging.info('RIR bank: %d / %d rooms simulated.', k + 1, spec.size)
  return RirBank(rirs, energy)


def load_or_build_bank(spec: BankSpec, cache_dir) -> RirBank:
  """The bank for `spec`, read from `cache_dir` or simulated and written there.

  `cache_dir` is a local folder or a URL (gs://...), str or path object. The
  file name carries a hash of `spec`, so a changed setting builds a new bank
  instead of silently reusing a stale one. Writes are atomic (a uniquely named
  temp file, then a rename), so concurrent processes building the same bank
  cannot corrupt it.
  """
  spec.validate()
  cache_dir = paths.as_path(cache_dir)
  path = cache_dir / f'rir_bank_{spec.key()}.npz'
  if path.exists():
    try:
      # Read whole: np.load needs a seekable file, which remote files may not be.
      with np.load(io.BytesIO(path.read_bytes())) as f:
        bank = RirBank(f['rirs'], f['energy'])
        stored = json.loads(str(f['spec']))
      if stored == json.loads(json.dumps(dataclasses.asdict(spec))):
        return bank
      logging.warning('RIR bank %s does not match its settings; rebuilding it.', path)
    except (OSError, ValueError, KeyError) as e:
      logging.warning('RIR bank %s is unreadable (%s); rebuilding it.', path, e)
  logging.info('Simulating an RIR bank of %d rooms (%d channels) into %s.', spec.size,
               spec.channels, path)
  bank = build_bank(spec)
  cache_dir.mkdir(parents=True, exist_ok=True)
  buffer = io.BytesIO()
  np.savez(buffer, rirs=bank.rirs, energy=bank.energy,
           spec=np.array(json.dumps(dataclasses.asdict(spec))))
  outputs.atomic_write_bytes(path, buffer.getvalue())
  return bank


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
    return cls(bleed=bool(d.bleed.enabled), severity_db=_pair(d.bleed.severity_db),
               levels=bool(d.levels.enabled), pre_bleed_db=_pair(d.levels.pre_bleed_db),
               post_bleed_db=_pair(d.levels.post_bleed_db), backend=backend,
               workers=int(d.bleed.get('workers', 1)))


class Draw(NamedTuple):
  """One example's random input conditions, for c channels."""
  pre_gain: np.ndarray     # float32 [c] linear
  post_gain: np.ndarray    # float32 [c] linear
  rirs: np.ndarray | None  # float32 [c, c, L] with severity applied, or None (no bleed)
  severity_db: float


def draw(rng: np.random.Generator, num_channels: int, bank: RirBank | None,
         settings: Settings) -> Draw:
  """Draws levels, a room, channel slots and a severity (see module docstring).

  Every random number is drawn whatever the switches, so turning one
  randomisation off leaves the others' values unchanged for the same seed.
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
  if bank is None:
    raise ValueError('Bleed is enabled but no RIR bank was given.')
  if c > bank.rirs.shape[1]:
    raise ValueError(f'{c} channels but the RIR bank has {bank.rirs.shape[1]} sources per room; '
                     'rebuild it with config.model.max_channels >= the channel count.')
  h = bank.rirs[room][np.ix_(slots, slots)].astype(np.float32)
  e = bank.energy[room][np.ix_(slots, slots)].astype(np.float64)
  off = ~np.eye(c, dtype=bool)
  natural = np.mean((e * off).sum(axis=1) / np.diag(e))
  h[off] *= np.float32(math.sqrt(10.0 ** (severity_db / 10) / natural))
  return Draw(pre, post, h, severity_db)


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


@functools.lru_cache(maxsize=4)
def _cached_bank(spec: BankSpec, cache_dir: str) -> RirBank:
  return load_or_build_bank(spec, cache_dir)


def bank_for_config(config, cache_dir) -> RirBank | None:
  """The bank config.data.bleed asks for (None when bleed is off), kept in memory per process.

  cache_dir: a local folder or a URL (gs://...), str or path object.
  """
  if not config.data.bleed.enabled:
    return None
  return _cached_bank(BankSpec.from_config(config), os.fspath(paths.as_path(cache_dir)))
