"""Tests for alm_jax/train.py: optimiser, smoke training on the real pipeline, overfitting, NaN guard.

All training runs share one tiny config (tests/tiny_training.py), so the step
compiles once per model kind in a test session.
"""

import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from alm_jax import checkpoints
from alm_jax import optimizer
from alm_jax import train
from tiny_training import SAME_WORKER, FakeData, read_scalars, shared_data_dirs, tiny_train_config


@pytest.fixture(scope='module')
def data_dirs(tmp_path_factory):
  return shared_data_dirs(tmp_path_factory)


# ---- optimiser ---------------------------------------------------------------


def _spec(**kw):
  base = dict(learning_rate=0.1, boundaries_and_scales=(), weight_decay=0.0, freeze_steps=2,
              grad_clip_norm=0.0)
  base.update(kw)
  return optimizer.OptimizerSpec(**base)


def _run(tx, params, grads, n):
  """params after each of n updates with constant `grads`."""
  state, history = tx.init(params), []
  for _ in range(n):
    updates, state = tx.update(grads, state, params)
    params = optax.apply_updates(params, updates)
    history.append(params)
  return history


def test_embedding_frozen_then_fresh_adam():
  params = {'embedding': {'w': jnp.ones(3)}, 'mlp': {'w': jnp.ones(3)}}
  grads = {'embedding': {'w': jnp.full(3, 2.0)}, 'mlp': {'w': jnp.full(3, 2.0)}}
  history = _run(optimizer.from_spec(_spec()), params, grads, 4)
  emb = [float(p['embedding']['w'][0]) for p in history]
  mlp = [float(p['mlp']['w'][0]) for p in history]
  assert emb[:2] == [1.0, 1.0]  # frozen for the first 2 updates
  # Then Adam starts fresh (bias-corrected first step = lr): like the first update of the MLP.
  np.testing.assert_allclose(emb[2], mlp[0], rtol=1e-6)
  np.testing.assert_allclose(emb[3] - emb[2], mlp[1] - mlp[0], rtol=1e-6)
  assert mlp[0] < 1.0


def test_frozen_gradients_do_not_count_in_clipping():
  params = {'embedding': {'w': jnp.zeros(1)}, 'mlp': {'w': jnp.zeros(2)}}
  grads = {'embedding': {'w': jnp.full(1, 1e6)}, 'mlp': {'w': jnp.array([3.0, 4.0])}}
  clip = optimizer.gradient_clipping(_spec(grad_clip_norm=1.0, freeze_steps=1))
  state = clip.init(params)
  updates, state = clip.update(grads, state, params)  # frozen: norm 5 from the MLP alone
  np.testing.assert_allclose(updates['mlp']['w'], [0.6, 0.8], rtol=1e-6)
  assert float(updates['embedding']['w'][0]) == 0.0
  updates, state = clip.update(grads, state, params)  # thawed: the embedding dominates
  assert float(updates['mlp']['w'][1]) < 1e-5
  np.testing.assert_allclose(updates['embedding']['w'], [1.0], rtol=1e-6)


def test_learning_rate_schedule_in_epochs():
  config = tiny_train_config('mr', '', '')
  config.train.learning_rate = 1e-3
  config.train.lr_boundaries_epochs = (100, 1000, 2500)
  tx, schedule = optimizer.make(config.train, spe=9)
  assert tx is optimizer.make(config.train, spe=9)[0]  # cached: equal configs share one compile
  # Update k (counting from 0) uses lr(k): the decay starts with the first update of epoch 100.
  for step, lr in [(0, 1e-3), (899, 1e-3), (900, 1e-4), (8999, 1e-4), (9000, 1e-5), (22500, 1e-6)]:
    np.testing.assert_allclose(float(schedule(step)), lr, rtol=1e-6)
  spec = optimizer.OptimizerSpec.from_config(config.train, spe=9)
  assert spec.freeze_steps == config.train.freeze_embedding_epochs * 9


def test_steps_per_epoch():
  config = tiny_train_config('mr', '', '')
  config.train.steps_per_epoch = -1
  config.train.batch_size = 4
  assert train.steps_per_epoch(config, num_train_songs=lambda c: 35) == 9  # the paper: 35 songs
  config.train.steps_per_epoch = 5
  assert train.steps_per_epoch(config, num_train_songs=lambda c: 35) == 5
  config.train.steps_per_epoch = -1
  with pytest.raises(ValueError, match='no songs'):
    train.steps_per_epoch(config, num_train_songs=lambda c: 0)
  assert optimizer.steps_per_epoch(config.train, 35) == 9
  config.train.steps_per_epoch = 5  # the song count is not needed, so not asked for
  assert optimizer.steps_per_epoch(config.train, lambda: 1 / 0) == 5
  assert optimizer.total_steps(config.train, 5) == 5 * config.train.num_epochs


# ---- training ----------------------------------------------------------------


@pytest.mark.parametrize('name', [pytest.param('mr', marks=SAME_WORKER), 'sr'])
def test_smoke_train_and_resume(name, data_dirs, tmp_path):
  """Two steps on the real pipeline (synthetic_live), then a restart that continues to step 3."""
  config = tiny_train_config(name, *data_dirs)
  config.train.num_epochs = 2
  workdir = str(tmp_path / name)
  state = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 2
  assert os.path.exists(os.path.join(workdir, 'config.json'))
  scalars = read_scalars(workdir)
  assert sorted(scalars['train/loss']) == [1, 2]
  assert all(np.isfinite(v) for v in scalars['train/loss'].values())
  assert sorted(scalars['validation/loss']) == [0, 2]  # before training, and at the end
  assert all(np.isfinite(v) for v in scalars['validation/loss'].values())
  for metric in ('si_sdr_db', 'loudness_diff_lu', 'gain_change_db_per_s', 'balance_error_db',
                 'clipping_fraction'):
    assert np.isfinite(scalars[f'validation/{metric}'][2]), metric

  config.train.num_epochs = 3
  state = train.train_and_evaluate(config, workdir)
  assert int(state.step) == 3
  assert sorted(read_scalars(workdir)['train/loss']) == [1, 2, 3]  # continued, not repeated
  manager = checkpoints.open_manager(workdir, None, read_only=True)
  assert manager.all_steps() == [2, 3]  # keep_checkpoints = 2
  manager.close()


@SAME_WORKER
def test_loss_falls_when_overfitting_one_batch(tmp_path):
  config = tiny_train_config('mr', '', '')
  config.train.num_epochs = 8
  data = FakeData(same_batch=True)
  train.train_and_evaluate(config, str(tmp_path), make_train_iterator=data.make_train_iterator,
                           make_eval_batches=data.make_eval_batches)
  loss = read_scalars(str(tmp_path))['train/loss']
  first, last = loss[1], np.mean([loss[s] for s in (6, 7, 8)])
  assert last < 0.5 * first, loss


@SAME_WORKER
def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path):
  config = tiny_train_config('mr', '', '')
  config.train.log_every_steps = 100  # the check still runs at every checkpoint step
  config.train.checkpoint_every_steps = 2
  data = FakeData(poison={2})  # iterator position 2 = update 3
  workdir = str(tmp_path)
  with pytest.raises(train.NonFiniteLossError, match=r'step 3 .*last good checkpoint \(step 2\)'):
    train.train_and_evaluate(config, workdir, make_train_iterator=data.make_train_iterator,
                             make_eval_batches=data.make_eval_batches)
  _, params, step = checkpoints.restore_params(workdir)
  assert step == 2
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(params))
