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

from alm_jax.live import controls as controls_lib
from alm_jax.live import engine as engine_lib
from alm_jax.live import recorder as recorder_lib


def _digest(folder):
  return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir())
          if p.is_file()}


def _record(folder, channels, seconds=0.2):
  """A real recording of `channels` channels of noise into `folder` (engine + Recorder)."""
  eng = engine_lib.Engine(channels, 2205, controls_lib.Controls(channels))
  rec = recorder_lib.Recorder(eng, folder, [str(i + 1) for i in range(channels)],
                              flush_seconds=0.01)
  n = int(seconds * 44100) // 128 * 128
  x = np.random.default_rng(channels).standard_normal((channels, n)).astype(np.float32) * 0.1
  mix = np.zeros(128, np.float32)
  for a in range(0, n, 128):
    eng.process(list(x[:, a:a + 128]), mix)
  rec.start()
  rec.stop()
  rec.join(10)
  return x


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
