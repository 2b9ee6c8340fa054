"""`rendered_live`: multitrack songs rendered part by part with sampled instruments, known mix.

    import alm_jax.data.rendered  # registers the builder
    ds = tfds.load('rendered_live', split='train')        # 240 / 40 / 40 songs of 20-40 s
    ds = tfds.load('rendered_live/tiny', split='train')   # 3 / 1 / 2 songs of 3-4 s, for tests
    ds = tfds.load('rendered_live/stage', split='train')  # as default, bands on a stage

The `synthetic_live` example contract (alm_jax.data.common features plus `mix_gains`), music
from alm_jax.data.rendered_music, sound from FluidSynth (alm_jax.data.rendered_synth); needs
the Debian packages in rendered_synth.APT_LINE and pip music21 and pyfluidsynth. Repertoire,
splits (SPLITS), levels by role (ROLE_LEVELS_DB): docs/data.md ("`rendered_live`"). The
`stage` configs' songs are bands whose kit is miked piece by piece, laid out on a stage
(alm_jax.data.stage): docs/data.md ("`rendered_live/stage`").
"""

import dataclasses
import math
import os

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from alm_jax.data import common
from alm_jax.data import rendered_music as music
from alm_jax.data import rendered_synth as synth
from alm_jax.data import sample_kits

# Level of each role in the target mix, dB relative to the lead (RMS over the
# 46 ms frames where the part plays: within 40 dB of its loudest frame).
ROLE_LEVELS_DB = {
    'lead': 0.0, 'melody': 0.0, 'drums': -2.0, 'kick': -4.0, 'snare': -4.0, 'bass': -4.0,
    'bass_voice': -3.0, 'inner': -5.0, 'comp': -8.0, 'pad': -11.0, 'hats': -12.0,
    'overheads': -10.0,  # a band kit's toms and cymbals other than the hi-hat (`stage`)
}
LEAD_DB = -20.0        # the lead's active RMS, dBFS, before the mix is kept below -1 dBFS peak
LEVEL_JITTER_DB = 2.0  # each part's level: its role's +- this, uniform, per song

FAMILIES = {  # GM programs (0-based) an instrument family draws from
    'piano': (0, 1, 2), 'epiano': (4, 5), 'organ': (16, 17, 18), 'clav': (7,),
    'guitar': (25, 26, 27), 'guitar_drive': (29, 30), 'guitar_nylon': (24,),
    'bass': (32, 33, 34, 35, 36, 38), 'pad': (48, 49, 50, 52, 88, 89, 91, 94),
    'lead': (56, 64, 65, 66, 68, 71, 73, 40, 80, 81, 22, 78, 26),
    'voices_high': (52, 53), 'voices_mid': (52, 53), 'voices_low': (52, 53),
    'winds_high': (73, 68, 74, 72), 'winds_mid': (71, 69, 68), 'winds_low': (70, 71),
    'brass_high': (56, 60), 'brass_mid': (60, 57), 'brass_low': (57, 58),
    'strings_high': (40, 48), 'strings_mid': (41, 48), 'strings_low': (42, 43),
    'organ_high': (19, 20, 16), 'organ_mid': (19, 20, 16), 'organ_low': (19, 20),
}


@dataclasses.dataclass(frozen=True)
class SplitSpec:
  melodic: tuple     # soundfonts of the pitched parts: one per song, drawn (if more than one)
  kits: tuple        # drum kits: (soundfont or sample kit, bank, preset)
  composers: tuple   # corpus works
  styles: tuple      # generated songs
  pieces: tuple      # (lo, hi): the part of each composer's works and of the tunes (by path hash)


# Training kits from four sources (a snare's level is learned across many snares): the AVL
# Black Pearl, TimGM6mb's and Csound's GM kits, and nine Hydrogen kits played from their samples.
_TRAIN_KITS = ((('avl_black_pearl', 0, 0),)
               + tuple(('timgm6mb', 128, p) for p in (0, 8, 16, 32, 40))
               + tuple(('csound_gm', 128, p) for p in synth.SOUNDFONTS['csound_gm'].drum_presets)
               + tuple((k, 0, 0) for k in sample_kits.KITS))
_TEST_KITS = ((('avl_red_zeppelin', 0, 0),)
              + tuple(('musescore_lite', 128, p) for p in (0, 8, 16, 32, 40)))
_TRAIN_MELODIC = ('timgm6mb', 'csound_gm')
_TRAIN_REP = dict(composers=('palestrina', 'trecento', 'haydn', 'mozart'),
                  styles=('rock', 'pop', 'funk', 'ballad'))
_TEST_REP = dict(composers=('monteverdi', 'beethoven'), styles=('shuffle', 'bossa'))
SPLITS = {
    'train': SplitSpec(_TRAIN_MELODIC, _TRAIN_KITS, pieces=(0.0, 0.85), **_TRAIN_REP),
    'validation': SplitSpec(_TRAIN_MELODIC, _TRAIN_KITS, pieces=(0.85, 1.0), **_TRAIN_REP),
    # Fiddle tunes for test leads: a part of the collection train/validation never use.
    'test': SplitSpec(('musescore_lite',), _TEST_KITS, pieces=(0.0, 1.0), **_TEST_REP),
}
_SPLIT_IDS = {'train': 0, 'validation': 1, 'test': 2}
_TEST_TUNES = (0.8, 1.0)  # train / validation tunes: hash in [0, 0.8) split 0.85 / 0.15 inside
_MAX_TRIES = 40


@dataclasses.dataclass
class RenderedLiveConfig(tfds.core.BuilderConfig):
  """How many songs, how long, how many channels, which share are corpus works."""
  num_train: int = 240
  num_validation: int = 40
  num_test: int = 40
  min_seconds: float = 20.0
  max_seconds: float = 40.0
  min_channels: int = 3
  max_channels: int = 8
  corpus_fraction: float = 0.5
  seed: int = 0
  # The generated songs are bands on a stage (rendered_music.generated_arrangement(band=True):
  # the kit miked piece by piece, 6-8 channels) and every song is laid out on a stage
  # (alm_jax.data.stage); song ids start with `song_prefix` (stage.has_layout reads it).
  band: bool = False
  song_prefix: str = 'rendered'


def music_cache_dir() -> str:
  """Where parsed pieces are cached: $ALM_JAX_CACHE (default ~/.cache/alm_jax), per music21."""
  import music21  # pylint: disable=import-outside-toplevel  (optional, slow import)
  root = (os.environ.get('ALM_JAX_CACHE')
          or os.path.join(os.path.expanduser('~'), '.cache', 'alm_jax'))
  return os.path.join(root, 'rendered_music', f'music21-{music21.__version__}')


def _in(u: float, span) -> bool:
  return span[0] <= u < span[1]


def corpus_pool(split: str, composer: str) -> list[str]:
  """The corpus works of `composer` that `split` draws from (no Bach: rendered_music.no_bach)."""
  folder, exts, _ = music.COMPOSERS[composer]
  return [p for p in music.corpus_paths(folder, exts)
          if _in(music.hash_unit('piece:' + p), SPLITS[split].pieces)]


def tune_pool(split: str) -> list[str]:
  out = []
  for p in music.corpus_paths(music.TUNES, ('abc',)):
    u = music.hash_unit('tune:' + p)
    if split == 'test':
      if _in(u, _TEST_TUNES):
        out.append(p)
    elif u < _TEST_TUNES[0] and _in(u / _TEST_TUNES[0], SPLITS[split].pieces):
      out.append(p)
  return out


def active_level_db(x: np.ndarray, frame: int = 2048) -> float:
  """RMS (dB) of x [samples] over the frames within 40 dB of its loudest frame."""
  n = max(1, x.size // frame)
  power = np.mean(np.square(x[:n * frame].astype(np.float64)).reshape(n, -1), axis=1)
  if power.max() <= 0:
    return -math.inf
  return 10 * math.log10(float(np.mean(power[power >= power.max() * 1e-4])))


@dataclasses.dataclass
class Song:
  raw: np.ndarray        # float32 [channels, samples], recorded levels
  mix: np.ndarray        # float32 [samples] = mix_gains @ raw
  mix_gains: np.ndarray  # float32 [channels]
  roles: list
  instruments: list      # '<role>:<preset name>'
  raw_files: list        # '<source>|<role>|<soundfont>:<bank>:<preset>'
  repertoire: str        # composer or style
  source: str


def plan_song(cfg: RenderedLiveConfig, split: str, index: int, cache_dir: str | None,
              first_attempt: int = 0):
  """(arrangement, voices [(soundfont, bank, preset)], rng, attempt) for song `index` of `split`.

  Draws attempt `first_attempt`, then the next, until one makes a playable song.
  """
  spec = SPLITS[split]
  for attempt in range(first_attempt, _MAX_TRIES):
    rng = np.random.default_rng([cfg.seed, _SPLIT_IDS[split], index, attempt])
    seconds = float(rng.uniform(cfg.min_seconds, cfg.max_seconds))
    channels = int(rng.integers(cfg.min_channels, cfg.max_channels + 1))
    if rng.random() < cfg.corpus_fraction:
      composer = str(rng.choice(spec.composers))
      pool = corpus_pool(split, composer)
      path = pool[int(rng.integers(len(pool)))]
      arr = music.corpus_arrangement(music.parse_piece(path, cache_dir), path, composer, rng,
                                     seconds, cfg.max_channels)
      if arr is None or len(arr.parts) < cfg.min_channels:
        continue
    else:
      style = str(rng.choice(spec.styles))
      tune, source = None, f'{"band" if cfg.band else "generated"}:{style}'
      if rng.random() < 0.5:
        pool = tune_pool(split)
        path = pool[int(rng.integers(len(pool)))]
        tune = music.parse_piece(path, cache_dir)
        if tune['quarters_per_bar'] not in (2.0, 4.0) or not tune['parts']:
          continue  # only duple-metre tunes fit the 4/4 grooves
        source += ':' + path
      if cfg.band:  # a band's kit alone is 4 channels: 6-8 (drawn after, so `default` is as ever)
        channels = int(rng.integers(6, cfg.max_channels + 1))
      arr = music.generated_arrangement(style, rng, seconds, channels, tune, source, cfg.band)
    kit = spec.kits[int(rng.integers(len(spec.kits)))]
    # A split of one melodic soundfont draws nothing here, so its songs are as before 1.1.0.
    melodic = spec.melodic[int(rng.integers(len(spec.melodic)))] if len(spec.melodic) > 1 else (
        spec.melodic[0])
    voices = [kit if p.family == 'drums' else
              (melodic, 0, int(rng.choice(FAMILIES[p.family]))) for p in arr.parts]
    return arr, voices, rng, attempt
  raise RuntimeError(f'rendered_live: no playable song {index} of {split!r} in {_MAX_TRIES} tries; '
                     'check min_channels / the seconds range of the config.')


def make_song(cfg: RenderedLiveConfig, split: str, index: int, cache_dir: str | None = None,
              sample_rate: int = common.SAMPLE_RATE) -> Song:
  """Song `index` of `split`: a function of (cfg.seed, split, index) and the config.

  A part that renders silence (a preset without samples for the part's notes) makes the next
  attempt's song instead, as an unplayable arrangement does.
  """
  attempt, silent = 0, None
  while True:
    try:
      arr, voices, rng, attempt = plan_song(cfg, split, index, cache_dir, attempt)
    except RuntimeError as e:
      if silent is None:
        raise
      raise RuntimeError(f'rendered_live: song {index} of {split!r}: every playable draw had a '
                         f'part that rendered silence (the last: {silent}).') from e
    n = int(round(arr.seconds * sample_rate))
    raw = np.zeros((len(arr.parts), n), np.float32)
    gains = np.zeros(len(arr.parts), np.float32)
    silent = None
    with synth.Renderer(sorted({v[0] for v in voices}), sample_rate) as renderer:
      for c, (part, voice) in enumerate(zip(arr.parts, voices)):
        x = renderer.render(synth.Voice(*voice, tuple(part.notes)), n)
        peak = float(np.max(np.abs(x)))
        if peak < 1e-6:
          silent = f'{arr.source} part {c} ({part.role}) on {voice}'
          break
        x *= 10 ** (rng.uniform(-20, -1) / 20) / peak  # the recorded level
        raw[c] = x
        level = LEAD_DB + ROLE_LEVELS_DB[part.role] + rng.uniform(-LEVEL_JITTER_DB,
                                                                  LEVEL_JITTER_DB)
        gains[c] = 10 ** ((level - active_level_db(x)) / 20)
      names_of = [renderer.preset_name(*v) for v in voices]
    if silent is None:
      break
    attempt += 1
  mix = gains @ raw
  peak = float(np.max(np.abs(mix)))
  if peak > 10 ** (-1 / 20):  # keep the target below -1 dBFS: a common factor, balance unchanged
    gains *= np.float32(10 ** (-1 / 20) / peak)
    mix = gains @ raw
  return Song(raw, mix.astype(np.float32), gains, [p.role for p in arr.parts],
              [f'{p.role}:{name}' for p, name in zip(arr.parts, names_of)],
              [f'{arr.source}|{p.role}|{v[0]}:{v[1]}:{v[2]}' for p, v in zip(arr.parts, voices)],
              arr.repertoire, arr.source)


class RenderedLive(tfds.core.GeneratorBasedBuilder):
  """Multitrack songs rendered with sampled instruments, with a known target mix."""

  VERSION = tfds.core.Version('1.1.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.',
                   '1.1.0': ('Training and validation songs draw their kits from 22 (Csound GM '
                             'and Hydrogen sample kits added) and their pitched parts from '
                             'TimGM6mb or Csound GM; the test split is unchanged.')}
  BUILDER_CONFIGS = [
      RenderedLiveConfig(name='default', description='240/40/40 songs of 20-40 s, 3-8 channels.'),
      # The first 60 / 10 / 20 songs of 'default' (a song depends on its split and index only).
      RenderedLiveConfig(name='small', description='60/10/20 songs of 20-40 s, 3-8 channels.',
                         num_train=60, num_validation=10, num_test=20),
      RenderedLiveConfig(name='tiny', description='3/1/2 songs of 3-4 s, 3-6 channels, for tests.',
                         num_train=3, num_validation=1, num_test=2, min_seconds=3.0,
                         max_seconds=4.0, max_channels=6),
      # Bands on a stage (docs/data.md, "`rendered_live/stage`"): `default`'s design with the
      # generated songs bands whose kit is miked piece by piece, every song with a stage layout.
      # Seed 1: other excerpts and songs than `default`'s, so the two can be used together.
      RenderedLiveConfig(name='stage', description=(
          '240/40/40 songs of 20-40 s, 3-8 channels; half bands (kick, snare, hats, overheads, '
          'bass, guitar, keys, lead mics), every song laid out on a stage (alm_jax.data.stage).'),
                         band=True, song_prefix='stage', seed=1),
      RenderedLiveConfig(name='stage_tiny', description=(
          '3/1/2 songs of 3-4 s of `stage`, for tests: bands only (6-8 channels).'),
                         num_train=3, num_validation=1, num_test=2, min_seconds=3.0,
                         max_seconds=4.0, corpus_fraction=0.0, band=True, song_prefix='stage',
                         seed=1),
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
    if not 3 <= cfg.min_channels <= cfg.max_channels <= 8:
      raise ValueError(f'rendered_live channels must lie in 3..8, got {cfg.min_channels}..'
                       f'{cfg.max_channels}.')
    synth.check_installed(sorted({n for s in SPLITS.values() for n in
                                  list(s.melodic) + [k[0] for k in s.kits]}))
    try:
      import music21  # pylint: disable=import-outside-toplevel,unused-import
    except ImportError as e:
      raise synth.RenderError('rendered_live needs music21 (its corpus): pip install music21.'
                              ) from e
    counts = {'train': cfg.num_train, 'validation': cfg.num_validation, 'test': cfg.num_test}
    return {s: self._generate_examples(s, counts[s]) for s in SPLITS if counts[s] > 0}

  def _generate_examples(self, split: str, count: int):
    cfg = self.builder_config
    cache_dir = music_cache_dir()
    for i in range(count):
      song_id = f'{cfg.song_prefix}_{split}_{i:03d}'
      song = make_song(cfg, split, i, cache_dir)
      if i == 0:
        logging.info('rendered_live %s: %s', split, SPLITS[split])
      raw, raw_scale = common.quantize(song.raw)
      mix, mix_scale = common.quantize(song.mix)
      yield song_id, {
          'song_id': song_id,
          'raw': raw,
          'raw_scale': raw_scale,
          'mix': mix,
          'mix_scale': np.float32(mix_scale),
          'instruments': song.instruments,
          'raw_files': song.raw_files,
          'has_bleed': False,
          'sample_rate': common.SAMPLE_RATE,
          'genre': song.repertoire,
          'mix_gains': song.mix_gains,
      }
