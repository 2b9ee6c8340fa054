"""Tests for alm_jax/data/pipeline.py on the tiny synthetic dataset."""

import dataclasses
import itertools
import time

import ml_collections
import numpy as np
import pytest
from numpy.lib.stride_tricks import sliding_window_view

from alm_jax import config_checks
from alm_jax import metrics
from alm_jax import optimizer
from alm_jax.data import bleed
from alm_jax.data import common
from alm_jax.data import medleydb
from alm_jax.data import pipeline
from alm_jax.data import placement
from alm_jax.data import prefetch
from alm_jax.data import stage
from alm_jax import stereo
from conftest import load_config

SEG = 2.0
S = int(SEG * common.SAMPLE_RATE)
KEYS = {'audio', 'channel_mask', 'target', 'bleed_severity', 'ideal_gains'}
METADATA = {'channel_source', 'input_gain_db', 'target_gains', 'segment_start', 'instruments',
            'target_stereo', 'ideal_pans'}
STEREO = {'target_stereo', 'ideal_pans'}  # training batches of a model with pans


@pytest.fixture(scope='module')
def dirs(tmp_path_factory):
  return str(tmp_path_factory.mktemp('tfds')), str(tmp_path_factory.mktemp('work'))


@pytest.fixture
def config(dirs):
  """Quickstart data settings on synthetic_live/tiny (4/2/2 songs of 3-5 s, 3-6 channels)."""
  c = load_config('quickstart')
  c.data.name = 'synthetic_live/tiny'
  c.data.data_dir = dirs[0]
  c.data.bleed.cache_dir = dirs[1]
  c.data.segment_seconds = c.data.eval_segment_seconds = SEG
  c.data.bleed.bank_size = 4
  c.data.bleed.rir_seconds = 0.02
  c.data.bleed.max_order = 2
  c.data.bleed.room_max = (6.0, 6.0, 3.0)
  c.train.batch_size = 4
  return c


def steps_per_epoch(config) -> int:
  """As the training loop computes it (alm_jax.optimizer, the one rule) and hands it down."""
  return optimizer.steps_per_epoch(config.train, pipeline.num_train_songs(config))


def take(config, n, **kwargs):
  kwargs.setdefault('steps_per_epoch', steps_per_epoch(config))
  it = pipeline.make_train_iterator(config, **kwargs)
  out = list(itertools.islice(it, n))
  it.close()
  return out


def identify(songs, target):
  """(song, start) whose mix segment is exactly `target`."""
  for song in songs:
    q = np.round(target[:32] / (song.mix_scale / 32767)).astype(np.int16)
    hits = np.flatnonzero(np.all(sliding_window_view(song.mix, 32) == q, axis=1))
    for start in hits:
      if np.array_equal(song.mix_segment(int(start), target.size), target):
        return song, int(start)
  raise AssertionError('target is not a segment of any song mix')


def check_metadata(batch, songs):
  """Each example's metadata describes its arrays; returns [(song, start)] per example."""
  bsz, cmax = batch['channel_mask'].shape
  for key, dtype in (('channel_source', np.int32), ('input_gain_db', np.float32),
                     ('target_gains', np.float32)):
    assert batch[key].shape == (bsz, cmax) and batch[key].dtype == dtype, key
  assert batch['segment_start'].shape == (bsz,) and batch['segment_start'].dtype == np.float32
  assert len(batch['instruments']) == bsz
  found = []
  for e in range(bsz):
    song, start = identify(songs, batch['target'][e])
    found.append((song, start))
    c = song.num_channels
    src = batch['channel_source'][e]
    assert sorted(src[:c].tolist()) == list(range(c)) and np.all(src[c:] == -1)
    np.testing.assert_array_equal(batch['channel_mask'][e], src >= 0)
    assert batch['instruments'][e] == [song.instruments[p] for p in src[:c]] + [''] * (cmax - c)
    assert round(float(batch['segment_start'][e]) * common.SAMPLE_RATE) == start
    # The designed gains, applied to the clean tracks in channel order, are the target mix
    # (up to the int16 storage of tracks and mix).
    clean = song.raw_segment(start, S)[src[:c]].astype(np.float64)
    gains = batch['target_gains'][e]
    np.testing.assert_allclose(gains[:c] @ clean, batch['target'][e],
                               atol=2e-3 * np.abs(batch['target'][e]).max())
    np.testing.assert_array_equal(gains[c:], 0)
    np.testing.assert_array_equal(batch['input_gain_db'][e, c:], 0)
    # The designed placement of the song's tracks, and the stereo target it makes of them.
    pans = batch['ideal_pans'][e]
    np.testing.assert_array_equal(pans[:c], placement.designed_pans(
        song.song_id, song.instruments, song.raw)[src[:c]])
    assert np.isnan(pans[c:]).all()
    np.testing.assert_allclose(batch['target_stereo'][e],
                               stereo.mix_numpy(clean, gains[:c], pans[:c]), atol=1e-6)
    # Its mid: each track at gain x cos(pan x pi / 4), the centre's channels at their mono level.
    mid = stereo.mid_side(batch['target_stereo'][e])[0]
    np.testing.assert_allclose(mid, (gains[:c] * np.cos(pans[:c] * np.pi / 4)) @ clean, atol=1e-5)
    assert np.all(np.abs(batch['input_gain_db'][e, :c]) <= 24 + 1e-4)
  return found


def test_batches_have_the_interface_shapes(config):
  assert pipeline.num_train_songs(config) == 4
  batch = take(config, 1)[0]
  assert set(batch) == KEYS  # the training loop sends every array to the device
  assert batch['audio'].shape == (4, 6, S) and batch['audio'].dtype == np.float32
  assert batch['channel_mask'].shape == (4, 6) and batch['channel_mask'].dtype == bool
  assert batch['target'].shape == (4, S) and batch['bleed_severity'].shape == (4,)
  songs = pipeline.load_songs(config, 'train')
  counts = batch['channel_mask'].sum(axis=1)
  for e in range(4):
    assert np.all(batch['channel_mask'][e, :counts[e]])  # active channels first
    assert np.all(batch['audio'][e, counts[e]:] == 0)
    song, _ = identify(songs, batch['target'][e])
    assert counts[e] == song.num_channels
  assert np.all((batch['bleed_severity'] >= -30) & (batch['bleed_severity'] <= -6))
  assert np.isfinite(batch['audio']).all()
  assert batch['ideal_gains'].shape == (4, 6) and batch['ideal_gains'].dtype == np.float32
  assert np.all(np.isnan(batch['ideal_gains'][~batch['channel_mask']]))


def test_stream_is_deterministic_and_resumable(config):
  first = take(config, 4)
  resumed = take(config, 2, start_step=2)
  for a, b in zip(first[2:], resumed):
    for k in a:
      np.testing.assert_array_equal(a[k], b[k])
  config.seed = 1
  other = take(config, 1)[0]
  assert not np.array_equal(other['audio'], first[0]['audio'])


def test_parallel_workers_give_the_same_batches(config):
  """num_workers only changes the speed: the same batches, in order, resumed exactly."""
  config.data.num_workers, config.data.prefetch = 0, 0  # inline: the reference
  ref = take(config, 3, metadata=True)
  config.data.num_workers, config.data.prefetch = 2, 1
  got = take(config, 3, metadata=True)
  resumed = take(config, 1, start_step=2, metadata=True)
  for a, b in zip(ref + ref[2:], got + resumed):
    assert set(a) == set(b)
    for k in a:
      np.testing.assert_array_equal(a[k], b[k], err_msg=k)
  # Evaluation batches too.
  evals = pipeline.make_eval_batches(config, 'test')
  config.data.num_workers = 0
  for a, b in zip(pipeline.make_eval_batches(config, 'test'), evals):
    np.testing.assert_array_equal(a['audio'], b['audio'])


def test_parallel_batches_order_errors_and_bound():
  """The worker pool hands out build(step) in step order, raises at the failing step, stays bounded."""
  started = []

  def build(step):
    started.append(step)
    time.sleep(0.002 * ((step * 7) % 5))  # finish out of order
    if step == 6:
      raise ValueError('bad step 6')
    return {'step': step}

  it = prefetch.ParallelBatches(build, 3, workers=3, ahead=4)
  assert [next(it)['step'] for _ in range(3)] == [3, 4, 5]
  with pytest.raises(ValueError, match='bad step 6'):
    next(it)
  time.sleep(0.1)
  assert max(started) <= 6 + 4  # never more than `ahead` past the consumer
  it.close()
  with pytest.raises(StopIteration):
    next(it)
  with pytest.raises(ValueError, match='num_workers'):
    pipeline.num_workers(ml_collections.ConfigDict({'data': {'num_workers': -2}}))
  assert pipeline.num_workers(ml_collections.ConfigDict({'data': {'num_workers': -1}})) >= 1


def test_every_song_once_per_epoch_and_target_untouched(config):
  songs = pipeline.load_songs(config, 'train')
  assert steps_per_epoch(config) == 1  # 4 songs, batch 4
  for batch in take(config, 3):
    seen = [identify(songs, t)[0].song_id for t in batch['target']]
    assert sorted(seen) == sorted(s.song_id for s in songs)


def test_train_also_joins_further_training_splits(config):
  """config.data.train_also: more corpora's train splits (here the same one again: twice the songs)."""
  songs = pipeline.load_songs(config, 'train')
  config.data.train_also = (config.data.name,)
  assert [c.data.name for c in pipeline.corpora(config)] == [config.data.name] * 2
  assert pipeline.num_train_songs(config) == 2 * len(songs)
  assert steps_per_epoch(config) == 2  # 8 songs, batch 4
  seen = [identify(songs, t)[0].song_id for batch in take(config, 2) for t in batch['target']]
  assert sorted(seen) == sorted(2 * [s.song_id for s in songs])
  config.data.train_also = ('no_such_dataset',)
  with pytest.raises(ValueError, match='no_such_dataset'):
    pipeline.num_train_songs(config)


def test_switches_give_clean_inputs(config):
  config.data.bleed.enabled = False
  config.data.levels.enabled = False
  songs = pipeline.load_songs(config, 'train')
  batch = take(config, 1)[0]
  np.testing.assert_array_equal(batch['bleed_severity'], bleed.BLEED_OFF_DB)
  for e in range(4):
    song, start = identify(songs, batch['target'][e])
    raw = song.raw_segment(start, S)
    c = song.num_channels
    # Exactly the raw tracks, in some order.
    order = [int(np.flatnonzero([np.array_equal(a, r) for r in raw])[0])
             for a in batch['audio'][e, :c]]
    assert sorted(order) == list(range(c))
  config.data.levels.enabled = True
  batch = take(config, 1, metadata=True)[0]
  for e, (song, start) in enumerate(check_metadata(batch, songs)):
    raw = song.raw_segment(start, S)
    c = song.num_channels
    # Without bleed each input is its own track at exactly the reported level.
    level = 10.0 ** (batch['input_gain_db'][e, :c] / 20)
    np.testing.assert_allclose(batch['audio'][e, :c],
                               level[:, None] * raw[batch['channel_source'][e, :c]],
                               rtol=1e-5, atol=1e-7)
    for a in batch['audio'][e, :song.num_channels]:  # a scaled copy of one raw track
      ratios = [np.dot(a, r) / np.dot(r, r) for r in raw]
      j = int(np.argmax(np.abs(np.array([np.corrcoef(a, r)[0, 1] for r in raw]))))
      np.testing.assert_allclose(a, ratios[j] * raw[j], atol=1e-4 * np.abs(a).max())
      assert 10 ** (-24 / 20) - 1e-6 <= ratios[j] <= 10 ** (24 / 20) + 1e-6


def test_stage_songs_bleed_through_their_own_layout(config, dirs):
  """A `rendered_live/stage` song's inputs are its tracks through its stage's responses."""
  config.data.bleed.severity_db = (-18.0, -18.0)  # offset 0: the geometry's own bleed
  config.data.levels.enabled = False
  maker = pipeline._Maker(config, dirs[1])  # pylint: disable=protected-access
  band = ('kick:Standard', 'snare:Standard', 'hats:Standard', 'overheads:Standard',
          'bass:Fingered', 'lead:Harmonica')  # quickstart: 6 channels at most
  n = S + 2 * maker.preroll
  tracks = np.random.default_rng(0).standard_normal((6, n)).astype(np.float32) * 0.1
  raw, scale = common.quantize(tracks)
  mix, mix_scale = common.quantize(tracks.sum(0))

  def inputs(song_id):
    song = pipeline.Song(song_id, raw, scale, mix, float(mix_scale), band)
    batch = maker.batch([(song, maker.preroll, np.random.default_rng(1))], S)
    return song, batch

  song, batch = inputs('stage_train_005')
  perm = np.random.default_rng(1).permutation(6)  # the first draw of an example's rng
  np.testing.assert_array_equal(batch['channel_source'][0, :6], perm)
  lay = stage.layout('stage_train_005', band)
  h = stage.responses(lay, maker.preroll, common.SAMPLE_RATE, max_order=2)[np.ix_(perm, perm)]
  # The responses used are the geometry's: direct paths at the layout's gains and delays.
  gains, delays = stage.direct_gains(lay), stage.direct_delays(lay, common.SAMPLE_RATE)
  for i in range(6):
    for j in range(6):
      t = delays[perm[i], perm[j]]
      if t < maker.preroll:
        assert abs(h[i, j, t] - gains[perm[i], perm[j]]) < 0.02 * gains[perm[i], perm[j]] + 1e-3
  x = song.raw_segment(0, S + maker.preroll)[perm]
  want = bleed.convolve_numpy(x, h.astype(np.float16).astype(np.float32))[:, maker.preroll:]
  np.testing.assert_allclose(batch['audio'][0, :6], want, atol=1e-4 * np.abs(want).max())
  assert batch['bleed_severity'][0] == pytest.approx(bleed.severity_of(h), abs=0.05)
  # The same tracks under a song id with no stage bleed through a bank room instead.
  _, plain = inputs('rendered_train_005')
  assert plain['bleed_severity'][0] == pytest.approx(-18.0)
  assert not np.allclose(plain['audio'][0, :6], batch['audio'][0, :6], atol=1e-3)


def test_silent_segments_are_skipped():
  n = 10 * common.SAMPLE_RATE
  mix = np.zeros(n, np.int16)
  mix[-S:] = 1000  # only the last segment is audible
  song = pipeline.Song('s', np.zeros((1, n), np.int16), np.zeros(1, np.float32), mix, 1.0, ('x',))
  hits = [pipeline._random_start(song, S, np.random.default_rng(i), -60.0) for i in range(20)]
  assert sum(h > n - 2 * S for h in hits) >= 15  # a random start would manage ~2
  silent = pipeline.Song('z', song.raw, song.raw_scale, np.zeros(n, np.int16), 1.0, ('x',))
  assert 0 <= pipeline._random_start(silent, S, np.random.default_rng(0), -60.0) <= n - S
  short = pipeline.Song('t', song.raw[:, :100], song.raw_scale, mix[:100], 1.0, ('x',))
  assert pipeline._random_start(short, S, np.random.default_rng(0), -60.0) == 0
  assert short.mix_segment(0, S).shape == (S,) and short.raw_segment(-5, S).shape == (1, S)


def test_process_sharding(config):
  config.train.batch_size = 4
  ids = [[s.song_id for s in pipeline.load_songs(config, 'train', p, 2)] for p in range(2)]
  assert not set(ids[0]) & set(ids[1])
  assert sorted(ids[0] + ids[1]) == sorted(s.song_id for s in pipeline.load_songs(config, 'train'))
  b0 = take(config, 1, process_index=0, process_count=2)[0]
  b1 = take(config, 1, process_index=1, process_count=2)[0]
  assert b0['audio'].shape == (2, 6, S)
  assert not np.array_equal(b0['target'], b1['target'])
  config.train.batch_size = 3
  with pytest.raises(ValueError, match='divisible'):
    pipeline.make_train_iterator(config, steps_per_epoch=1, process_count=2)


def test_eval_batches_are_fixed_and_padded(config):
  evals = pipeline.make_eval_batches(config, 'validation')
  assert len(evals) == 1
  batch = evals[0]
  assert set(batch) == KEYS | METADATA | {'example_mask', 'song_id'}
  assert batch['audio'].shape == (4, 6, S)
  np.testing.assert_array_equal(batch['example_mask'], [True, True, False, False])
  assert batch['song_id'] == ['synthetic_validation_000', 'synthetic_validation_001', '', '']
  assert np.abs(batch['target'][2:]).max() > 0  # padding copies a real example
  again = pipeline.make_eval_batches(config, 'validation')[0]
  np.testing.assert_array_equal(batch['audio'], again['audio'])
  halves = [pipeline.make_eval_batches(config, 'validation', process_index=p, process_count=2)
            for p in range(2)]
  assert [len(h) for h in halves] == [1, 1]
  np.testing.assert_array_equal(halves[0][0]['example_mask'], [True, True])
  np.testing.assert_array_equal(halves[1][0]['example_mask'], [False, False])
  np.testing.assert_array_equal(halves[0][0]['audio'], batch['audio'][:2])
  songs = pipeline.load_songs(config, 'validation')
  found = check_metadata(batch, songs)
  assert [s.song_id for s, _ in found[:2]] == batch['song_id'][:2]
  # Padding examples copy a real one, metadata included.
  np.testing.assert_array_equal(batch['channel_source'][2], batch['channel_source'][0])
  assert batch['instruments'][2] == batch['instruments'][0]
  config.data.eval_segments_per_song = 3
  more = pipeline.make_eval_batches(config, 'test')
  assert sum(b['example_mask'].sum() for b in more) >= 2


def test_train_metadata_is_optional_and_changes_nothing(config):
  plain, = take(config, 1)
  rich, = take(config, 1, metadata=True)
  assert set(rich) == KEYS | METADATA
  for k in KEYS:
    np.testing.assert_array_equal(plain[k], rich[k])
  check_metadata(rich, pipeline.load_songs(config, 'train'))
  # The loss's ideal gains are the balance metric's, from the same draws.
  mask = rich['channel_mask']
  np.testing.assert_allclose(
      rich['ideal_gains'][mask],
      metrics.ideal_input_gains(rich['target_gains'], rich['input_gain_db'])[mask], rtol=1e-6)


def test_unknown_mix_gains_are_nan(config):
  """A dataset without designed gains (MedleyDB) gets NaN on its channels."""
  config.data.bleed.enabled = False
  song = pipeline.load_songs(config, 'validation')[0]
  assert song.mix_gains is not None and song.mix_gains.shape == (song.num_channels,)
  unknown = dataclasses.replace(song, mix_gains=None)
  batch = pipeline._Maker(config, None).batch([(unknown, 0, np.random.default_rng(0))], S)
  c = song.num_channels
  assert np.isnan(batch['target_gains'][0, :c]).all()
  assert np.isnan(batch['ideal_gains'][0]).all()
  np.testing.assert_array_equal(batch['target_gains'][0, c:], 0)
  assert np.isfinite(batch['input_gain_db']).all()
  # No designed mix, no designed placement: the mono target at the centre, pans unknown.
  assert np.isnan(batch['ideal_pans'][0]).all()
  np.testing.assert_array_equal(batch['target_stereo'][0], stereo.centred(batch['target'][0]))


def test_a_model_with_pans_gets_the_stereo_target(config):
  plain, = take(config, 1)
  config.model.outputs = ('gain', 'pan')
  wide, = take(config, 1)
  rich, = take(config, 1, metadata=True)
  assert set(wide) == KEYS | STEREO
  for k in KEYS | STEREO:
    np.testing.assert_array_equal(wide[k], rich[k])
  for k in KEYS:  # the mono batch is unchanged
    np.testing.assert_array_equal(plain[k], wide[k])
  assert np.isfinite(wide['ideal_pans'][wide['channel_mask']]).all()


def test_jax_backend_matches_numpy(config):
  ref = take(config, 1)[0]
  config.data.bleed.backend = 'jax'
  got = take(config, 1)[0]
  np.testing.assert_allclose(got['audio'], ref['audio'], atol=1e-4 * np.abs(ref['audio']).max())
  np.testing.assert_array_equal(got['target'], ref['target'])


def test_bad_configs(config, tmp_path):
  config.model.max_channels = 3
  with pytest.raises(ValueError, match='max_channels'):
    pipeline.make_train_iterator(config, steps_per_epoch=1)
  config.model.max_channels = 6
  with pytest.raises(ValueError, match="no 'holdout' split"):
    pipeline.make_eval_batches(config, 'holdout')
  config.data.name = 'no_such_dataset'
  with pytest.raises(ValueError, match='Unknown dataset'):
    pipeline.num_train_songs(config)
  config.data.name = 'medleydb'
  config.data.data_dir = str(tmp_path)
  with pytest.raises(medleydb.MedleyDBError, match='manual_dir'):
    pipeline.num_train_songs(config)


def test_timbre_equalises_the_training_sources_and_resums_the_target(config):
  """config.data.timbre: each source through its own equaliser, the target re-summed, no other
  draw changed; evaluation batches only with in_eval."""
  plain, = take(config, 1, metadata=True)
  config.data.timbre.enabled = True
  eq, = take(config, 1, metadata=True)
  for k in ('channel_source', 'input_gain_db', 'target_gains', 'segment_start', 'ideal_gains',
            'bleed_severity', 'channel_mask', 'ideal_pans'):
    np.testing.assert_array_equal(eq[k], plain[k], err_msg=k)
  assert np.max(np.abs(eq['audio'] - plain['audio'])) > 1e-3
  assert np.max(np.abs(eq['target'] - plain['target'])) > 1e-3
  # A flat equaliser (the same draws, no gain) re-sums the stored target over the same window,
  # bleed's preroll and all.
  config.data.timbre.tilt_db = config.data.timbre.bell_db = 0.0
  flat, = take(config, 1, metadata=True)
  np.testing.assert_allclose(flat['target'], plain['target'],
                             atol=2e-3 * np.abs(plain['target']).max())
  np.testing.assert_allclose(flat['audio'], plain['audio'], atol=1e-5)
  config.data.timbre.tilt_db = config.data.timbre.bell_db = 6.0
  # Without bleed each input is its equalised track at its level: the designed gains on those
  # tracks are the target, and each track keeps its RMS.
  config.data.bleed.enabled = False
  config.data.timbre.enabled = False
  songs = pipeline.load_songs(config, 'train')
  found = check_metadata(take(config, 1, metadata=True)[0], songs)
  config.data.timbre.enabled = True
  b, = take(config, 1, metadata=True)
  for e, (song, start) in enumerate(found):
    c = song.num_channels
    tracks = b['audio'][e, :c] / 10.0 ** (b['input_gain_db'][e, :c, None] / 20)
    np.testing.assert_allclose(b['target_gains'][e, :c] @ tracks, b['target'][e], atol=1e-5)
    raw = song.raw_segment(start, S)[b['channel_source'][e, :c]]
    np.testing.assert_allclose(np.sqrt(np.mean(tracks**2, -1)), np.sqrt(np.mean(raw**2, -1)),
                               rtol=1e-4)
    assert not np.allclose(tracks, raw, atol=1e-3)
  # Evaluation batches: untouched unless asked for.
  config.data.timbre.enabled = False
  before = pipeline.make_eval_batches(config, 'validation')
  config.data.timbre.enabled = True
  after = pipeline.make_eval_batches(config, 'validation')
  config.data.timbre.in_eval = True
  shifted = pipeline.make_eval_batches(config, 'validation')
  for x, y, z in zip(before, after, shifted):
    for k in ('audio', 'target'):
      np.testing.assert_array_equal(x[k], y[k])
      assert np.max(np.abs(z[k] - x[k])) > 1e-3


def test_timbre_needs_designed_gains(config, monkeypatch):
  """Songs without designed gains (MedleyDB) are refused before the stream starts."""
  songs = pipeline.load_songs(config, 'train')
  songs[1] = dataclasses.replace(songs[1], song_id='no_gains', mix_gains=None)
  monkeypatch.setattr(pipeline, 'load_songs', lambda *args, **kwargs: list(songs))
  take(config, 1)  # off: such songs are fine
  config.data.timbre.enabled = True
  with pytest.raises(ValueError, match=r'no_gains.*config\.data\.timbre\.enabled = False'):
    take(config, 1)
  config.data.timbre.in_eval = True
  with pytest.raises(ValueError, match='no_gains'):
    pipeline.make_eval_batches(config, 'validation')
  config.data.timbre.enabled = False
  with pytest.raises(Exception, match=r'in_eval = True needs config\.data\.timbre\.enabled'):
    config_checks.check(config)
