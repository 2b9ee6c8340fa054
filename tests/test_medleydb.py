"""Tests for alm_jax/data/medleydb.py on a tiny MedleyDB-shaped tree built here."""

import json
import os

import numpy as np
import pytest
import soundfile as sf
import tensorflow_datasets as tfds
import yaml

from alm_jax.data import common
from alm_jax.data import medleydb

SR = common.SAMPLE_RATE
# Real MedleyDB ids, so their splits come from medleydb_splits.json.
TRAIN_A, TRAIN_B, TRAIN_BIG = 'AimeeNorwich_Flying', 'AlexanderRoss_VelvetCurtain', \
    'Allegria_MendelssohnMovement1'
VALID, TEST = 'AmadeusRedux_SchubertMovement2', 'AClassicEducation_NightOwl'


def make_song(audio_root, song_id, raws, *, seconds=1.0, rate=SR, seed=0, meta_dir=None,
              has_bleed='no', stereo=(), lengths=None, mix_samples=None):
  """Writes one MedleyDB song: raws = [(stem key, raw key, file name, instrument)].

  The mix is 0.5 x the sum of the raw tracks, in stereo, like a real MedleyDB mix.
  Returns the metadata dict.
  """
  rng = np.random.default_rng(seed)
  song_dir = os.path.join(audio_root, song_id)
  raw_dir = os.path.join(song_dir, f'{song_id}_RAW')
  os.makedirs(raw_dir, exist_ok=True)
  os.makedirs(os.path.join(song_dir, f'{song_id}_STEMS'), exist_ok=True)
  n = int(seconds * rate)
  t = np.arange(n) / rate
  total = np.zeros(n)
  stems = {}
  for i, (stem, raw, name, inst) in enumerate(raws):
    x = 0.2 * np.sin(2 * np.pi * (110 * (i + 1) + rng.uniform(0, 20)) * t)
    x += 0.05 * rng.standard_normal(n)
    x *= 0.5 + 0.5 * np.sin(2 * np.pi * (0.7 + i) * t) ** 2  # tracks come and go
    m = (lengths or {}).get(name, n)
    data = np.resize(x, m)
    sf.write(os.path.join(raw_dir, name), np.stack([data, data]).T if name in stereo else data,
             rate, subtype='PCM_24')
    total[:min(m, n)] += x[:min(m, n)]
    stems.setdefault(stem, {'component': '', 'filename': f'{song_id}_{stem.replace("S", "STEM_")}.wav',
                            'instrument': inst, 'raw': {}})
    stems[stem]['raw'][raw] = {'filename': name, 'instrument': inst}
  mix = 0.5 * total[:mix_samples or n]
  sf.write(os.path.join(song_dir, f'{song_id}_MIX.wav'), np.stack([mix, 0.9 * mix]).T, rate)
  meta = {'album': 'Test', 'artist': song_id.split('_')[0], 'composer': ['X'], 'excerpt': 'no',
          'genre': 'Singer/Songwriter', 'has_bleed': has_bleed, 'instrumental': 'no',
          'mix_filename': f'{song_id}_MIX.wav', 'origin': 'test', 'producer': ['Y'],
          'raw_dir': f'{song_id}_RAW', 'stem_dir': f'{song_id}_STEMS', 'stems': stems,
          'title': song_id.split('_')[1], 'version': 1.2, 'website': ['example.org']}
  yaml_dir = meta_dir or song_dir
  os.makedirs(yaml_dir, exist_ok=True)
  with open(os.path.join(yaml_dir, f'{song_id}_METADATA.yaml'), 'w') as f:
    yaml.safe_dump(meta, f)
  return meta


def raws(song_id, count, stem=1):
  return [(f'S{stem:02d}', f'R{r:02d}', f'{song_id}_RAW_{stem:02d}_{r:02d}.wav', 'electric bass')
          for r in range(1, count + 1)]


@pytest.fixture(scope='module')
def manual_dir(tmp_path_factory):
  root = tmp_path_factory.mktemp('medleydb')
  audio, meta = str(root / 'Audio'), str(root / 'Metadata')
  make_song(audio, TRAIN_A, [('S01', 'R01', f'{TRAIN_A}_RAW_01_01.wav', 'drum set'),
                             ('S02', 'R01', f'{TRAIN_A}_RAW_02_01.wav', ['male singer', 'vocalists'])],
            stereo={f'{TRAIN_A}_RAW_02_01.wav'}, seed=1)
  # The RR != key oddity: R01 maps to ..._RAW_01_03.wav.
  make_song(audio, TRAIN_B, [('S01', 'R01', f'{TRAIN_B}_RAW_01_03.wav', 'piano'),
                             ('S01', 'R02', f'{TRAIN_B}_RAW_01_01.wav', 'piano'),
                             ('S02', 'R01', f'{TRAIN_B}_RAW_02_01.wav', 'violin')], seed=2)
  make_song(audio, TRAIN_BIG, raws(TRAIN_BIG, 4), seed=3)  # > max_raw_tracks=3
  make_song(audio, VALID, raws(VALID, 1), seed=4, meta_dir=meta, has_bleed='yes')
  make_song(audio, TEST, raws(TEST, 2), seed=5, rate=48000, seconds=1.5)  # resampled
  return str(root)


def build(manual, data_dir, **kwargs):
  builder = medleydb.Medleydb(data_dir=str(data_dir), **kwargs)
  builder.download_and_prepare(download_config=tfds.download.DownloadConfig(manual_dir=manual))
  return builder


def examples(builder, split):
  return {ex['song_id'].decode(): ex
          for ex in tfds.as_numpy(builder.as_dataset(split=split, shuffle_files=False))}


def test_builder_reads_the_tree(manual_dir, tmp_path):
  builder = build(manual_dir, tmp_path, max_raw_tracks=3)
  assert builder.builder_config.name == 'max_raw_3'
  train, valid, test = (examples(builder, s) for s in ('train', 'validation', 'test'))
  assert sorted(train) == [TRAIN_A, TRAIN_B]  # TRAIN_BIG has 4 raw tracks
  assert list(valid) == [VALID] and list(test) == [TEST]
  a, b, v, t = train[TRAIN_A], train[TRAIN_B], valid[VALID], test[TEST]
  assert a['raw'].shape == (2, SR) and a['raw'].dtype == np.int16 and a['mix'].shape == (SR,)
  assert [i.decode() for i in a['instruments']] == ['drum set', 'male singer/vocalists']
  # File names come from the YAML, in stem/raw key order.
  assert [f.decode() for f in b['raw_files']] == [
      f'{TRAIN_B}_RAW_01_03.wav', f'{TRAIN_B}_RAW_01_01.wav', f'{TRAIN_B}_RAW_02_01.wav']
  assert b['raw'].shape == (3, SR)
  assert v['raw'].shape == (1, SR) and v['has_bleed'] and not a['has_bleed']
  assert t['raw'].shape == (2, int(1.5 * SR)) and t['sample_rate'] == SR  # from 48 kHz
  for ex in (a, b, v, t):
    total = common.dequantize(ex['raw'], ex['raw_scale']).sum(axis=0)
    mix = common.dequantize(ex['mix'], ex['mix_scale'])
    assert np.corrcoef(total[100:-100], mix[100:-100])[0, 1] > 0.9
  # The mono downmix keeps the mix level: (L + 0.9 L) / 2 of 0.5 x sum.
  total = common.dequantize(b['raw'], b['raw_scale']).sum(axis=0)
  mix = common.dequantize(b['mix'], b['mix_scale'])
  np.testing.assert_allclose(mix, 0.475 * total, atol=2e-3)
  # The default config keeps songs with up to 8 raw tracks.
  default = build(manual_dir, tmp_path / 'default')
  assert default.builder_config.name == 'max_raw_8'
  assert TRAIN_BIG in examples(default, 'train')


def test_builder_bad_manual_dirs(tmp_path):
  with pytest.raises(medleydb.MedleyDBError, match='manual dir'):
    build(str(tmp_path / 'missing'), tmp_path / 'd1')
  (tmp_path / 'nothing' / 'Stuff').mkdir(parents=True)
  with pytest.raises(medleydb.MedleyDBError, match='No Audio/ folder'):
    build(str(tmp_path / 'nothing'), tmp_path / 'd2')


def test_builder_bad_song_raises_or_is_skipped(tmp_path):
  audio = str(tmp_path / 'm' / 'Audio')
  make_song(audio, TRAIN_A, raws(TRAIN_A, 2))
  make_song(audio, TRAIN_B, raws(TRAIN_B, 2))
  os.remove(os.path.join(audio, TRAIN_B, f'{TRAIN_B}_RAW', f'{TRAIN_B}_RAW_01_02.wav'))
  with pytest.raises(medleydb.MedleyDBError, match=f'{TRAIN_B}_RAW_01_02.wav'):
    build(str(tmp_path / 'm'), tmp_path / 'd1')
  builder = build(str(tmp_path / 'm'), tmp_path / 'd2', on_error='skip')
  assert list(examples(builder, 'train')) == [TRAIN_A]
  assert list(builder.info.splits.keys()) == ['train']  # no empty splits declared
  make_song(str(tmp_path / 'bad' / 'Audio'), TRAIN_B, raws(TRAIN_B, 1))
  os.remove(_raw_path(str(tmp_path / 'bad' / 'Audio'), TRAIN_B, 1))
  with pytest.raises(medleydb.MedleyDBError, match="Every song of the 'train' split was skipped"):
    build(str(tmp_path / 'bad'), tmp_path / 'd3', on_error='skip')


def test_find_songs_in_v1_v2_layout(tmp_path):
  make_song(str(tmp_path / 'V1' / 'Audio'), TRAIN_A, raws(TRAIN_A, 1))
  make_song(str(tmp_path / 'V2' / 'Audio'), TRAIN_B, raws(TRAIN_B, 1),
            meta_dir=str(tmp_path / 'V2' / 'Metadata'))
  songs = medleydb.find_songs(str(tmp_path))
  assert sorted(songs) == [TRAIN_A, TRAIN_B]
  assert songs[TRAIN_B][1] == str(tmp_path / 'V2' / 'Metadata' / f'{TRAIN_B}_METADATA.yaml')
  make_song(str(tmp_path / 'V2' / 'Audio'), TRAIN_A, raws(TRAIN_A, 1))
  with pytest.raises(medleydb.MedleyDBError, match='appears twice'):
    medleydb.find_songs(str(tmp_path))


# ---- each kind of bad input, on load_song directly (no tfds needed) ------------------------


def _load(audio, song_id, **cfg):
  songs = medleydb.find_songs(os.path.dirname(audio))
  return medleydb.load_song(song_id, *songs[song_id], 3, **cfg)


@pytest.fixture
def audio(tmp_path):
  return str(tmp_path / 'Audio')


def _raw_path(audio, song_id, r, stem=1):
  return os.path.join(audio, song_id, f'{song_id}_RAW', f'{song_id}_RAW_{stem:02d}_{r:02d}.wav')


def test_missing_and_extra_raw_files(audio):
  make_song(audio, TRAIN_A, raws(TRAIN_A, 2))
  os.remove(_raw_path(audio, TRAIN_A, 2))
  with pytest.raises(medleydb.MedleyDBError, match=r"missing .*RAW_01_02\.wav.*Extract"):
    _load(audio, TRAIN_A)
  make_song(audio, TRAIN_B, raws(TRAIN_B, 2))
  sf.write(_raw_path(audio, TRAIN_B, 9), np.zeros(SR), SR)
  with pytest.raises(medleydb.MedleyDBError, match=r"not listed .*RAW_01_09\.wav"):
    _load(audio, TRAIN_B)


def test_unreadable_wav_unequal_lengths_and_mix_mismatch(audio):
  make_song(audio, TRAIN_A, raws(TRAIN_A, 2))
  with open(_raw_path(audio, TRAIN_A, 1), 'wb') as f:
    f.write(b'RIFF....WAVEjunk' * 8)
  with pytest.raises(medleydb.MedleyDBError, match=r'RAW_01_01\.wav.*(corrupt|read)'):
    _load(audio, TRAIN_A)
  make_song(audio, TRAIN_B, raws(TRAIN_B, 2), lengths={f'{TRAIN_B}_RAW_01_02.wav': SR - 10})
  with pytest.raises(medleydb.MedleyDBError, match='unequal lengths'):
    _load(audio, TRAIN_B)
  make_song(audio, VALID, raws(VALID, 2), mix_samples=SR - 5)
  with pytest.raises(medleydb.MedleyDBError, match=r'MIX\.wav has 44095 samples'):
    _load(audio, VALID)


def test_wrong_rate_is_an_error_when_resampling_is_off(audio):
  make_song(audio, TEST, raws(TEST, 1), rate=22050)
  with pytest.raises(medleydb.MedleyDBError, match=r'RAW_01_01\.wav is at 22050 Hz'):
    _load(audio, TEST, resample=False)
  assert _load(audio, TEST)['raw'].shape == (1, SR)


def test_zero_raw_tracks_missing_and_broken_metadata(audio, tmp_path):
  meta = make_song(audio, TRAIN_A, raws(TRAIN_A, 1))
  meta['stems'] = {'S01': {'component': '', 'filename': 'x.wav', 'instrument': 'piano', 'raw': {}}}
  yaml_path = os.path.join(audio, TRAIN_A, f'{TRAIN_A}_METADATA.yaml')
  with open(yaml_path, 'w') as f:
    yaml.safe_dump(meta, f)
  with pytest.raises(medleydb.MedleyDBError, match='zero raw tracks'):
    _load(audio, TRAIN_A)
  with open(yaml_path, 'w') as f:
    f.write('stems: [unclosed\n')
  with pytest.raises(medleydb.MedleyDBError, match=f'Cannot parse .*{TRAIN_A}_METADATA.yaml'):
    _load(audio, TRAIN_A)
  os.remove(yaml_path)
  with pytest.raises(medleydb.MedleyDBError, match=f'No metadata for song {TRAIN_A}'):
    _load(audio, TRAIN_A)


def test_split_file_matches_the_hash_rule():
  with open(medleydb.SPLITS_FILE) as f:
    data = json.load(f)
  listed = medleydb.listed_splits()
  assert len(listed) == 196 == sum(data['counts'].values())
  assert data['counts'] == {'train': 137, 'validation': 30, 'test': 29}
  assert all(medleydb.split_of(song) == split for song, split in listed.items())
  assert medleydb.assign_split('Someone_NewSong') == medleydb.split_of('Someone_NewSong')
  assert {medleydb.split_of(f'Artist_Song{i}') for i in range(50)} == set(medleydb.SPLITS)


def test_the_default_track_limit_uses_the_predefined_config(tmp_path):
  """max_raw_tracks=8 (configs/mr.py) names the predefined config; tfds refuses a copy of it."""
  builder = medleydb.Medleydb(data_dir=str(tmp_path), max_raw_tracks=8)
  assert builder.builder_config is medleydb.Medleydb.BUILDER_CONFIGS[0]
  assert medleydb.Medleydb(data_dir=str(tmp_path), max_raw_tracks=5).builder_config.name == 'max_raw_5'


def test_has_bleed_filter(manual_dir, tmp_path):
  # VALID is the fixture's only song flagged has_bleed: yes.
  yes = build(manual_dir, tmp_path / 'yes', max_raw_tracks=3, has_bleed='yes')
  assert yes.builder_config.name == 'max_raw_3_bleed_yes'
  assert list(yes.info.splits.keys()) == ['validation']
  assert list(examples(yes, 'validation')) == [VALID]
  no = build(manual_dir, tmp_path / 'no', max_raw_tracks=3, has_bleed='no')
  kept = {s: sorted(examples(no, s)) for s in no.info.splits.keys()}
  assert kept == {'train': [TRAIN_A, TRAIN_B], 'test': [TEST]}
  assert not any(ex['has_bleed'] for s in kept for ex in examples(no, s).values())
  with pytest.raises(ValueError, match='has_bleed must be one of'):
    medleydb.Medleydb(data_dir=str(tmp_path / 'bad'), max_raw_tracks=3, has_bleed='maybe')


def test_split_file_selects_and_assigns_songs(manual_dir, tmp_path):
  path = tmp_path / 'paper.json'
  path.write_text(json.dumps({'train': [TEST, VALID], 'validation': [TRAIN_A]}))
  builder = build(manual_dir, tmp_path / 'd', max_raw_tracks=3, split_file=str(path))
  assert builder.builder_config.name.startswith('max_raw_3_split_')
  assert sorted(builder.info.splits.keys()) == ['train', 'validation']
  assert sorted(examples(builder, 'train')) == sorted([TEST, VALID])
  assert list(examples(builder, 'validation')) == [TRAIN_A]  # TRAIN_B: not in the file
  # A changed file is another config, never an older build.
  path.write_text(json.dumps({'train': [TEST]}))
  assert medleydb.config_for(3, split_file=str(path)).name != builder.builder_config.name


def test_split_file_errors_name_the_bad_ids(manual_dir, tmp_path):
  bad = tmp_path / 'bad.json'
  bad.write_text(json.dumps({'train': [TRAIN_A, 'Nobody_NoSuchSong'], 'test': ['Typo_Song']}))
  with pytest.raises(medleydb.MedleyDBError, match=r"Nobody_NoSuchSong', 'Typo_Song'"):
    build(manual_dir, tmp_path / 'd1', max_raw_tracks=3, split_file=str(bad))
  twice = tmp_path / 'twice.json'
  twice.write_text(json.dumps({'train': [TRAIN_A], 'validation': [TRAIN_A]}))
  with pytest.raises(medleydb.MedleyDBError, match=f'lists {TRAIN_A} in both'):
    build(manual_dir, tmp_path / 'd2', max_raw_tracks=3, split_file=str(twice))
  wrong_key = tmp_path / 'key.json'
  wrong_key.write_text(json.dumps({'training': [TRAIN_A]}))
  with pytest.raises(medleydb.MedleyDBError, match='keys among'):
    build(manual_dir, tmp_path / 'd3', max_raw_tracks=3, split_file=str(wrong_key))
  with pytest.raises(medleydb.MedleyDBError, match='Cannot read'):
    medleydb.config_for(3, split_file=str(tmp_path / 'missing.json'))
