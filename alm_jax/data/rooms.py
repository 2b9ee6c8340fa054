"""Simulated rooms for bleed: a cached bank of close-microphone impulse responses.

Room k of a bank gets a random shoebox, RT60, source positions and one close mic
per source; pyroomacoustics computes its C x C responses, each mic's row aligned
and scaled to its own source's direct path (docs/data.md, "Bleed simulation").
A bank is deterministic in its `BankSpec`, simulated once and cached on disk
under a key of the spec, and kept in memory per process (`bank_for_config`).
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
import numpy as np

from alm_jax import outputs
from alm_jax import paths

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
               seed=int(b.get('seed', d.seed)), rt60=float_pair(b.get('rt60', d.rt60)),
               room_min=float_triple(b.get('room_min', d.room_min)),
               room_max=float_triple(b.get('room_max', d.room_max)),
               mic_distance=float_pair(b.get('mic_distance', d.mic_distance)),
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


def float_pair(v):
  return tuple(float(x) for x in v)[:2]


def float_triple(v):
  return tuple(float(x) for x in v)[:3]


class RirBank(NamedTuple):
  rirs: np.ndarray    # float16 [K, C, C, L]: h[k, mic, source, tap]
  energy: np.ndarray  # float32 [K, C, C]: sum of squares of each response


# ---- room simulation ---------------------------------------------------------


def absorption(rt60: float, dims: np.ndarray, max_order_cap: int, rir_seconds: float):
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
  e_abs, order = absorption(rt60, dims, spec.max_order,
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
