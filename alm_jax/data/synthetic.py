"""`synthetic_live`: procedurally generated multitrack songs with a known target mix.

Needs no download, so the quickstart and the tests train and evaluate end to end on a fresh
machine: `import alm_jax.data.synthetic` registers the builder, then
`tfds.load('synthetic_live', split='train')` (12 / 3 / 3 songs of 8-30 s, 3-6 channels) or
`'synthetic_live/tiny'` (seconds-long songs, for tests). Oscillator parts with a designed
balance (DESIGN_LEVELS_DB) store their `mix_gains`, mix = sum_c mix_gains[c] * raw[c], so the
ideal mixer is known; `generate_song` makes one song. Song structure, parts by channel count
and levels: docs/data.md ("`synthetic_live`").
"""

import dataclasses
import math

import numpy as np
import scipy.signal
import tensorflow_datasets as tfds

from alm_jax.data import common

DESIGN_LEVELS_DB = {  # RMS over the whole song, in the target mix
    'drums': -23.0, 'kick': -25.0, 'snare': -27.0, 'hihat': -35.0, 'snare_hihat': -27.0,
    'bass': -25.0, 'keys': -29.0, 'pad': -31.0, 'guitar': -30.0, 'lead': -25.0,
}
_SPLITS = ('train', 'validation', 'test')


@dataclasses.dataclass
class SyntheticLiveConfig(tfds.core.BuilderConfig):
  """How many songs, how long, how many channels."""
  num_train: int = 12
  num_validation: int = 3
  num_test: int = 3
  min_seconds: float = 8.0
  max_seconds: float = 30.0
  min_channels: int = 3
  max_channels: int = 6
  seed: int = 0


# ---- synthesis ----------------------------------------------------------------


def _hz(midi):
  return 440.0 * 2.0 ** ((np.asarray(midi, np.float64) - 69.0) / 12.0)


def _tone(f0: float, n: int, sr: int, amps, *, decay=None, vibrato=0.0, rng=None):
  """Additive tone [n]: harmonic k has amplitude amps[k-1] (and decay tau decay[k-1] s)."""
  t = np.arange(n, dtype=np.float32) / sr
  if vibrato:
    warp = t - vibrato / (2 * np.pi * 5.0) * np.cos(2 * np.pi * 5.0 * t)  # 5 Hz vibrato
  else:
    warp = t
  out = np.zeros(n, np.float32)
  for k, a in enumerate(amps, 1):
    if f0 * k >= 0.45 * sr:
      break
    phase = rng.uniform(0, 2 * np.pi) if rng is not None else 0.0
    h = a * np.sin(2 * np.pi * f0 * k * warp + phase)
    if decay is not None:
      h *= np.exp(-t / decay[k - 1])
    out += h
  return out


def _envelope(n: int, sr: int, attack: float, release: float) -> np.ndarray:
  env = np.ones(n, np.float32)
  a, r = min(n, max(1, int(attack * sr))), min(n, max(1, int(release * sr)))
  env[:a] = np.linspace(0, 1, a, dtype=np.float32)
  env[n - r:] *= np.linspace(1, 0, r, dtype=np.float32)
  return env


def _add(buf: np.ndarray, start: int, sound: np.ndarray, gain: float = 1.0):
  end = min(buf.size, start + sound.size)
  if end > start:
    buf[start:end] += gain * sound[:end - start]


@dataclasses.dataclass
class _Skeleton:
  """The musical plan every part follows."""
  sr: int
  n: int
  beat: int              # samples per beat
  bars: int
  chords: list           # per bar: MIDI triad (root octave 4)
  scale: np.ndarray      # MIDI notes of the key over several octaves
  active: np.ndarray     # bool [bars, channels]


def _skeleton(rng, n, sr, channels) -> _Skeleton:
  bpm = rng.uniform(84, 140)
  beat = int(round(60.0 / bpm * sr))
  bars = max(1, math.ceil(n / (4 * beat)))
  tonic = 60 + int(rng.integers(0, 12))
  minor = bool(rng.integers(2))
  steps = [0, 2, 3, 5, 7, 8, 10] if minor else [0, 2, 4, 5, 7, 9, 11]
  scale = np.array([tonic - 24 + 12 * o + s for o in range(5) for s in steps])
  progressions = [[0, 4, 5, 3], [0, 5, 3, 4], [5, 3, 0, 4], [0, 3, 4, 4], [0, 3, 0, 4]]
  prog = progressions[rng.integers(len(progressions))]
  chords = []
  for b in range(bars):
    d = prog[b % 4]
    chords.append([tonic + steps[(d + i) % 7] + 12 * ((d + i) // 7) for i in (0, 2, 4)])
  sections = math.ceil(bars / 4)
  plays = rng.random((sections, channels)) < 0.8
  plays[0] = True
  for s in range(sections):  # at least two parts in every section
    if plays[s].sum() < 2:
      plays[s, rng.choice(channels, 2, replace=False)] = True
  active = np.repeat(plays, 4, axis=0)[:bars]
  return _Skeleton(sr, n, beat, bars, chords, scale, active)


def _hits(sk: _Skeleton, ch: int, beats_in_bar, sound, rng, jitter=0.1):
  out = np.zeros(sk.n, np.float32)
  for bar in range(sk.bars):
    if not sk.active[bar, ch]:
      continue
    for b in beats_in_bar:
      _add(out, int((bar * 4 + b) * sk.beat), sound, 1.0 - jitter * rng.random())
  return out


def _kick(sk, ch, rng):
  n = int(0.4 * sk.sr)
  t = np.arange(n) / sk.sr
  f = 45 + 75 * np.exp(-t / 0.03)
  s = np.sin(2 * np.pi * np.cumsum(f) / sk.sr) * np.exp(-t / 0.2)
  click = scipy.signal.sosfilt(scipy.signal.butter(2, 3000, 'hp', fs=sk.sr, output='sos'),
                               rng.standard_normal(n)) * np.exp(-t / 0.003)
  pattern = [0, 2] if rng.random() < 0.6 else [0, 1.5, 2]
  return _hits(sk, ch, pattern, (s + 0.3 * click).astype(np.float32), rng)


def _snare(sk, ch, rng):
  n = int(0.3 * sk.sr)
  t = np.arange(n) / sk.sr
  noise = scipy.signal.sosfilt(scipy.signal.butter(2, [1000, 8000], 'bp', fs=sk.sr, output='sos'),
                               rng.standard_normal(n)) * np.exp(-t / 0.12)
  body = 0.6 * np.sin(2 * np.pi * 190 * t) * np.exp(-t / 0.06)
  return _hits(sk, ch, [1, 3], (noise + body).astype(np.float32), rng)


def _hihat(sk, ch, rng):
  n = int(0.1 * sk.sr)
  t = np.arange(n) / sk.sr
  s = scipy.signal.sosfilt(scipy.signal.butter(4, 7000, 'hp', fs=sk.sr, output='sos'),
                           rng.standard_normal(n)) * np.exp(-t / 0.03)
  step = 0.5 if rng.random() < 0.7 else 0.25
  return _hits(sk, ch, list(np.arange(0, 4, step)), s.astype(np.float32), rng, jitter=0.4)


def _bass(sk, ch, rng):
  out = np.zeros(sk.n, np.float32)
  step = 1.0 if rng.random() < 0.5 else 0.5
  cutoff = rng.uniform(300, 900)
  for bar in range(sk.bars):
    if not sk.active[bar, ch]:
      continue
    root = sk.chords[bar][0] - 24
    for b in np.arange(0, 4, step):
      note = root + (7 if rng.random() < 0.15 else 0)
      f0 = float(_hz(note))
      n = int(step * sk.beat * 0.9)
      amps = [1.0 / k / (1 + (k * f0 / cutoff) ** 2) for k in range(1, 13)]
      s = _tone(f0, n, sk.sr, amps, rng=rng) * _envelope(n, sk.sr, 0.005, 0.03)
      _add(out, int((bar * 4 + b) * sk.beat), s)
  return out


def _keys(sk, ch, rng):
  out = np.zeros(sk.n, np.float32)
  rhythm = [[0], [0, 2], [0, 1, 2, 3], [0, 1.5, 3]][rng.integers(4)]
  for bar in range(sk.bars):
    if not sk.active[bar, ch]:
      continue
    for b in rhythm:
      n = int(2.0 * sk.beat)
      for note in sk.chords[bar]:
        s = _tone(float(_hz(note)), n, sk.sr, [1, 0.5, 0.3, 0.2, 0.1],
                  decay=[0.9, 0.6, 0.4, 0.3, 0.2], rng=rng)
        _add(out, int((bar * 4 + b) * sk.beat), s * _envelope(n, sk.sr, 0.003, 0.05))
  return out


def _pad(sk, ch, rng):
  out = np.zeros(sk.n, np.float32)
  n = 4 * sk.beat
  for bar in range(sk.bars):
    if not sk.active[bar, ch]:
      continue
    for note in sk.chords[bar]:
      for cents in (-6, 6):
        f0 = float(_hz(note - 12)) * 2 ** (cents / 1200)
        s = _tone(f0, n, sk.sr, [1 / k ** 2 for k in range(1, 7)], rng=rng)
        _add(out, bar * 4 * sk.beat, s * _envelope(n, sk.sr, 0.25, 0.2))
  return out


def _guitar(sk, ch, rng):
  out = np.zeros(sk.n, np.float32)
  n = int(1.0 * sk.beat)
  for bar in range(sk.bars):
    if not sk.active[bar, ch]:
      continue
    tones = sk.chords[bar] + [sk.chords[bar][0] + 12]
    for i, b in enumerate(np.arange(0, 4, 0.5)):
      f0 = float(_hz(tones[i % len(tones)] - 12))
      s = _tone(f0, n, sk.sr, [1 / k for k in range(1, 9)],
                decay=[0.5 / math.sqrt(k) for k in range(1, 9)], rng=rng)
      _add(out, int((bar * 4 + b) * sk.beat), s * _envelope(n, sk.sr, 0.002, 0.02))
  return out


def _lead(sk, ch, rng):
  out = np.zeros(sk.n, np.float32)
  top = sk.scale[(sk.scale >= 72) & (sk.scale <= 88)]
  idx = int(rng.integers(len(top)))
  pos = 0.0
  total = sk.bars * 4
  while pos < total:
    dur = float(rng.choice([0.5, 1.0, 1.0, 1.5, 2.0]))
    bar = int(pos // 4)
    if sk.active[bar, ch] and rng.random() > 0.15:
      idx = int(np.clip(idx + rng.integers(-2, 3), 0, len(top) - 1))
      n = int(dur * sk.beat * 0.95)
      s = _tone(float(_hz(top[idx])), n, sk.sr, [1, 0, 1 / 3, 0, 1 / 5, 0, 1 / 7, 0, 1 / 9],
                vibrato=0.006, rng=rng)
      _add(out, int(pos * sk.beat), s * _envelope(n, sk.sr, 0.015, 0.06))
    pos += dur
  return out


def _snare_hihat(sk, ch, rng):
  return _snare(sk, ch, rng) + 0.5 * _hihat(sk, ch, rng)


def _drums(sk, ch, rng):
  return _kick(sk, ch, rng) + 0.8 * _snare(sk, ch, rng) + 0.4 * _hihat(sk, ch, rng)


_RENDER = {'drums': _drums, 'kick': _kick, 'snare': _snare, 'hihat': _hihat,
           'snare_hihat': _snare_hihat, 'bass': _bass, 'keys': _keys, 'pad': _pad,
           'guitar': _guitar, 'lead': _lead}


def parts_for(num_channels: int, rng) -> list[str]:
  """The instrument of each channel for a song of `num_channels` (3-6) channels."""
  harmonic = str(rng.choice(['keys', 'pad', 'guitar']))
  if num_channels == 3:
    return ['drums', 'bass', str(rng.choice(['lead', 'keys']))]
  if num_channels == 4:
    return ['drums', 'bass', harmonic, 'lead']
  if num_channels == 5:
    return ['kick', 'snare_hihat', 'bass', harmonic, 'lead']
  if num_channels == 6:
    return ['kick', 'snare', 'hihat', 'bass', harmonic, 'lead']
  raise ValueError(f'synthetic_live songs have 3-6 channels, not {num_channels}.')


@dataclasses.dataclass
class Song:
  raw: np.ndarray          # float32 [channels, samples], recorded levels
  mix: np.ndarray          # float32 [samples] = sum_c mix_gains[c] * raw[c]
  instruments: list
  mix_gains: np.ndarray    # float32 [channels]


def generate_song(seed, num_channels: int, seconds: float, sample_rate: int = common.SAMPLE_RATE
                  ) -> Song:
  """One song (docs/data.md, "`synthetic_live`"); `seed` is anything np.random.default_rng takes."""
  rng = np.random.default_rng(seed)
  n = int(round(seconds * sample_rate))
  parts = parts_for(num_channels, rng)
  sk = _skeleton(rng, n, sample_rate, num_channels)
  raw = np.zeros((num_channels, n), np.float32)
  gains = np.zeros(num_channels, np.float32)
  for c, part in enumerate(parts):
    x = _RENDER[part](sk, c, rng)
    peak = float(np.max(np.abs(x)))
    if peak == 0:  # cannot happen: the first section plays every part
      raise RuntimeError(f'synthetic part {part} rendered silence')
    x *= 10 ** (rng.uniform(-20, -1) / 20) / peak  # the recorded level
    raw[c] = x
    level = DESIGN_LEVELS_DB[part] + rng.uniform(-1.5, 1.5)
    gains[c] = 10 ** (level / 20) / math.sqrt(float(np.mean(x.astype(np.float64) ** 2)))
  mix = gains @ raw
  peak = float(np.max(np.abs(mix)))
  if peak > 10 ** (-1 / 20):
    gains *= 10 ** (-1 / 20) / peak
    mix = gains @ raw
  return Song(raw, mix.astype(np.float32), parts, gains)


# ---- the builder --------------------------------------------------------------


class SyntheticLive(tfds.core.GeneratorBasedBuilder):
  """Procedurally generated live multitrack songs with a known target mix."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  BUILDER_CONFIGS = [
      SyntheticLiveConfig(name='default', description='12/3/3 songs of 8-30 s, 3-6 channels.'),
      SyntheticLiveConfig(name='tiny', description='Seconds-long songs for tests.', num_train=4,
                          num_validation=2, num_test=2, min_seconds=3.0, max_seconds=5.0),
  ]
  DEFAULT_CONFIG_NAME = 'default'

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=__doc__,
        features=common.features(
            mix_gains=tfds.features.Tensor(shape=(None,), dtype=np.float32)),
        supervised_keys=None,
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # nothing to download
    cfg = self.builder_config
    if not 1 <= cfg.min_channels <= cfg.max_channels or cfg.min_channels < 3 or \
        cfg.max_channels > 6:
      raise ValueError(f'synthetic_live channels must lie in 3..6, got {cfg.min_channels}..'
                       f'{cfg.max_channels}.')
    counts = {'train': cfg.num_train, 'validation': cfg.num_validation, 'test': cfg.num_test}
    return {s: self._generate_examples(s, counts[s]) for s in _SPLITS}

  def _generate_examples(self, split: str, count: int):
    cfg = self.builder_config
    for i in range(count):
      song_id = f'synthetic_{split}_{i:03d}'
      rng = np.random.default_rng([cfg.seed, _SPLITS.index(split), i])
      channels = int(rng.integers(cfg.min_channels, cfg.max_channels + 1))
      seconds = float(rng.uniform(cfg.min_seconds, cfg.max_seconds))
      song = generate_song([cfg.seed, _SPLITS.index(split), i, 1], channels, seconds)
      raw, raw_scale = common.quantize(song.raw)
      mix, mix_scale = common.quantize(song.mix)
      yield song_id, {
          'song_id': song_id,
          'raw': raw,
          'raw_scale': raw_scale,
          'mix': mix,
          'mix_scale': np.float32(mix_scale),
          'instruments': song.instruments,
          'raw_files': [f'{song_id}/{c:02d}_{p}' for c, p in enumerate(song.instruments)],
          'has_bleed': False,
          'sample_rate': common.SAMPLE_RATE,
          'genre': 'synthetic',
          'mix_gains': song.mix_gains,
      }
