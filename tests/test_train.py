"""Tests for alm_jax/train.py: optimiser, smoke training on the real pipeline, overfitting, NaN guard.

All training runs share one tiny config (tests/tiny_training.py), so the step
compiles once per model kind in a test session.
"""

import os

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from alm_jax import checkpoints
from alm_jax import frames
from alm_jax import gradients
from alm_jax import losses
from alm_jax import optimizer
from alm_jax import restore
from alm_jax import train
from alm_jax.models import build_model
from alm_jax.models import init_params
from checkpoint_fixtures import TinyModel, save_checkpoint
from tiny_training import (SAME_WORKER, FakeData, fake_batch, read_scalars, shared_data_dirs,
                           tiny_train_config)


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


def test_lr_scales_speed_up_one_subtree_only():
  config = tiny_train_config('mr', '', '')
  config.train.freeze_embedding_epochs = 0
  config.train.grad_clip_norm = 0.0
  config.train.weight_decay = 0.0
  params = {'pan_mlp': {'w': jnp.ones(2)}, 'mlp': {'w': jnp.ones(2)}}
  grads = {'pan_mlp': {'w': jnp.full(2, 0.5)}, 'mlp': {'w': jnp.full(2, 0.5)}}
  plain, _ = optimizer.make(config.train, spe=9)
  config.train.lr_scales = (('pan_mlp', 10.0),)
  scaled, _ = optimizer.make(config.train, spe=9)
  base, _ = plain.update(grads, plain.init(params), params)
  up, _ = scaled.update(grads, scaled.init(params), params)
  np.testing.assert_allclose(up['pan_mlp']['w'], 10.0 * base['pan_mlp']['w'], rtol=1e-6)
  np.testing.assert_allclose(up['mlp']['w'], base['mlp']['w'], rtol=1e-6)
  config.train.lr_scales = (('pan_head', 10.0),)
  misspelt, _ = optimizer.make(config.train, spe=9)
  with pytest.raises(ValueError, match=r"names \['pan_head'\], which are not top-level"):
    misspelt.update(grads, misspelt.init(params), params)


def test_steps_per_epoch():
  config = tiny_train_config('mr', '', '')
  config.train.steps_per_epoch = -1
  config.train.batch_size = 4
  assert optimizer.steps_per_epoch(config.train, lambda: 35) == 9  # the paper: 35 songs
  config.train.steps_per_epoch = 5
  assert optimizer.steps_per_epoch(config.train, lambda: 35) == 5
  config.train.steps_per_epoch = -1
  with pytest.raises(ValueError, match='no songs'):
    optimizer.steps_per_epoch(config.train, lambda: 0)
  assert optimizer.steps_per_epoch(config.train, 35) == 9
  config.train.steps_per_epoch = 5  # the song count is not needed, so not asked for
  assert optimizer.steps_per_epoch(config.train, lambda: 1 / 0) == 5
  assert optimizer.total_steps(config.train, 5) == 5 * config.train.num_epochs


# ---- training ----------------------------------------------------------------


# SR runs the same loop on its own framing (slow): the default run trains and resumes MR.
@pytest.mark.parametrize('name', [pytest.param('mr', marks=SAME_WORKER),
                                  pytest.param('sr', marks=pytest.mark.slow)])
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
  _, params, step = restore.restore_params(workdir)
  assert step == 2
  assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(params))


def _levelled(batch):
  """fake_batch with its active channels 12 dB apart: the ideal gains undo the levels."""
  batch = dict(batch)
  mask = batch['channel_mask']
  levels = np.where(mask, 4.0 ** np.arange(mask.shape[1]), 1.0).astype(np.float32)  # [b, c]
  batch['audio'] = batch['audio'] * levels[..., None]
  batch['ideal_gains'] = np.where(mask, 0.5 / levels, np.nan).astype(np.float32)
  batch['target'] = np.einsum('bcs,bc->bs', batch['audio'],
                              np.where(mask, batch['ideal_gains'], 0.0)).astype(np.float32)
  return batch


def _gain_terms(config, params, batch):
  """(balance, gain change) of the applied gains on `batch`, as the loss takes them."""
  out = build_model(config).apply({'params': params}, batch['audio'], batch['channel_mask'],
                                  train=False)
  predicted = out['gains'][..., 1:]
  return (float(np.mean(losses.balance_loss(predicted, batch['ideal_gains'],
                                            batch['channel_mask']))),
          float(np.mean(losses.gain_change_loss(predicted, batch['channel_mask']))))


@SAME_WORKER
@pytest.mark.slow  # 25 training steps each (about 40 s): the suite's 10 minutes do not hold them
@pytest.mark.parametrize('term', [0, 1], ids=['balance_weight', 'gain_change_weight'])
def test_gain_terms_alone_train_the_gains(term, tmp_path):
  """Each of the loss's gain terms reaches the update: alone (MR-STFT off), it lowers itself."""
  config = tiny_train_config('mr', '', '')
  config.train.checkpoint_every_steps = 1000  # only each run's last step: 25 saves cost seconds
  config.loss.w_sc = config.loss.w_log_mag = 0.0  # MR-STFT off: only the term is left
  setattr(config.loss, ('balance_weight', 'gain_change_weight')[term], 1.0)
  data = FakeData(same_batch=True)

  def levelled(config, **kwargs):
    for batch in data.make_train_iterator(config, **kwargs):
      yield _levelled(batch)

  kwargs = dict(make_train_iterator=levelled, make_eval_batches=data.make_eval_batches)
  batch = _levelled(fake_batch(config, 0))
  config.train.num_epochs = 1
  state = train.train_and_evaluate(config, str(tmp_path), **kwargs)
  first = _gain_terms(config, state.params, batch)
  config.train.num_epochs = 25
  state = train.train_and_evaluate(config, str(tmp_path), **kwargs)
  last = _gain_terms(config, state.params, batch)
  assert last[term] < 0.5 * first[term], (first, last)


def test_balance_term_refuses_data_without_mixing_gains(tmp_path):
  config = tiny_train_config('mr', '', '')
  config.loss.balance_weight = 0.1
  data = FakeData()

  def no_gains(config, **kwargs):
    for batch in data.make_train_iterator(config, **kwargs):
      yield {k: v for k, v in batch.items() if k != 'ideal_gains'}

  with pytest.raises(ValueError, match=r'balance_weight=0.1 needs a dataset with known mixing'):
    train.train_and_evaluate(config, str(tmp_path), make_train_iterator=no_gains,
                             make_eval_batches=data.make_eval_batches)
  assert not list(tmp_path.glob('checkpoints/*'))  # refused before any step


# ---- frozen phase, micro-batches, rematerialisation ---------------------------


@pytest.fixture(scope='module')
def grad_case():
  """The tiny ALM-MR on a fake batch of 4 (one padding example), and today's loss and gradients."""
  config = tiny_train_config('mr', '', '')
  config.model.max_channels = 3
  config.data.segment_seconds = 1.2
  config.train.batch_size = 4
  model = build_model(config)
  params = init_params(jax.random.key(0), model)
  loss_spec = losses.MRSTFTSpec.from_config(config.loss)
  batch = {k: v for k, v in fake_batch(config, 0).items()
           if k in ('audio', 'channel_mask', 'target')}
  batch['example_mask'] = np.array([True, True, False, True])
  key = jax.random.key(1)

  def example_losses(p, micro, rng):
    out = model.apply({'params': p}, micro['audio'], micro['channel_mask'], train=True,
                      rngs={'dropout': rng})
    return losses.mix_loss(out['mix'], micro['target'], loss_spec)

  def before(p, b):  # the step's loss as it was before alm_jax.gradients
    return losses.masked_mean(example_losses(p, b, key), b['example_mask'])

  loss, grads = jax.jit(jax.value_and_grad(before)).lower(params, batch).compile(_FAST)(
      params, batch)
  return example_losses, params, batch, key, loss, grads


# Compile-bound tests: XLA's backend optimisations cost more time than they save here.
_FAST = {'xla_backend_optimization_level': 0}


def _flops(lowered_or_compiled):
  ca = lowered_or_compiled.cost_analysis()
  return float((ca[0] if isinstance(ca, (list, tuple)) else ca)['flops'])


def _lowered_grads(case, **options):
  example_losses, params, batch, key = case[:4]
  fn = lambda p, b: gradients.loss_and_grads(example_losses, p, b, key, **options)
  return jax.jit(fn).lower(params, batch)


def _compiled_grads(case, **options):
  return _lowered_grads(case, **options).compile(_FAST)(*case[1:3])


def _assert_close(a, b):
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=2e-5,
                               atol=2e-6 * float(np.max(np.abs(np.asarray(y)))) + 1e-12)


def test_frozen_step_does_not_differentiate_the_embedding(grad_case):
  """Same loss and non-embedding gradients as the full step; no backward pass through the embedding."""
  _, params, _, _, loss, grads = grad_case
  frozen_loss, frozen_grads = _compiled_grads(grad_case, frozen=True)
  np.testing.assert_allclose(float(frozen_loss), float(loss), rtol=1e-6)
  rest = lambda t: {k: v for k, v in t.items() if k != optimizer.EMBEDDING_KEY}
  _assert_close(rest(frozen_grads), rest(grads))
  assert all(not np.any(np.asarray(g)) for g in jax.tree.leaves(frozen_grads['embedding']))
  assert any(np.any(np.asarray(g)) for g in jax.tree.leaves(grads['embedding']))
  # The embedding's backward (at least its weight gradients: as many FLOPs as its forward) is
  # gone: XLA's count of the programs as traced, before optimisation.
  full_flops = _flops(_lowered_grads(grad_case))
  frozen_flops = _flops(_lowered_grads(grad_case, frozen=True))
  emb_fwd = _embedding_forward_flops(params['embedding'], _embedding_patches(grad_case))
  assert full_flops - frozen_flops >= 0.9 * emb_fwd, (full_flops, frozen_flops, emb_fwd)


def _embedding_patches(case) -> int:
  """Patches the embedding sees for the case's batch: b x channels x F1 frames."""
  config = tiny_train_config('mr', '', '')
  spec = frames.FrameSpec.from_config(config.model)
  b, c, n = case[2]['audio'].shape
  return b * c * spec.num_f1_frames(spec.num_f2_frames(n))


def _embedding_forward_flops(emb_params, n: int) -> float:
  from alm_jax import embeddings  # pylint: disable=g-import-not-at-top
  config = tiny_train_config('mr', '', '')
  net = embeddings.build_embedding(config.model.embedding)
  x = jax.ShapeDtypeStruct((n, int(config.model.frontend.patch_frames),
                            int(config.model.frontend.n_mels)), jnp.float32)
  return _flops(jax.jit(lambda p, x: net.apply({'params': p}, x)).lower(emb_params, x))


@pytest.mark.slow  # another compile of the tiny model's gradient (~1 min on 2 busy cores)
def test_micro_batches_and_remat_give_the_big_batch_update(grad_case):
  """2 micro-batches of 2, embedding rematerialised in chunks of 5: the loss and gradients of batch 4."""
  loss, grads = grad_case[4:6]
  example_losses, params, batch, key = grad_case[:4]
  jaxpr = str(jax.make_jaxpr(lambda p, b: gradients.loss_and_grads(
      example_losses, p, b, key, accum_steps=2, remat_chunk=5))(params, batch))
  assert 'remat' in jaxpr and 'scan' in jaxpr  # rematerialised chunks, micro-batch loop
  got_loss, got_grads = _compiled_grads(grad_case, accum_steps=2, remat_chunk=5)
  np.testing.assert_allclose(float(got_loss), float(loss), rtol=1e-5)
  _assert_close(got_grads, grads)
  with pytest.raises(ValueError, match='grad_accum_steps'):
    gradients.split_micro_batches({'audio': jnp.zeros((4, 1))}, 3)


def test_host_accumulation_gives_the_big_batch_update(grad_case):
  """The host loop's micro-batch program, compiled once and run for j = 0, 1: the loss and gradients of batch 4."""
  loss, grads = grad_case[4:6]
  example_losses, params, batch, key = grad_case[:4]
  acc = gradients.zero_accumulator(params)
  add = jax.jit(lambda p, a, b, j: gradients.accumulate_micro_batch(
      example_losses, p, b, key, j, a, accum_steps=2)).lower(params, acc, batch, 0).compile(_FAST)
  for j in range(2):  # j is an argument of the one program, not a constant in it
    acc = add(params, acc, batch, j)
  got_loss, got_grads = gradients.finish_accumulation(acc, params)
  np.testing.assert_allclose(float(got_loss), float(loss), rtol=1e-5)
  _assert_close(got_grads, grads)


@pytest.mark.slow  # six programs of the tiny model compile (~80 s)
@SAME_WORKER
def test_host_accumulation_trains_as_the_scan(tmp_path):
  """Through train_and_evaluate: a frozen then a fine-tune update, 2 micro-batches each, host loop = scan."""
  config = tiny_train_config('mr', '', '')
  config.train.batch_size = 2
  config.train.freeze_embedding_epochs = 1
  config.train.grad_accum_steps = 2
  data = FakeData()
  states = {}
  for loop in ('host', 'scan'):
    config.train.grad_accum_loop = loop
    states[loop] = train.train_and_evaluate(
        _with(config, num_epochs=2), str(tmp_path / loop),
        make_train_iterator=data.make_train_iterator, make_eval_batches=data.make_eval_batches)
  assert int(states['host'].step) == 2
  for a, b in zip(jax.tree.leaves((states['host'].params, states['host'].opt_state)),
                  jax.tree.leaves((states['scan'].params, states['scan'].opt_state))):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-5, atol=1e-7)


def test_accumulation_loop_by_backend():
  cfg = lambda loop: ml_collections.ConfigDict({'grad_accum_loop': loop})
  assert gradients.accumulation_loop(cfg('auto'), 'cpu') == 'host'
  assert gradients.accumulation_loop(cfg('auto'), 'gpu') == 'scan'
  assert gradients.accumulation_loop(cfg('scan'), 'cpu') == 'scan'
  assert gradients.accumulation_loop(ml_collections.ConfigDict(), 'tpu') == 'scan'
  with pytest.raises(ValueError, match="grad_accum_loop = 'loop'.*auto, scan, host"):
    gradients.accumulation_loop(cfg('loop'))


@pytest.mark.slow  # its own optimiser: both steps compile again
@SAME_WORKER
def test_resume_before_the_end_of_the_freeze(tmp_path):
  """Freeze for 2 updates; stop after 1 and resume: the same state as 3 updates straight."""
  config = tiny_train_config('mr', '', '')
  config.train.freeze_embedding_epochs = 2
  data = FakeData()
  run = lambda workdir, epochs: train.train_and_evaluate(
      _with(config, num_epochs=epochs), workdir, make_train_iterator=data.make_train_iterator,
      make_eval_batches=data.make_eval_batches)
  straight = run(str(tmp_path / 'straight'), 3)
  after_one = jax.device_get(run(str(tmp_path / 'split'), 1).params)
  split = run(str(tmp_path / 'split'), 3)
  for a, b in zip(jax.tree.leaves((straight.params, straight.opt_state)),
                  jax.tree.leaves((split.params, split.opt_state))):
    np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-6)
  # The embedding did not move during the freeze (updates 1, 2), and moved after it (update 3).
  _, p2, _ = restore.restore_params(os.path.join(tmp_path, 'split', 'checkpoints', '2'))
  emb = lambda p: jax.tree.leaves(p['embedding'])
  assert all(np.array_equal(a, b) for a, b in zip(emb(after_one), emb(p2)))
  assert not all(np.array_equal(a, b) for a, b in zip(emb(p2), emb(jax.device_get(split.params))))


def _with(config, **train_fields):
  c = config.copy_and_resolve_references()
  for k, v in train_fields.items():
    c.train[k] = v
  return c


# ---- a mixer with pans ------------------------------------------------------------------------


def _stereo_config(*dirs):
  config = tiny_train_config('mr', *dirs)
  config.model.outputs = ('gain', 'pan')
  config.loss.pan_weight = 1.0
  return config


def _placed(batch):
  """fake_batch with a designed placement: hard left to hard right, and its stereo target."""
  from alm_jax import stereo  # pylint: disable=g-import-not-at-top
  batch = dict(batch)
  mask = batch['channel_mask']
  pans = np.where(mask, np.linspace(-0.8, 0.8, mask.shape[1]), np.nan).astype(np.float32)
  gains = np.where(mask, batch['ideal_gains'], 0.0)
  batch['ideal_pans'] = pans
  batch['target_stereo'] = stereo.mix_numpy(batch['audio'], gains, np.nan_to_num(pans))
  return batch


@SAME_WORKER
def test_stereo_training_on_the_real_pipeline(data_dirs, tmp_path):
  """A model with pans trains on synthetic_live's designed placement; validation has the stereo metrics."""
  config = _stereo_config(*data_dirs)
  config.train.num_epochs = 1
  state = train.train_and_evaluate(config, str(tmp_path))
  assert 'pan_mlp' in state.params
  scalars = read_scalars(str(tmp_path))
  assert np.isfinite(scalars['train/loss'][1])
  for metric in ('loss', 'pan_error', 'mr_stft_mid', 'balance_error_db'):
    assert np.isfinite(scalars[f'validation/{metric}'][1]), metric


@SAME_WORKER
@pytest.mark.slow  # ~60 s; the default run trains pans in test_stereo_training_on_the_real_pipeline
def test_pan_term_alone_trains_the_pans(tmp_path):
  config = _stereo_config('', '')
  config.loss.w_sc = config.loss.w_log_mag = 0.0  # MR-STFT off: only the pan term is left
  data = FakeData(same_batch=True)

  def placed(config, **kwargs):
    for batch in data.make_train_iterator(config, **kwargs):
      yield _placed(batch)

  def placed_eval(config, split, **kwargs):
    return [_placed(b) for b in data.make_eval_batches(config, split, **kwargs)]

  batch = _placed(fake_batch(config, 0))
  errors = []
  for epochs in (1, 20):
    config.train.num_epochs = epochs
    state = train.train_and_evaluate(config, str(tmp_path), make_train_iterator=placed,
                                     make_eval_batches=placed_eval)
    out = build_model(config).apply({'params': state.params}, batch['audio'],
                                    batch['channel_mask'])
    errors.append(float(np.mean(losses.pan_loss(out['pans'][..., 1:], batch['ideal_pans'],
                                                 batch['channel_mask']))))
  assert errors[1] < 0.5 * errors[0], errors


class _Layout(nn.Module):
  @nn.compact
  def __call__(self, shape):
    logit = self.param('logit', nn.initializers.constant(0.3), ()) * jnp.ones(shape)
    self.sow('intermediates', 'spread_logit', logit)  # where register.Layout sows it
    return jax.nn.sigmoid(logit)


class _Stereo(nn.Module):
  """A stand-in for a stereo ALM with the layout: pans from the spread, the centred sum's mix."""

  @nn.compact
  def __call__(self, audio, channel_mask, train=False):
    b, c, n = audio.shape
    spread = _Layout(name='pan_layout')((b, c, 4))
    mix = jnp.sum(audio, axis=1)
    # Pans that change over the frames, so the terms' frames (after frame 0) matter.
    return {'gains': jnp.ones((b, c, 4)), 'pans': spread - 0.5 + jnp.linspace(0.0, 0.3, 4),
            'stereo': jnp.stack([mix, mix], axis=1) * 0.7}


def test_the_spread_and_width_terms_are_added_to_the_loss(monkeypatch):
  config = _stereo_config('', '')
  config.model.update_from_flattened_dict({'register.enabled': True, 'register.pan_layout': True})
  config.loss.spread_weight = 2.0
  config.loss.pan_width_weight = 3.0
  side, pan, spread_weight, width_weight = train.stereo_term_weights(config)
  # train_and_evaluate's positional statics land in the state's fields.
  monkeypatch.setattr(train, 'init_params', lambda rng, model: {})
  built = train.create_train_state(jax.random.key(0), _Stereo(), optax.sgd(0.1),
                                   losses.MRSTFTSpec.from_config(config.loss),
                                   *train.gain_term_weights(config),
                                   *train.stereo_term_weights(config))
  assert (built.pan_weight, built.spread_weight, built.pan_width_weight) == (pan, 2.0, 3.0)
  state = train.TrainState(step=0, params={}, opt_state=None, model=_Stereo(), tx=None,
                           loss_spec=losses.MRSTFTSpec.from_config(config.loss), side_weight=side,
                           pan_weight=pan, spread_weight=spread_weight,
                           pan_width_weight=width_weight)
  batch = _placed(fake_batch(config, 0))
  params = _Stereo().init(jax.random.key(0), batch['audio'], batch['channel_mask'])['params']
  key = jax.random.key(1)
  with_it = train.example_losses(state)(params, batch, key)
  without = train.example_losses(state.replace(spread_weight=0.0))(params, batch, key)
  logit = jnp.full(batch['channel_mask'].shape + (4,), 0.3)
  np.testing.assert_allclose(with_it - without, 2.0 * losses.spread_loss(
      logit, batch['ideal_pans'], batch['channel_mask']), rtol=1e-5)
  # The width term too, on the pans after frame 0 as the known-pan term.
  no_width = train.example_losses(state.replace(pan_width_weight=0.0))(params, batch, key)
  pans = _Stereo().apply({'params': params}, batch['audio'], batch['channel_mask'])['pans']
  np.testing.assert_allclose(with_it - no_width, 3.0 * losses.pan_loss(
      pans[..., 1:], batch['ideal_pans'], batch['channel_mask'], width_only=True), rtol=1e-5)
  plain = train.example_losses(state.replace(spread_weight=0.0, pan_width_weight=0.0))
  grad = jax.grad(lambda p: jnp.sum(train.example_losses(state)(p, batch, key)
                                    - plain(p, batch, key)))
  assert float(grad(params)['pan_layout']['logit']) != 0.0  # it trains the spread
  # Through the real update, micro-batches scanned: the spread moves.
  tx = optax.sgd(0.1)
  stepped, _ = train.train_step(state.replace(params=params, tx=tx, opt_state=tx.init(params)),
                                batch, key, False, 2)
  assert float(stepped.params['pan_layout']['logit']) != 0.3
  # Without the layout there is no spread to train: refused, naming the fix.
  config.model.register.pan_layout = False
  with pytest.raises(ValueError, match='register.pan_layout = True'):
    train.stereo_term_weights(config)


def test_pans_refuse_data_without_a_placement(tmp_path):
  config = _stereo_config('', '')
  data = FakeData()

  def unplaced(config, **kwargs):
    for batch in data.make_train_iterator(config, **kwargs):
      batch = _placed(batch)
      batch['ideal_pans'][:] = np.nan
      yield batch

  with pytest.raises(ValueError, match=r"needs a dataset with a designed stereo placement"):
    train.train_and_evaluate(config, str(tmp_path), make_train_iterator=unplaced,
                             make_eval_batches=data.make_eval_batches)
  assert not list(tmp_path.glob('checkpoints/*'))


@SAME_WORKER
def test_ctrl_c_keeps_the_step_reached_and_a_finished_run_trains_nothing(tmp_path, caplog):
  config = tiny_train_config('mr', '', '')
  config.train.checkpoint_every_steps = 100  # only the last step and the interrupt save
  data = FakeData()

  def interrupted(config, *, start_step=0, **kwargs):
    for i, batch in enumerate(data.make_train_iterator(config, start_step=start_step, **kwargs)):
      if start_step + i == 2:  # iterator position 2 = while update 3 waits for its batch
        raise KeyboardInterrupt
      yield batch

  workdir = str(tmp_path)
  with pytest.raises(train.TrainingInterrupted,
                     match=r'^stopped at step 2; rerun the same command to resume$'):
    train.train_and_evaluate(config, workdir, make_train_iterator=interrupted,
                             make_eval_batches=data.make_eval_batches)
  assert restore.restore_params(workdir)[2] == 2
  train.train_and_evaluate(config, workdir, make_train_iterator=data.make_train_iterator,
                           make_eval_batches=data.make_eval_batches)
  assert restore.restore_params(workdir)[2] == 4
  # absl's logger too: an earlier test in this worker may have raised its level.
  with caplog.at_level('INFO'), caplog.at_level('INFO', logger='absl'):
    state = train.train_and_evaluate(config, workdir, make_train_iterator=interrupted,
                                     make_eval_batches=data.make_eval_batches)
  assert int(state.step) == 4 and 'This run is finished: step 4 of 4' in caplog.text


def test_warm_start_takes_the_shared_parameters_and_keeps_the_new_ones(tmp_path):
  """A stereo model started from a trained mono one: every gain-path leaf taken, the pan head fresh."""
  mono = TinyModel('mr')
  save_checkpoint(tmp_path / 'mono', mono.config, mono.params)
  stereo_model = TinyModel('mr', outputs=('gain', 'pan'))
  warm = train.warm_start(stereo_model.params, str(tmp_path / 'mono'))
  flat = lambda tree: {jax.tree_util.keystr(k): np.asarray(v)  # pylint: disable=unnecessary-lambda-assignment
                       for k, v in jax.tree_util.tree_leaves_with_path(tree)}
  got, was, fresh = flat(warm), flat(mono.params), flat(stereo_model.params)
  assert set(was) < set(got)
  for key, value in got.items():
    np.testing.assert_array_equal(value, was[key] if key in was else fresh[key])
  assert any('pan_mlp' in k for k in got if k not in was)
  with pytest.raises(ValueError, match='none of its parameters'):
    train.warm_start({'unrelated': np.zeros(3, np.float32)}, str(tmp_path / 'mono'))
  # Two sources, in turn: the pan head from a stereo run, the shared networks from a newer mono one.
  save_checkpoint(tmp_path / 'stereo', stereo_model.config, stereo_model.params)
  newer = TinyModel('mr')
  newer.params = jax.tree.map(lambda x: np.asarray(x) + 1.0, newer.params)
  save_checkpoint(tmp_path / 'newer', newer.config, newer.params)
  blank = jax.tree.map(np.zeros_like, stereo_model.params)
  both = flat(train.warm_start(blank, f'{tmp_path / "stereo"}, {tmp_path / "newer"}'))
  newer_flat = flat(newer.params)
  for key, value in both.items():
    np.testing.assert_array_equal(value, newer_flat[key] if key in newer_flat else fresh[key])
