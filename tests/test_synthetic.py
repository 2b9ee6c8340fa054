"""Tests for alm_jax/data/synthetic.py: the generator and the `synthetic_live` builder."""

import time

import numpy as np
import pytest
import tensorflow_datasets as tfds

from alm_jax.data import common
from alm_jax.data import synthetic

SR = common.SAMPLE_RATE


def _centroid_hz(x):
  spec = np.abs(np.fft.rfft(x)) ** 2  # power-weighted
  return float(np.sum(spec * np.fft.rfftfreq(x.size, 1 / SR)) / np.sum(spec))


def test_song_is_deterministic_with_known_mix_and_designed_levels():
  song = synthetic.generate_song([7, 1], 6, 4.0)
  again = synthetic.generate_song([7, 1], 6, 4.0)
  np.testing.assert_array_equal(song.raw, again.raw)
  assert not np.array_equal(song.raw, synthetic.generate_song([7, 2], 6, 4.0).raw)
  assert song.raw.shape == (6, 4 * SR) and song.raw.dtype == np.float32
  assert song.instruments[:4] == ['kick', 'snare', 'hihat', 'bass']
  assert song.instruments[-1] == 'lead' and song.instruments[4] in ('keys', 'pad', 'guitar')
  np.testing.assert_allclose(song.mix, song.mix_gains @ song.raw, atol=1e-5)
  assert np.abs(song.mix).max() <= 10 ** (-1 / 20) + 1e-6
  peaks_db = 20 * np.log10(np.abs(song.raw).max(axis=1))
  assert np.all((peaks_db > -20.01) & (peaks_db < -0.99))  # recorded levels
  # In the mix every part sits at its designed RMS, up to the +-1.5 dB per-song jitter
  # (and a common offset if the whole mix had to be turned down).
  levels = 20 * np.log10(np.sqrt(np.mean((song.mix_gains[:, None] * song.raw) ** 2, axis=1)))
  design = np.array([synthetic.DESIGN_LEVELS_DB[p] for p in song.instruments])
  offset = levels - design
  assert np.ptp(offset) <= 3.0 + 1e-3 and np.all(offset <= 1.5 + 1e-3)
  # Different spectra: kick low, hi-hat high, bass below lead.
  cent = {p: _centroid_hz(x) for p, x in zip(song.instruments, song.raw)}
  assert cent['kick'] < 400 < 6000 < cent['hihat']
  assert cent['bass'] < cent['lead']


@pytest.mark.parametrize('channels', [3, 4, 5])
def test_smaller_songs_have_drums_bass_and_a_melodic_or_harmonic_part(channels):
  song = synthetic.generate_song([0, channels], channels, 3.0)
  assert song.raw.shape[0] == channels == len(song.instruments)
  assert 'bass' in song.instruments
  assert np.all(np.abs(song.raw).max(axis=1) > 0)
  with pytest.raises(ValueError, match='3-6 channels'):
    synthetic.generate_song(0, 7, 1.0)


def test_builder_writes_splits_with_shared_features(tmp_path):
  config = synthetic.SyntheticLiveConfig(name='unit', num_train=3, num_validation=1, num_test=1,
                                         min_seconds=2.0, max_seconds=3.0, seed=5)
  builder = synthetic.SyntheticLive(config=config, data_dir=str(tmp_path))
  builder.download_and_prepare()
  assert {s: builder.info.splits[s].num_examples for s in ('train', 'validation', 'test')} == {
      'train': 3, 'validation': 1, 'test': 1}
  ids = []
  for ex in tfds.as_numpy(builder.as_dataset(split='train')):
    c, n = ex['raw'].shape
    assert 3 <= c <= 6 and 2 * SR <= n <= 3 * SR
    assert ex['raw'].dtype == np.int16 and ex['mix'].shape == (n,)
    assert ex['sample_rate'] == SR and not ex['has_bleed'] and len(ex['instruments']) == c
    raw = common.dequantize(ex['raw'], ex['raw_scale'])
    mix = common.dequantize(ex['mix'], ex['mix_scale'])
    # The stored target is the designed mix of the stored raw tracks.
    np.testing.assert_allclose(ex['mix_gains'] @ raw, mix, atol=2e-3)
    ids.append(ex['song_id'].decode())
  assert sorted(ids) == ['synthetic_train_000', 'synthetic_train_001', 'synthetic_train_002']
  # Same config, same songs: the dataset is reproducible from its seed.
  again = synthetic.SyntheticLive(config=config, data_dir=str(tmp_path / 'again'))
  again.download_and_prepare()
  a = next(iter(tfds.as_numpy(builder.as_dataset(split='test'))))
  b = next(iter(tfds.as_numpy(again.as_dataset(split='test'))))
  np.testing.assert_array_equal(a['raw'], b['raw'])


@pytest.mark.slow
def test_default_size_generates_in_under_a_minute(tmp_path):
  start = time.time()
  builder = tfds.builder('synthetic_live', data_dir=str(tmp_path))
  builder.download_and_prepare()
  assert time.time() - start < 60
  assert builder.info.splits['train'].num_examples == 12
  assert builder.info.splits['validation'].num_examples == 3
  assert builder.info.splits['test'].num_examples == 3
