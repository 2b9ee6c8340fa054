"""`python -m alm_jax.live` as a user runs it: takes, refused flags, no JACK server, info.json.

Each case runs the program as its own process (no JACK: --no_jack, or no
server at all) on a tiny checkpoint and a 1 s song, and checks what the user
sees: the exit code, one `error:` line naming the fix, the files written.
"""

import hashlib
import json
import os
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from alm_jax.live import recorder as recorder_lib

from checkpoint_fixtures import TinyModel, save_checkpoint
import live_helpers
import optional

C = 8
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  base = tmp_path_factory.mktemp('live_main')
  tm = TinyModel('mr', max_channels=32)
  save_checkpoint(base / 'ckpt', tm.config, tm.params)
  tm.ckpt = base / 'ckpt'
  tm.song = base / 'song'
  tm.song.mkdir()
  audio = live_helpers.song(C, 1.0, seed=3)
  for ch in range(C):
    sf.write(tm.song / f'ch{ch + 1:02d}.wav', audio[ch], 44100, subtype='FLOAT')
  tm.base = base
  return tm


def _live(setup, *args, timeout=300, env=None):
  cmd = [sys.executable, '-m', 'alm_jax.live', f'--checkpoint={setup.ckpt}', '--osc_port=0',
         '--ui=off', *args]
  t0 = time.monotonic()
  proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=timeout,
                        env=dict(os.environ, **(env or {})))
  proc.seconds = time.monotonic() - t0
  return proc


def _digest(folder):
  return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.iterdir()}


def test_record_twice_makes_two_takes_and_keeps_the_first(setup, tmp_path):
  show = tmp_path / 'show'
  common = [f'--play={setup.song}', '--no_jack', f'--record={show}', '--play_delay=0']
  first = _live(setup, *common)
  assert first.returncode == 0, first.stdout + first.stderr
  take1 = show / 'take-001'
  assert f'recorded to {take1}' in first.stdout, first.stdout
  info = json.loads((take1 / 'info.json').read_text())
  assert info['stats']['jack_connected'] is False  # --no_jack: no JACK client at all (#31)
  assert info['stats']['driver'] == 'no JACK (--no_jack)'
  before = _digest(take1)
  second = _live(setup, *common, '--channels=4')
  assert second.returncode == 0, second.stdout + second.stderr
  take2 = show / 'take-002'
  assert sorted(p.name for p in take2.glob('in_*.wav')) == [f'in_{i:02d}.wav' for i in range(1, 5)]
  assert _digest(take1) == before
  # --overwrite: only a folder holding one recording; a folder of takes is refused in one line.
  third = _live(setup, *common, '--overwrite')
  assert third.returncode != 0
  lines = [l for l in third.stderr.splitlines() if l.startswith('error:')]
  assert len(lines) == 1 and '--overwrite' in lines[0] and 'take-001' in lines[0], third.stderr
  assert 'Traceback' not in third.stderr
  assert _digest(take1) == before


@pytest.mark.parametrize('flag,words', [
    ('--ceiling_db=nan', ['--ceiling_db=nan', 'finite']),
    ('--master_db=inf', ['--master_db=inf', 'finite']),
    ('--osc_port=70000', ['--osc_port=70000', '65535']),
    ('--output=1,2,3', ['--output', '3 ports', 'left, right', '--output=1,2', '--channel_outputs']),
    ('--output=front', ['--output=front', 'port numbers', 'system:playback_1']),
])
def test_a_bad_flag_is_a_clear_error_before_anything_starts(setup, tmp_path, flag, words):
  proc = _live(setup, f'--play={setup.song}', '--no_jack', f'--record={tmp_path / "show"}', flag,
               timeout=120)
  assert proc.returncode == 1, proc.stdout + proc.stderr
  assert 'Traceback' not in proc.stderr
  line = [l for l in proc.stderr.splitlines() if 'Flags parsing error' in l]
  assert len(line) == 1 and all(w in line[0] for w in words), proc.stderr
  assert not (tmp_path / 'show').exists()  # refused before anything was made


def test_play_without_a_jack_server_says_so_at_once(setup):
  jack = optional.import_or_skip('jack', 'apt-get install jackd2')
  del jack
  server = f'alm_no_server_{os.getpid()}'  # no jackd of this name runs
  proc = _live(setup, f'--play={setup.song}', f'--server={server}', timeout=120,
               env={'JACK_NO_START_SERVER': '1'})
  print(f'exit after {proc.seconds:.1f} s (the interpreter and JAX imports included)')
  assert proc.returncode == 1, proc.stdout + proc.stderr
  assert 'Traceback' not in proc.stderr and 'AttributeError' not in proc.stderr
  errors = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1, proc.stderr
  for words in (server, 'jackd -d dummy', 'jackd -d alsa', '--no_jack'):
    assert words in errors[0], errors[0]
  # Checked before the checkpoint is read and the step compiled (the old path waited 30 s).
  assert 'Recording' not in proc.stderr and proc.seconds < 60


def test_two_outputs_make_a_stereo_show_of_a_mono_model(setup, tmp_path):
  """--output=1,2 with a mono model (--no_jack: no ports, the recording shows it): a 2-channel
  mix.wav whose sides are both the mono mix at the centre (-3 dB), pans.csv all centre."""
  show = tmp_path / 'show'
  proc = _live(setup, f'--play={setup.song}', '--no_jack', f'--record={show}', '--play_delay=0',
               '--output=1,2', '--limit_db=off')
  assert proc.returncode == 0, proc.stdout + proc.stderr
  take = show / 'take-001'
  mix, rate = sf.read(take / 'mix.wav', dtype='float32')
  assert rate == 44100 and mix.ndim == 2 and mix.shape[1] == 2
  assert np.abs(mix).max() > 1e-3
  np.testing.assert_allclose(mix[:, 0], mix[:, 1], rtol=1e-6, atol=1e-9)
  _, _, pans = recorder_lib.read_pans_csv(take / 'pans.csv')
  assert pans.shape[0] > 10 and not pans.any()
  info = json.loads((take / 'info.json').read_text())
  assert info['mix'] == 'stereo' and info['model_pans'] is False


def test_a_period_longer_than_an_f2_frame_is_refused_before_anything_starts(setup, tmp_path):
  """--no_jack --period=4096 with a 2205-sample F2 frame: a period may cross one frame boundary
  at most (the callbacks mix it in two parts), so it is one error: line, before any take."""
  show = tmp_path / 'show'
  proc = _live(setup, f'--play={setup.song}', '--no_jack', f'--record={show}', '--period=4096',
               timeout=120)
  assert proc.returncode == 1, proc.stdout + proc.stderr
  errors = [l for l in proc.stderr.splitlines() if l.startswith('error:')]
  assert len(errors) == 1 and 'Traceback' not in proc.stderr, proc.stderr
  for words in ('--period=4096', '2205', '--period=2205 or less'):
    assert words in errors[0], errors[0]
  assert not show.exists()
