"""Where a show is recorded (`recorder.take_folder`): numbered takes, --overwrite, refused folders.

The recorder's streaming and WAV validity are tested with the engine
(test_live_engine.py) and under kill -9 (test_live_jack.py); the command line
records two takes in test_live_main.py.
"""

import hashlib
import json
import os

import numpy as np
import pytest
import soundfile as sf

from alm_jax.live import controls as controls_lib
from alm_jax.live import engine as engine_lib
from alm_jax.live import recorder as recorder_lib


def _digest(folder):
  return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
          if p.is_file()}


def _record(folder, channels, seconds=0.2, stereo=False):
  """A real recording of `channels` channels of noise into `folder` (engine + Recorder).

  stereo: a stereo engine (a 2-channel mix.wav and pans.csv), with gain and pan rows for the
  frames it mixed. Returns (inputs [c, n], the engine).
  """
  f2 = 2205
  eng = engine_lib.Engine(channels, f2, controls_lib.Controls(channels, limit_db=None),
                          stereo=stereo)
  names = [str(i + 1) for i in range(channels)]
  rec = recorder_lib.Recorder(eng, folder, names, flush_seconds=0.01)
  n = int(seconds * 44100) // 128 * 128
  rng = np.random.default_rng(channels)
  x = rng.standard_normal((channels, n)).astype(np.float32) * 0.1
  mix = np.zeros((2, 128) if stereo else 128, np.float32)
  frames = n // f2 + 1
  for f in range(2, frames + 1):  # the worker's side: frame f's gains and pans, and their rows
    g = rng.uniform(0.1, 1.0, channels).astype(np.float32)
    p = rng.uniform(-1.0, 1.0, channels).astype(np.float32)
    eng.publish(f, g, p)
    rec.add_gains(f, g, g, np.zeros(channels, bool), p, p)
  for a in range(0, n, 128):
    eng.process(list(x[:, a:a + 128]), mix)
  rec.start()
  rec.stop()
  rec.join(10)
  return x, eng


def test_takes_are_numbered_and_an_earlier_take_is_never_touched(tmp_path):
  show = tmp_path / 'show'
  first = recorder_lib.take_folder(show)
  assert first == show / 'take-001'
  _record(first, 8)
  before = _digest(first)
  assert len([n for n in before if n.startswith('in_')]) == 8
  second = recorder_lib.take_folder(show)
  assert second == show / 'take-002'
  _record(second, 4)  # fewer channels: nothing of take-001 beside them
  assert sorted(n for n in os.listdir(second) if n.startswith('in_')) == [
      f'in_{i:02d}.wav' for i in range(1, 5)]
  assert _digest(first) == before
  info = json.loads((second / 'info.json').read_text())
  assert info['written_by'] == recorder_lib.MARK
  # Numbers only go up: a deleted or foreign-numbered take is not reused.
  (show / 'take-007').mkdir()
  assert recorder_lib.take_folder(show) == show / 'take-008'


def test_a_flat_recording_of_an_earlier_version_is_left_alone(tmp_path):
  _record(tmp_path, 8)  # in_01..08.wav, mix.wav, gains.csv, info.json directly in the folder
  before = _digest(tmp_path)
  take = recorder_lib.take_folder(tmp_path)
  assert take == tmp_path / 'take-001'
  assert {k: v for k, v in _digest(tmp_path).items() if k != 'take-001'} == before


def test_overwrite_replaces_exactly_one_recording_of_ours(tmp_path):
  show = tmp_path / 'show'
  assert recorder_lib.take_folder(show, overwrite=True) == show  # new folder: no take number
  _record(show, 8)
  assert recorder_lib.take_folder(show, overwrite=True) == show
  assert not os.listdir(show)  # the old in_05..in_08 cannot stay beside a 4-channel show
  _record(show, 4)
  assert len([n for n in os.listdir(show) if n.startswith('in_')]) == 4


@pytest.mark.parametrize('content', ['notes.txt', 'take-001', 'foreign_recording'])
def test_overwrite_refuses_any_other_folder(tmp_path, content):
  show = tmp_path / 'show'
  show.mkdir()
  if content == 'notes.txt':
    _record(show, 2)
    (show / 'notes.txt').write_text('setlist')
  elif content == 'take-001':
    recorder_lib.take_folder(show)
  else:  # a recording another program wrote: no mark
    (show / 'mix.wav').write_bytes(b'RIFF')
  before = sorted(os.listdir(show))
  with pytest.raises(recorder_lib.RecordError, match='--overwrite') as e:
    recorder_lib.take_folder(show, overwrite=True)
  assert 'take-NNN' in str(e.value) and 'new folder' in str(e.value)
  assert sorted(os.listdir(show)) == before


def test_unwritable_and_overlapping_folders_are_refused_in_one_line(tmp_path):
  (tmp_path / 'file').write_text('x')
  for bad, words in [(tmp_path / 'file', 'is a file'), (tmp_path / 'file' / 'show', 'lies under'),
                     ('/proc/alm_show', '/proc')]:
    with pytest.raises(recorder_lib.RecordError, match='--record') as e:
      recorder_lib.take_folder(bad)
    assert words in str(e.value) and '\n' not in str(e.value)
  song = tmp_path / 'song'
  song.mkdir()
  for bad in (song, song / 'rec', tmp_path):
    with pytest.raises(recorder_lib.RecordError, match='input folder'):
      recorder_lib.take_folder(bad, inputs=[str(song)])
  assert not (song / 'rec').exists()


def test_a_stereo_recording_has_a_two_channel_mix_and_pans_beside_the_gains(tmp_path):
  show = tmp_path / 'show'
  take = recorder_lib.take_folder(show)
  x, eng = _record(take, 3, stereo=True)
  n = x.shape[1]
  mix, rate = sf.read(take / 'mix.wav', dtype='float32')
  assert rate == 44100 and mix.shape == (n, 2)
  np.testing.assert_array_equal(mix.T, eng.read(0, n, mix=True))
  assert np.abs(mix[:, 0] - mix[:, 1]).max() > 1e-3  # the two sides differ: panned
  with open(take / 'pans.csv', encoding='utf-8') as fh:
    header = fh.readline().strip().split(',')
  assert header == ['frame', 'time_s', 'pred_pan_1', 'pred_pan_2', 'pred_pan_3', 'pan_1',
                    'pan_2', 'pan_3']
  frames, pred, pans = recorder_lib.read_pans_csv(take / 'pans.csv')
  gain_frames = recorder_lib.read_gains_csv(take / 'gains.csv')[0]
  np.testing.assert_array_equal(frames, gain_frames)
  assert frames[0] == 2 and pans.shape == (len(frames), 3) and np.array_equal(pred, pans)
  # Same file rules as a mono show: a second take beside it, --overwrite replaces it whole.
  second = recorder_lib.take_folder(show)
  assert second == show / 'take-002'
  _record(second, 2)  # a mono show: no pans.csv
  assert not (second / 'pans.csv').exists()
  assert sf.info(str(second / 'mix.wav')).channels == 1
  assert recorder_lib.take_folder(take, overwrite=True) == take
  assert not os.listdir(take)


def test_a_stereo_wav_is_valid_up_to_the_last_flush(tmp_path):
  path = tmp_path / 'mix.wav'
  w = recorder_lib.WavWriter(str(path), 44100, channels=2)
  block = np.stack([np.arange(100, dtype=np.float32), -np.arange(100, dtype=np.float32)])
  w.write(block)
  w.flush()
  w.write(np.ones((2, 50), np.float32))  # written, not flushed: as if killed now
  w._fh.flush()  # pylint: disable=protected-access
  data, rate = sf.read(path, dtype='float32')
  assert rate == 44100 and data.shape == (100, 2)
  np.testing.assert_array_equal(data.T, block)
  with pytest.raises(ValueError, match='2 channels'):
    w.write(np.ones(10, np.float32))
  w.close()
