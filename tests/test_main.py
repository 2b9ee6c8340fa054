"""Tests for alm_jax/main.py: the command line, on configs/quickstart.py with tiny overrides."""

import json
import os
import subprocess
import sys

from absl import flags
import numpy as np
import pytest

from alm_jax import checkpoints
from alm_jax import main
from conftest import REPO, load_config
from tiny_training import SAME_WORKER, shared_data_dirs, tiny_train_config


@pytest.fixture(scope='module')
def data_dirs(tmp_path_factory):
  return shared_data_dirs(tmp_path_factory)


def _leaves(d, prefix='config.'):
  for k, v in d.items():
    if isinstance(v, dict):
      yield from _leaves(v, f'{prefix}{k}.')
    else:
      yield f'{prefix}{k}', v


def _override_flags(base, wanted):
  """--config.a.b=value for every leaf where `wanted` differs from `base` (ml_collections syntax)."""
  old = dict(_leaves(json.loads(base.to_json())))
  out = []
  for key, value in _leaves(json.loads(wanted.to_json())):
    if old.get(key) != value:
      if isinstance(value, list):
        value = '(' + ','.join(repr(v) for v in value) + (',)' if len(value) == 1 else ')')
      out.append(f'--{key}={value}')
  return out


def _main(argv, config_updates):
  """main.main() in-process, so it shares the compiled step with the other training tests.

  ml_collections registers the --config.* override flags from sys.argv when the
  flag is defined (at import), so in-process the overrides are applied to the
  parsed config instead; test_config_overrides_on_the_command_line checks them.
  """
  flags.FLAGS.unparse_flags()
  try:
    flags.FLAGS(['alm_jax.main'] + argv)
    flags.FLAGS.config.update(config_updates)
    main.main(['alm_jax.main'])
  finally:
    flags.FLAGS.unparse_flags()


@SAME_WORKER
def test_quickstart_trains_then_evaluates(data_dirs, tmp_path, capsys):
  wanted = tiny_train_config('quickstart', *data_dirs)
  wanted.train.num_epochs = 2
  workdir = str(tmp_path / 'qs')
  argv = [f'--config={REPO / "configs" / "quickstart.py"}', f'--workdir={workdir}']
  _main(argv, wanted)
  saved = checkpoints.load_config(workdir)
  assert saved.model.d_model == wanted.model.d_model == 16
  assert saved.data.name == 'synthetic_live/tiny'
  assert os.path.isdir(os.path.join(workdir, 'checkpoints', '2'))

  capsys.readouterr()
  _main(argv + ['--mode=eval'], wanted)
  out = capsys.readouterr().out
  assert 'validation at step 2: ' in out and 'loss=' in out and 'si_sdr_db=' in out, out
  assert os.listdir(os.path.join(workdir, 'eval'))  # TensorBoard events of the evaluation


def test_config_overrides_on_the_command_line(tmp_path):
  """The documented --config.a.b=value overrides reach the config (parsing only, no training)."""
  wanted = tiny_train_config('quickstart', str(tmp_path / 'tfds'), str(tmp_path / 'bank'))
  overrides = _override_flags(load_config('quickstart'), wanted)
  argv = ['alm_jax.main', f'--config={REPO / "configs" / "quickstart.py"}',
          f'--workdir={tmp_path}', '--mode=eval'] + overrides
  code = ('import sys; from absl import flags; from alm_jax import main; '
          'flags.FLAGS(sys.argv); print(flags.FLAGS.config.to_json())')
  proc = subprocess.run([sys.executable, '-c', code] + argv[1:], cwd=str(REPO), capture_output=True,
                        text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert json.loads(proc.stdout) == json.loads(wanted.to_json())


@pytest.mark.parametrize('env,expected', [
    ({}, False),
    ({'SLURM_NTASKS': '1'}, False),
    ({'SLURM_NTASKS': '4'}, True),
    ({'OMPI_COMM_WORLD_SIZE': '2'}, True),
    ({'JAX_COORDINATOR_ADDRESS': '10.0.0.1:1234'}, True),
    ({'TPU_WORKER_HOSTNAMES': 'localhost'}, False),
    ({'TPU_WORKER_HOSTNAMES': 't1-w-0,t1-w-1'}, True),
])
def test_multiprocess_detection(env, expected):
  assert main.multiprocess_requested(env) is expected


@pytest.mark.parametrize('index, prepare_fails, process0_failed', [
    (0, False, 0), (1, False, 0), (0, True, 1), (1, False, 1)])
def test_only_process_0_prepares_the_data(monkeypatch, index, prepare_fails, process0_failed):
  """With several processes, process 0 builds the data and the others wait at the barrier."""
  import jax  # pylint: disable=g-import-not-at-top
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  from alm_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  calls = []

  def prepare(config, workdir):
    calls.append(('prepare', workdir))
    if prepare_fails:
      raise FileNotFoundError('no MedleyDB here')

  def broadcast(x):  # what process 0 sent, as the collective returns it everywhere
    calls.append(('barrier', int(x)))
    return np.int32(int(x) if index == 0 else process0_failed)

  monkeypatch.setattr(pipeline, 'prepare', prepare)
  monkeypatch.setattr(multihost_utils, 'broadcast_one_to_all', broadcast)
  monkeypatch.setattr(jax, 'process_index', lambda: index)
  monkeypatch.setattr(jax, 'process_count', lambda: 2)
  if prepare_fails:
    with pytest.raises(FileNotFoundError, match='no MedleyDB'):
      main.prepare_data_once(None, '/w')
  elif index == 1 and process0_failed:
    with pytest.raises(RuntimeError, match='Process 0 failed'):
      main.prepare_data_once(None, '/w')
  else:
    main.prepare_data_once(None, '/w')
  # Process 0 prepares, then joins the barrier (even when it failed); the others only wait.
  assert calls == ([('prepare', '/w')] if index == 0 else []) + [('barrier', int(prepare_fails))]
  calls.clear()
  monkeypatch.setattr(jax, 'process_count', lambda: 1)
  main.prepare_data_once(None, '/w')
  assert not calls  # one process: the pipeline prepares on first use, as before


def test_missing_flags_are_a_usage_error():
  from absl import app  # pylint: disable=g-import-not-at-top
  flags.FLAGS.unparse_flags()
  try:
    flags.FLAGS(['alm_jax.main'])
    with pytest.raises(app.UsageError, match='--config'):
      main.main(['alm_jax.main'])
  finally:
    flags.FLAGS.unparse_flags()


def test_missing_medleydb_is_a_clear_error_not_a_traceback(tmp_path):
  """The paper's main command without MedleyDB prepared: the fix in one message."""
  config_updates = {'data': {'data_dir': str(tmp_path / 'tfds'), 'manual_dir': ''}}
  with pytest.raises(SystemExit, match='MedleyDB is not prepared.*config.data.manual_dir'):
    _main([f'--config={REPO / "configs" / "mr.py"}', f'--workdir={tmp_path / "run"}'],
          config_updates)
  assert not (tmp_path / 'run' / 'checkpoints').exists()
