"""alm_jax/cli.py: quiet consoles, --help of a tool's own flags, the fd-level filter of C++ banners."""

import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from alm_jax import cli
from checkpoint_fixtures import TinyModel, save_checkpoint

REPO = pathlib.Path(__file__).resolve().parents[1]
SR = 44100


def _command(module, *args, timeout=300):
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=str(REPO))
  return subprocess.run([sys.executable, '-m', module, *args], cwd=REPO, env=env,
                        capture_output=True, text=True, timeout=timeout, check=False)


@pytest.mark.parametrize('module, first', [
    ('alm_jax.mix', '--checkpoint'), ('alm_jax.export', '--checkpoint'),
    ('alm_jax.live', '--checkpoint'),
    pytest.param('alm_jax.evaluate', '--checkpoints', marks=pytest.mark.slow)])
def test_help_lists_the_tools_own_flags_and_exits_0(module, first):
  proc = _command(module, '--help')
  assert proc.returncode == 0, proc.stderr[-3000:]
  flags = re.findall(r'^  (--\S+?):', proc.stdout, re.M)
  assert flags and flags[0] == first, proc.stdout[:3000]
  assert '--output' in flags or '--output' in proc.stdout
  assert '--jax_' not in proc.stdout and '--xla_' not in proc.stdout  # the libraries' flags: --helpfull
  assert f'python -m {module.removesuffix(".__main__")}' in proc.stdout  # the module docstring


def test_filtered_stderr_drops_cpp_info_lines_and_keeps_the_rest():
  read, write = os.pipe()
  saved = os.dup(2)
  os.dup2(write, 2)
  try:
    with cli.filtered_stderr():
      os.write(2, b'WARNING: All log messages before absl::InitializeLog() is called are written '
                  b'to STDERR\n')
      os.write(2, b'I0000 00:00:1796530494.741608    5015 port.cc:153] oneDNN custom operations '
                  b'are on.\n')
      os.write(2, b'E0000 00:00:1796530494.741608    5015 x.cc:1] a real error\n')
      os.write(2, b'a line of its own\n')
  finally:
    os.dup2(saved, 2)
    os.close(saved)
    os.close(write)
  with os.fdopen(read, 'rb') as fh:
    text = fh.read().decode()
  assert text == 'E0000 00:00:1796530494.741608    5015 x.cc:1] a real error\na line of its own\n'


def test_console_filter_keeps_alm_jax_and_warnings_drops_library_chatter():
  import logging  # pylint: disable=g-import-not-at-top

  def record(path, level):
    return logging.LogRecord('x', level, path, 1, 'message', None, None)

  f = cli.ConsoleFilter()
  assert f.filter(record('/x/alm_jax/mix.py', logging.INFO))
  assert not f.filter(record('/site-packages/orbax/checkpoint/x.py', logging.WARNING))
  assert f.filter(record('/site-packages/orbax/checkpoint/x.py', logging.ERROR))
  assert not f.filter(record('/site-packages/jax/_src/xla_bridge.py', logging.INFO))
  assert f.filter(record('/site-packages/jax/_src/xla_bridge.py', logging.WARNING))


@pytest.fixture(scope='module')
def tiny_song(tmp_path_factory):
  root = tmp_path_factory.mktemp('cli')
  tiny = TinyModel('mr')
  save_checkpoint(root / 'run', tiny.config, tiny.params)
  t = np.arange(SR) / SR
  (root / 'song').mkdir()
  for name, hz in (('bass', 110.0), ('keys', 220.0)):  # 0.7 each: their plain sum peaks near 1.4
    sf.write(root / 'song' / f'{name}.wav', (0.7 * np.sin(2 * np.pi * hz * t)).astype(np.float32),
             SR, subtype='FLOAT')
  return root


def _mix_args(tiny_song):
  return (f'--checkpoint={tiny_song / "run"}', f'--input={tiny_song / "song"}', '--raw')


def test_mix_prints_its_own_lines(tiny_song):
  args = _mix_args(tiny_song)
  quiet = _command('alm_jax.mix', *args, f'--output={tiny_song / "quiet"}')
  assert quiet.returncode == 0, quiet.stderr[-3000:]
  lines = [l for l in re.split(r'[\r\n]+', quiet.stderr) if l.strip()]
  own = [l for l in lines if '%|' not in l]  # the progress bar's redraws aside
  assert any(l.startswith('Restored ') for l in own), quiet.stderr
  assert not [l for l in own if re.match(r'[IWE]\d{4} ', l) or 'orbax' in l], quiet.stderr
  # The plain sum peaks above full scale: warned, as mix.wav is.
  assert any(l.startswith('WARNING: ') and 'raw sum peaks' in l for l in own), quiet.stderr
  assert len(own) <= 6, quiet.stderr


@pytest.mark.slow
def test_verbosity_brings_the_libraries_back(tiny_song):
  loud = _command('alm_jax.mix', *_mix_args(tiny_song), f'--output={tiny_song / "loud"}',
                  '--verbosity=0')
  assert loud.returncode == 0, loud.stderr[-3000:]
  assert 'orbax' in loud.stderr or 'checkpoint_manager' in loud.stderr, loud.stderr[-3000:]
