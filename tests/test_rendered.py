"""Tests for the `rendered_live` builder (alm_jax/data/rendered*.py): the tiny configs end to end.

Every test of a build runs on `tiny` and on `stage_tiny` (bands on a stage, alm_jax.data.stage).
"""

import dataclasses
import hashlib
import json

import ml_collections
import numpy as np
import pytest
import tensorflow_datasets as tfds

from alm_jax.data import common
from alm_jax.data import pipeline
from alm_jax.data import rendered
from alm_jax.data import rendered_music as music
from alm_jax.data import rendered_synth as synth
from alm_jax.data import sample_kits
from alm_jax.data import stage

SR = common.SAMPLE_RATE
CONFIGS = {c.name: c for c in rendered.RenderedLive.BUILDER_CONFIGS}
TINY = CONFIGS['tiny']
SPLITS = ('train', 'validation', 'test')
# generated_arrangement's songs (test_default_generated_songs_are_unchanged) as at commit 20444c5.
DEFAULT_DIGEST = 'ab2e192a11ef65f61fefa5103ffd9b44f5b92ba0c46c144e59f769af7f0d1a6d'
# Test-split song plans (source, voices, the generator's next draw) of `tiny` and `stage_tiny`
# as of version 1.0.0: adding training kits and soundfonts (1.1.0) must not move the test split.
TEST_PLAN_DIGEST = '3dbd969fe712c193f9104cf7b61d049fdf86ffef0c5536cbf61bc70b286afd61'


@pytest.fixture(scope='module', params=['tiny', 'stage_tiny'])
def built(tmp_path_factory, request):
  """(builder, songs by split, music cache, data dir, builder config) of a tiny config."""
  try:  # FluidSynth and the Debian soundfonts are optional parts: skip, naming the install
    synth.check_installed(list(synth.SOUNDFONTS) + list(sample_kits.KITS))
  except synth.RenderError as e:
    pytest.skip(f'{e} (or run tools/setup.sh --test, which installs everything the tests use)')
  data_dir = tmp_path_factory.mktemp('rendered')
  builder = tfds.builder(f'rendered_live/{request.param}', data_dir=str(data_dir))
  builder.download_and_prepare()
  songs = {s: list(tfds.as_numpy(builder.as_dataset(split=s, shuffle_files=False)))
           for s in SPLITS}
  for s in SPLITS:
    songs[s].sort(key=lambda ex: ex['song_id'])
  return builder, songs, rendered.music_cache_dir(), str(data_dir), CONFIGS[request.param]


def _fields(ex, key):
  return [v.decode() for v in ex[key]]


def test_tiny_build_has_the_synthetic_live_contract(built):
  builder, songs, cfg = built[0], built[1], built[4]
  assert {s: len(v) for s, v in songs.items()} == {'train': 3, 'validation': 1, 'test': 2}
  assert set(builder.info.features.keys()) == set(common.features().keys()) | {'mix_gains'}
  for split, v in songs.items():
    assert [ex['song_id'].decode() for ex in v] == [f'{cfg.song_prefix}_{split}_{i:03d}'
                                                    for i in range(len(v))]
  for ex in (e for v in songs.values() for e in v):
    c = ex['raw'].shape[0]
    assert cfg.min_channels <= c <= cfg.max_channels and ex['raw'].dtype == np.int16
    assert 3.0 * SR - 1 <= ex['raw'].shape[1] <= 4.0 * SR + 1
    assert ex['mix'].shape == (ex['raw'].shape[1],)
    assert ex['mix_gains'].shape == (c,) and np.all(ex['mix_gains'] > 0)
    assert len(ex['instruments']) == len(ex['raw_files']) == c
    assert not ex['has_bleed'] and ex['sample_rate'] == SR


def test_mix_is_the_gains_times_the_raw_tracks(built):
  for ex in (e for v in built[1].values() for e in v):
    raw = common.dequantize(ex['raw'], ex['raw_scale'])
    mix = common.dequantize(ex['mix'], ex['mix_scale'])
    # int16: each stored track is within half a step of its own peak scale.
    tol = 0.5 * (ex['mix_scale'] + np.sum(ex['mix_gains'] * ex['raw_scale'])) / 32767 * 1.01
    assert np.max(np.abs(mix - ex['mix_gains'] @ raw)) <= tol
    assert np.max(np.abs(mix)) <= 10 ** (-1 / 20) + 1e-4


def test_each_channel_is_one_part(built):
  songs, cache, cfg = built[1], built[2], built[4]
  for split in SPLITS:
    for i, ex in enumerate(songs[split]):
      arr, voices = rendered.plan_song(cfg, split, i, cache)[:2]
      assert [f.split('|')[1] for f in _fields(ex, 'raw_files')] == [p.role for p in arr.parts]
      raw = common.dequantize(ex['raw'], ex['raw_scale'])
      frame = 2048
      for c, part in enumerate(arr.parts):
        x = raw[c, :raw.shape[1] // frame * frame].reshape(-1, frame)
        level = 10 * np.log10(np.mean(x.astype(np.float64) ** 2, axis=1) + 1e-20)
        # Frames during a note of this part, or 1.5 s after (a band's crash, on the overheads'
        # own channel, rings for 4 s).
        ring = 4.0 if part.role == 'overheads' else 1.5
        near = np.zeros(level.size, bool)
        for start, dur, _, _ in part.notes:
          lo, hi = int(start * SR) // frame, int((start + dur + ring) * SR) // frame + 1
          near[lo:hi] = True
        loud = level > level.max() - 50
        assert not np.any(loud & ~near), (split, i, c, part.role)
        # A note sounds in its onset's frame or the next: a recorded drum sample (the Hydrogen
        # kits) starts a few ms after its note, and a 46 ms frame may end before that.
        onsets = np.array([int(s * SR) // frame for s, _, _, _ in part.notes if s * SR < x.size])
        heard = loud[np.minimum(onsets, level.size - 1)] | loud[np.minimum(onsets + 1,
                                                                           level.size - 1)]
        assert np.mean(heard) > 0.5
      # No channel is another's copy.
      corr = np.corrcoef(raw[:, :raw.shape[1]])
      assert np.all(np.abs(corr[~np.eye(len(corr), dtype=bool)]) < 0.95)


def test_role_levels_follow_the_convention(built):
  for ex in (e for v in built[1].values() for e in v):
    raw = common.dequantize(ex['raw'], ex['raw_scale'])
    roles = [f.split('|')[1] for f in _fields(ex, 'raw_files')]
    levels = np.array([rendered.active_level_db(g * x) for g, x in zip(ex['mix_gains'], raw)])
    off = levels - np.array([rendered.ROLE_LEVELS_DB[r] for r in roles])
    # One common offset (the -1 dBFS peak limit) plus +-LEVEL_JITTER_DB per part.
    assert off.max() - off.min() <= 2 * rendered.LEVEL_JITTER_DB + 0.1, (roles, levels)
    assert off.max() <= rendered.LEAD_DB + rendered.LEVEL_JITTER_DB + 0.1
    top = [lv for lv, r in zip(levels, roles) if r in ('lead', 'melody')]
    low = [lv for lv, r in zip(levels, roles) if r in ('comp', 'pad', 'hats')]
    assert top and all(t > lv for t in top for lv in low)


def test_test_split_timbre_and_repertoire_are_unseen(built):
  songs = built[1]

  def used(split):
    fonts = {f.split('|')[2].split(':')[0] for ex in songs[split] for f in _fields(ex, 'raw_files')}
    return fonts, {ex['genre'].decode() for ex in songs[split]}

  test_fonts, test_rep = used('test')
  for split in ('train', 'validation'):
    fonts, rep = used(split)
    assert not fonts & test_fonts and not rep & test_rep
  spec, train = rendered.SPLITS['test'], rendered.SPLITS['train']
  assert test_fonts <= set(spec.melodic) | {k[0] for k in spec.kits}
  assert test_rep <= set(spec.composers) | set(spec.styles)
  assert not (set(train.melodic) | {k[0] for k in train.kits}) & (set(spec.melodic) |
                                                                    {k[0] for k in spec.kits})
  assert not (set(train.composers) | set(train.styles)) & (set(spec.composers) | set(spec.styles))
  # Validation pieces and tunes are not train's either; test tunes are no one else's.
  pools = {s: {p for c in rendered.SPLITS[s].composers for p in rendered.corpus_pool(s, c)}
           | set(rendered.tune_pool(s)) for s in SPLITS}
  assert all(pools.values())
  assert not pools['train'] & pools['validation'] and not pools['test'] & (
      pools['train'] | pools['validation'])


def test_no_bach_anywhere(built):
  songs, cache = built[1:3]
  paths = [p for s in SPLITS for c in music.COMPOSERS for p in rendered.corpus_pool(s, c)]
  paths += [p for s in SPLITS for p in rendered.tune_pool(s)]
  assert paths and not [p for p in paths if 'bach' in p.lower()]
  assert music.no_bach(['bach/bwv66.6.mxl', 'cpebach/h186.mxl', 'haydn/x.mxl']) == ['haydn/x.mxl']
  with pytest.raises(ValueError, match='Bach'):
    music.parse_piece('bach/bwv66.6.mxl', cache)
  for ex in (e for v in songs.values() for e in v):
    assert 'bach' not in ' '.join(_fields(ex, 'raw_files')).lower()
  assert not [n for n in synth.SOUNDFONTS.values() if 'fluid' in n.path.lower()]


def test_songs_are_deterministic_in_seed_split_index(built):
  songs, cache, cfg = built[1], built[2], built[4]
  ex = songs['train'][2]
  song = rendered.make_song(cfg, 'train', 2, cache)  # alone, in another synth: the same song
  raw, scale = common.quantize(song.raw)
  np.testing.assert_allclose(scale, ex['raw_scale'], rtol=1e-5)
  assert np.max(np.abs(raw.astype(np.int32) - ex['raw'])) <= 1
  np.testing.assert_allclose(song.mix_gains, ex['mix_gains'], rtol=1e-5)
  other = rendered.plan_song(dataclasses.replace(cfg, seed=cfg.seed + 1), 'train', 2, cache)[0]
  assert [p.notes for p in other.parts] != [p.notes for p in
                                            rendered.plan_song(cfg, 'train', 2, cache)[0].parts]


def test_missing_soundfont_names_the_debian_package(monkeypatch, tmp_path):
  gone = dataclasses.replace(synth.SOUNDFONTS['timgm6mb'], path=str(tmp_path / 'TimGM6mb.sf2'))
  monkeypatch.setitem(synth.SOUNDFONTS, 'timgm6mb', gone)
  with pytest.raises(synth.RenderError, match='timgm6mb-soundfont'):
    tfds.builder('rendered_live/tiny', data_dir=str(tmp_path)).download_and_prepare()


def test_the_pipeline_selects_rendered_live_by_name(built):
  builder, cfg = built[0], built[4]
  config = ml_collections.ConfigDict({
      'data': {'name': f'rendered_live/{cfg.name}', 'data_dir': built[3]},
      'model': {'max_channels': 8}})
  got = pipeline.get_builder(config)
  assert got.info.full_name == builder.info.full_name and got.is_prepared()
  loaded = pipeline.load_songs(config, 'validation')
  assert [s.song_id for s in loaded] == [f'{cfg.song_prefix}_validation_000']
  assert all(s.mix_gains is not None and s.mix_gains.size == s.num_channels for s in loaded)


def test_stage_songs_are_bands_with_a_layout(built):
  songs, cfg = built[1], built[4]
  for ex in (e for v in songs.values() for e in v):
    song_id, instruments = ex['song_id'].decode(), _fields(ex, 'instruments')
    assert stage.has_layout(song_id) == cfg.band
    if not cfg.band:
      continue
    roles = [i.split(':')[0] for i in instruments]
    # stage_tiny holds bands only: the kit miked piece by piece, bass, the lead at the front.
    assert roles[:5] == ['kick', 'snare', 'hats', 'overheads', 'bass'] and roles[-1] == 'lead'
    assert all(f.startswith('band:') for f in _fields(ex, 'raw_files'))
    kit = {f.split('|')[2] for f in _fields(ex, 'raw_files')[:4]}
    assert len(kit) == 1  # one kit, four mics
    lay = stage.layout(song_id, instruments)
    assert lay.places[:5] == ('kick', 'snare', 'hats', 'overheads', 'bass_amp')
    assert lay.places[-1] == 'lead'


def test_default_generated_songs_are_unchanged():
  """The built `default` (and `small`, `tiny`) songs must not change: the band code is apart.

  A digest of generated arrangements (no corpus needed) from before the band songs existed.
  """
  digest = hashlib.sha256()
  for k, style in enumerate(music.STYLES):
    for channels in range(3, 9):
      arr = music.generated_arrangement(style, np.random.default_rng([k, channels]), 12.0,
                                        channels, None, f'generated:{style}')
      digest.update(json.dumps([[p.role, p.family, [[round(float(v), 9) for v in n]
                                                     for n in p.notes]] for p in arr.parts]
                               ).encode())
  assert digest.hexdigest() == DEFAULT_DIGEST


def test_test_split_plans_are_as_in_version_1_0():
  cache = rendered.music_cache_dir()
  digest = hashlib.sha256()
  for name in ('tiny', 'stage_tiny'):
    cfg = CONFIGS[name]
    for i in range(cfg.num_test):
      arr, voices, rng, _ = rendered.plan_song(cfg, 'test', i, cache)
      digest.update(json.dumps([arr.source, [list(v) for v in voices], float(rng.random())]
                               ).encode())
  assert digest.hexdigest() == TEST_PLAN_DIGEST


def test_training_kits_come_from_many_sources():
  """A snare's level is learned across kits: soundfont kits and the Hydrogen sample kits."""
  kits = rendered.SPLITS['train'].kits
  sources = {k[0] for k in kits}
  assert len(kits) >= 20 and set(sample_kits.KITS) <= sources
  assert {'timgm6mb', 'csound_gm', 'avl_black_pearl'} <= sources
  assert len(rendered.SPLITS['train'].melodic) == 2 and len(rendered.SPLITS['test'].melodic) == 1


def test_a_part_that_renders_silence_redraws_the_song(monkeypatch):
  """A preset without samples for a part's notes must not stop a build: the next draw plays."""
  cfg = CONFIGS['tiny']
  cache = rendered.music_cache_dir()
  first = rendered.plan_song(cfg, 'train', 0, cache)
  second = rendered.plan_song(cfg, 'train', 0, cache, first[3] + 1)
  calls = []

  class Renderer:  # silent on the first song's first part, else a tone per part
    def __init__(self, names, sample_rate):
      del names, sample_rate

    def __enter__(self):
      return self

    def __exit__(self, *exc):
      pass

    def render(self, voice, n):
      calls.append(voice.notes)
      t = np.arange(n) / common.SAMPLE_RATE
      return np.float32(len(calls) > 1) * np.sin(2 * np.pi * 220 * t).astype(np.float32)

    def preset_name(self, *voice):
      return str(voice)

  monkeypatch.setattr(synth, 'Renderer', Renderer)
  song = rendered.make_song(cfg, 'train', 0, cache)
  assert calls[0] == tuple(first[0].parts[0].notes)
  assert song.source == second[0].source and len(song.roles) == len(second[0].parts)
  assert np.all(np.max(np.abs(song.raw), axis=1) > 0)
  monkeypatch.setattr(Renderer, 'render', lambda self, voice, n: np.zeros(n, np.float32))
  with pytest.raises(RuntimeError, match='rendered silence'):
    rendered.make_song(cfg, 'train', 0, cache)
