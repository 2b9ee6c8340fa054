"""Tests for alm_jax/checkpoints.py: exact resume, the resume order, restore_params and its errors."""

import json
import os
import shutil

import jax
import numpy as np
import pytest

from alm_jax import checkpoints
from alm_jax import config_checks
from alm_jax import models
from alm_jax import restore
from alm_jax import train
from alm_jax import validation
from tiny_training import SAME_WORKER, FakeData, shared_data_dirs, tiny_train_config

pytestmark = SAME_WORKER


@pytest.fixture(scope='module')
def data_dirs(tmp_path_factory):
  return shared_data_dirs(tmp_path_factory)


@pytest.fixture(scope='module')
def runs(data_dirs, tmp_path_factory):
  """ALM-MR on the real pipeline: 4 steps straight, and 2 steps + restart + 2 steps."""
  root = tmp_path_factory.mktemp('resume')
  config = tiny_train_config('mr', *data_dirs)
  config.train.checkpoint_every_steps = 2
  straight, split = str(root / 'straight'), str(root / 'split')
  config.train.num_epochs = 4
  final_straight = train.train_and_evaluate(config, straight)
  config.train.num_epochs = 2
  train.train_and_evaluate(config, split)
  config.train.num_epochs = 4
  final_split = train.train_and_evaluate(config, split)
  return config, straight, split, final_straight, final_split


def _max_abs_diff(a, b):
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def test_resumed_run_equals_straight_run(runs):
  _, _, _, straight, split = runs
  assert int(straight.step) == int(split.step) == 4
  assert _max_abs_diff(straight.params, split.params) <= 1e-6
  assert _max_abs_diff(straight.opt_state, split.opt_state) <= 1e-6


def test_restore_params_from_workdir_and_step_dir(runs):
  config, straight, _, final, _ = runs
  saved_config, params, step = restore.restore_params(straight)
  assert step == 4
  assert saved_config.model.d_model == config.model.d_model
  assert _max_abs_diff(params, final.params) == 0.0
  _, params2, step2 = restore.restore_params(os.path.join(straight, 'checkpoints', '2'))
  assert step2 == 2 and _max_abs_diff(params2, params) > 0.0
  # With a config to check against.
  restore.restore_params(straight, config)
  other = tiny_train_config('mr', '', '')
  other.model.gru_hidden = 24
  with pytest.raises(ValueError, match=r'model.gru_hidden: 16 -> 24'):
    restore.restore_params(straight, other)


def test_restore_params_errors(runs, tmp_path):
  _, straight, _, _, _ = runs
  with pytest.raises(FileNotFoundError, match='No checkpoint at'):
    restore.restore_params(str(tmp_path / 'nowhere'))
  with pytest.raises(FileNotFoundError, match='No step 3 checkpoint'):
    restore.restore_params(os.path.join(straight, 'checkpoints', '3'))
  # A config.json that does not describe the saved parameters.
  broken = tmp_path / 'broken'
  shutil.copytree(straight, broken)
  saved = json.loads((broken / 'config.json').read_text())
  saved['model']['gru_hidden'] = 24
  (broken / 'config.json').write_text(json.dumps(saved))
  with pytest.raises(ValueError, match=r'does not match the model of the config: .* has shape \('):
    restore.restore_params(str(broken))


def test_restart_with_a_different_model_is_refused(runs):
  config, straight, _, _, _ = runs
  changed = config.copy_and_resolve_references()
  changed.model.d_model = 32
  with pytest.raises(ValueError, match=r'model.d_model: 16 -> 32.*fresh --workdir'):
    train.train_and_evaluate(changed, straight)
  # The weights path only matters for a fresh start: not a model change.
  assert config_checks.model_differences(
      config.model, {**config.model.to_dict(), 'embedding': {
          **config.model.embedding.to_dict(), 'weights': '/elsewhere.ckpt'}},
      ignore=models.INIT_ONLY_KEYS) == []


def test_resume_order_checkpoint_then_pretrained_weights(tmp_path, monkeypatch):
  """A fresh run loads config.model.embedding.weights; a restart takes the checkpoint instead."""
  from alm_jax.embeddings import vggish_weights  # pylint: disable=g-import-not-at-top
  calls = []

  def fake_load(params, embedding_config):
    calls.append(embedding_config.weights)
    return {**params, 'embedding': jax.tree.map(lambda x: np.full(x.shape, 0.5, x.dtype),
                                                params['embedding'])}

  monkeypatch.setattr(vggish_weights, 'load_pretrained_embedding', fake_load)
  config = tiny_train_config('mr', '', '')
  config.model.embedding.weights = '/pretrained/vggish_model.ckpt'
  config.train.num_epochs = 1  # one step, inside the frozen epoch
  data = FakeData()
  kw = dict(make_train_iterator=data.make_train_iterator, make_eval_batches=data.make_eval_batches)
  state = train.train_and_evaluate(config, str(tmp_path), **kw)
  assert calls == ['/pretrained/vggish_model.ckpt']
  assert all(np.all(np.asarray(x) == 0.5) for x in jax.tree.leaves(state.params['embedding']))
  config.train.num_epochs = 2
  state = train.train_and_evaluate(config, str(tmp_path), **kw)
  assert calls == ['/pretrained/vggish_model.ckpt']  # resumed from the checkpoint, not reloaded
  assert int(state.step) == 2


def test_workdir_urls_are_not_made_local():
  """gs:// workdirs keep their scheme (os.path.abspath made them '<cwd>/gs:/...')."""
  assert str(checkpoints.checkpoint_dir('gs://bucket/runs/mr')) == 'gs://bucket/runs/mr/checkpoints'
  assert str(checkpoints.config_path('gs://bucket/runs/mr')) == 'gs://bucket/runs/mr/config.json'
  workdir, step = checkpoints.locate('gs://bucket/runs/mr/checkpoints/12')
  assert (str(workdir), step) == ('gs://bucket/runs/mr', 12)
  workdir, step = checkpoints.locate('gs://bucket/runs/mr/checkpoints')
  assert (str(workdir), step) == ('gs://bucket/runs/mr', None)
  # Local paths, relative or with '~', still become absolute.
  assert str(checkpoints.checkpoint_dir('run')) == os.path.join(os.getcwd(), 'run', 'checkpoints')
  assert str(checkpoints.config_path('~/run')) == os.path.expanduser('~/run/config.json')


def test_workdir_as_an_epath_object(tmp_path):
  """The whole workdir cycle (config.json, checkpoints, events, restore, eval) through epath.Path."""
  from etils import epath  # pylint: disable=g-import-not-at-top
  config = tiny_train_config('mr', '', '')
  config.train.num_epochs = 1
  data = FakeData()
  workdir = epath.Path(tmp_path) / 'run'
  state = train.train_and_evaluate(config, workdir, make_train_iterator=data.make_train_iterator,
                                   make_eval_batches=data.make_eval_batches)
  assert (workdir / 'config.json').exists() and (workdir / 'checkpoints' / '1').is_dir()
  assert list(workdir.glob('events.out.tfevents.*'))
  saved, params, step = restore.restore_params(workdir / 'checkpoints' / '1')
  assert step == 1 and saved.model.d_model == config.model.d_model
  assert _max_abs_diff(params, state.params) == 0.0
  assert checkpoints.load_config(workdir).data.name == config.data.name
  results = validation.evaluate_checkpoint(config, workdir, make_eval_batches=data.make_eval_batches)
  assert results['step'] == 1 and np.isfinite(results['loss'])
  assert list((workdir / 'eval').glob('events.out.tfevents.*'))


# ---- kill -9 during a step and during a save, then the same command again ---

_KILL_RUN = r'''
import os, signal, sys
sys.path.insert(0, {tests!r})
import conftest  # the tests' PRNG setting
from alm_jax import checkpoints, sharding, train
from tiny_training import FakeData, tiny_train_config
config = tiny_train_config('mr', '', '')
config.train.num_epochs = 5
config.train.checkpoint_every_steps = 2
kill_step, during = {kill_step!r}, {during!r}
calls = [0]
if during == 'step':  # SIGKILL with update `kill_step` dispatched (async) and running
  original_inputs = sharding.model_inputs
  def model_inputs(batch, mesh):
    calls[0] += 1
    if calls[0] == kill_step + 1:
      os.kill(os.getpid(), signal.SIGKILL)
    return original_inputs(batch, mesh)
  sharding.model_inputs = model_inputs
elif during == 'save':  # SIGKILL while the background save of `kill_step` writes its files
  original_save = checkpoints.save_state
  def save_state(manager, step, state):
    original_save(manager, step, state)
    if step == kill_step:
      os.kill(os.getpid(), signal.SIGKILL)
  checkpoints.save_state = save_state
data = FakeData()
train.train_and_evaluate(config, {workdir!r}, make_train_iterator=data.make_train_iterator,
                         make_eval_batches=data.make_eval_batches)
'''


def _train_subprocess(workdir, kill_step=None, during=None):
  import signal  # pylint: disable=g-import-not-at-top
  import subprocess  # pylint: disable=g-import-not-at-top
  import sys  # pylint: disable=g-import-not-at-top
  tests = os.path.dirname(os.path.abspath(__file__))
  code = _KILL_RUN.format(tests=tests, kill_step=kill_step, during=during, workdir=str(workdir))
  result = subprocess.run([sys.executable, '-c', code], capture_output=True, text=True, timeout=900,
                          cwd=os.path.dirname(tests))
  expected = -signal.SIGKILL if during else 0
  assert result.returncode == expected, result.stderr[-3000:]


@pytest.mark.slow
@pytest.mark.parametrize('during,kill_step', [('step', 3), ('save', 4)])
def test_kill_9_then_resume_gives_bit_identical_parameters(during, kill_step, tmp_path):
  """kill -9 mid-step or mid-save, then the same command again: the parameters of an unbroken run."""
  straight, killed = tmp_path / 'straight', tmp_path / 'killed'
  _train_subprocess(straight)
  _train_subprocess(killed, kill_step, during)
  if during == 'save':  # the half-written save never became a step
    manager = checkpoints.open_manager(killed, None, read_only=True)
    assert 4 not in manager.all_steps()
    manager.close()
  _train_subprocess(killed)
  _, a, step_a = restore.restore_params(straight)
  _, b, step_b = restore.restore_params(killed)
  assert step_a == step_b == 5
  assert _max_abs_diff(a, b) == 0.0
