"""The training loop: one jitted update, data-parallel over every device, resumable.

`train_and_evaluate(config, workdir)` (what `python -m alm_jax.main` runs)
builds the model with `alm_jax.models.build_model` and never asks which model it
is, trains it with the optax chain of `alm_jax.optimizer`, validates with
`alm_jax.validation` and saves async orbax checkpoints; `train_step` is the pure
update it jits once with donation. A resumed run continues the input stream
exactly where the saved one stopped (docs/checkpoints.md: steps, epochs and the
resume order).
"""

import functools
import itertools
import os
import time
from typing import Any, Callable

from absl import logging
from flax import struct
import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from alm_jax import checkpoints
from alm_jax import config_checks
from alm_jax import embeddings
from alm_jax import gradients
from alm_jax import losses
from alm_jax import optimizer
from alm_jax import paths
from alm_jax import restore
from alm_jax import sharding
from alm_jax import stereo
from alm_jax import validation
from alm_jax import writers
from alm_jax.models import build_model
from alm_jax.models import compiler_options
from alm_jax.models import init_params
from alm_jax.models import register
from alm_jax.models import without_init_only

# For programs that run once (initialisation) on the CPU, where XLA's backend
# optimisations of the many small random-initialiser kernels take longer than they save.
_FAST_COMPILE = {'xla_backend_optimization_level': 0}


class NonFiniteLossError(FloatingPointError):
  """The loss or the gradient became NaN/Inf; training stopped before saving that state."""


class TrainingInterrupted(Exception):
  """Ctrl-C during training; str() is the one line a command line shows."""

  def __init__(self, step: int, saved: int | None):
    self.step, self.saved = step, saved
    if saved is not None and saved == step:
      message = f'stopped at step {step}; rerun the same command to resume'
    elif saved is not None:
      message = (f'stopped at step {step}; rerun the same command to resume from the last '
                 f'checkpoint (step {saved})')
    else:
      message = f'stopped at step {step}, before any checkpoint; rerun the same command to start'
    super().__init__(message)


class TrainState(struct.PyTreeNode):
  """Everything a training step reads and writes.

  Only `step`, `params` and `opt_state` are arrays (and checkpointed); the model,
  the optimiser and the loss settings are static, so they are part of the
  compiled program rather than of its inputs.
  """
  step: jax.Array  # int32 [], optimiser updates done
  params: Any
  opt_state: Any
  model: nn.Module = struct.field(pytree_node=False)
  tx: optax.GradientTransformation = struct.field(pytree_node=False)
  loss_spec: losses.MRSTFTSpec = struct.field(pytree_node=False)
  # config.loss.balance_weight and gain_change_weight: the weights per dB of the terms on the
  # gains (0: the paper's loss, MR-STFT alone).
  balance_weight: float = struct.field(pytree_node=False, default=0.0)
  gain_change_weight: float = struct.field(pytree_node=False, default=0.0)
  # Models with pans (docs/model.md, "Stereo"): config.loss.side_weight, the side term of the
  # MR-STFT on mid and side, and config.loss.pan_weight, the known-pan term.
  side_weight: float = struct.field(pytree_node=False, default=1.0)
  pan_weight: float = struct.field(pytree_node=False, default=0.0)
  # config.loss.spread_weight: which channels the pan layout spreads (register.Layout).
  spread_weight: float = struct.field(pytree_node=False, default=0.0)
  # config.loss.pan_width_weight: the pans' widths, blind to their sides (losses.pan_loss).
  pan_width_weight: float = struct.field(pytree_node=False, default=0.0)


# ---- schedule and optimiser (alm_jax.optimizer, from the full config) -----------


def make_optimizer(config, spe: int) -> optax.GradientTransformation:
  """The optimiser of `optimizer.make` for the full config (see alm_jax.optimizer)."""
  return optimizer.make(config.train, spe)[0]


# ---- state -----------------------------------------------------------------


def create_train_state(rng, model: nn.Module, tx: optax.GradientTransformation,
                       loss_spec: losses.MRSTFTSpec, balance_weight: float = 0.0,
                       gain_change_weight: float = 0.0, side_weight: float = 1.0,
                       pan_weight: float = 0.0, spread_weight: float = 0.0,
                       pan_width_weight: float = 0.0) -> TrainState:
  """Fresh state (traceable; everything but rng static)."""
  params = init_params(rng, model)
  return TrainState(step=jnp.zeros([], jnp.int32), params=params, opt_state=tx.init(params),
                    model=model, tx=tx, loss_spec=loss_spec, balance_weight=float(balance_weight),
                    gain_change_weight=float(gain_change_weight), side_weight=float(side_weight),
                    pan_weight=float(pan_weight), spread_weight=float(spread_weight),
                    pan_width_weight=float(pan_width_weight))


# ---- steps -----------------------------------------------------------------


def train_step(state: TrainState, batch, rng, frozen: bool = False, accum_steps: int = 1,
               remat_chunk: int = 0):
  """One AdamW update on one global batch.

  Zero-latency training (the gain predicted on F2 frame t applied to frame
  t + 1 before the loss) needs nothing here: with config.model.zero_latency the
  model's `mix` is already made with the shifted gains (see
  `alm_jax.models.alm`), so the loss is taken on `out['mix']` for any model.

  Args:
    state: the TrainState (donated by the caller's jit).
    batch: dict with 'audio' [b, C, S], 'channel_mask' [b, C] bool,
      'target' [b, S] and optionally 'example_mask' [b] bool (False for padding
      examples, left out of the loss); with state.balance_weight > 0 also
      'ideal_gains' [b, C] (the loss adds that weight × `losses.balance_loss`).
    rng: base PRNG key; the dropout key is folded with the step, so a resumed
      run draws the same dropout masks as an uninterrupted one.
    frozen, accum_steps, remat_chunk: static (positional, for jit's
      static_argnums); see `alm_jax.gradients`
      (frozen: params['embedding'] is not differentiated, for the updates of
      the embedding freeze; `train_and_evaluate` picks the step per update).
  Returns:
    (new state, metrics) with float32 scalars 'loss' (before the update) and
    'grad_norm' (of the gradients computed: without the embedding's when frozen).
  """
  loss, grads = gradients.loss_and_grads(example_losses(state), state.params, batch,
                                         jax.random.fold_in(rng, state.step), frozen=frozen,
                                         accum_steps=accum_steps, remat_chunk=remat_chunk)
  return _update(state, loss, grads)


def accumulate_step(state: TrainState, acc, batch, rng, j, frozen: bool = False,
                    accum_steps: int = 1, remat_chunk: int = 0):
  """acc plus micro-batch j's loss sum, example count and gradients (the host accumulation loop).

  With config.train.grad_accum_loop = 'host' an update is `zero_accumulator`,
  this for j = 0 .. accum_steps - 1 (each call one compiled program, acc
  donated) and `apply_accumulated`: the same micro-batches, dropout keys and
  sums as `train_step`'s scan, without XLA:CPU's slow loop (docs/model.md).
  """
  return gradients.accumulate_micro_batch(
      example_losses(state), state.params, batch, jax.random.fold_in(rng, state.step), j, acc,
      accum_steps=accum_steps, frozen=frozen, remat_chunk=remat_chunk)


def zero_accumulator(state: TrainState, frozen: bool = False):
  """The empty sums `accumulate_step` adds to."""
  return gradients.zero_accumulator(state.params, frozen=frozen)


def apply_accumulated(state: TrainState, acc, frozen: bool = False):
  """(new state, metrics) of the update from `accumulate_step`'s sums: as `train_step`."""
  return _update(state, *gradients.finish_accumulation(acc, state.params, frozen=frozen))


def example_losses(state: TrainState) -> Callable:
  """(params, micro-batch, dropout key) -> per-example training losses [b'] of `state`'s model."""

  def losses_fn(params, micro, key):
    apply = functools.partial(state.model.apply, {'params': params}, micro['audio'],
                              micro['channel_mask'], train=True, rngs={'dropout': key})
    if state.spread_weight:  # the layout's spread, sown by register.Layout
      out, sown = apply(mutable=['intermediates'])
      spread_logit = layout_spread_logit(sown)
    else:
      out = apply()
    if 'stereo' in out:  # a model with pans: the MR-STFT on the stereo mix's mid and side
      loss = losses.stereo_loss(out['stereo'], micro['target_stereo'], state.loss_spec,
                                state.side_weight)
      if state.pan_weight:
        loss = loss + state.pan_weight * losses.pan_loss(
            out['pans'][..., 1:], micro['ideal_pans'], micro['channel_mask'])
      if state.pan_width_weight:
        loss = loss + state.pan_width_weight * losses.pan_loss(
            out['pans'][..., 1:], micro['ideal_pans'], micro['channel_mask'], width_only=True)
      if state.spread_weight:
        loss = loss + state.spread_weight * losses.spread_loss(
            spread_logit, micro['ideal_pans'], micro['channel_mask'])
    else:
      loss = losses.mix_loss(out['mix'], micro['target'], state.loss_spec)
    # Frame 0's gain is config.model.initial_gain under zero latency, not a prediction.
    predicted = out['gains'][..., 1:]
    if state.balance_weight:
      loss = loss + state.balance_weight * losses.balance_loss(
          predicted, micro['ideal_gains'], micro['channel_mask'])
    if state.gain_change_weight:
      loss = loss + state.gain_change_weight * losses.gain_change_loss(
          predicted, micro['channel_mask'])
    return loss

  return losses_fn


def layout_spread_logit(sown):
  """The pan layout's spread logit [b, c, t] from an apply's sown 'intermediates'.

  register.Layout sows it; `example_losses` reads it for config.loss.spread_weight.
  """
  return sown['intermediates']['pan_layout']['spread_logit'][0]


def _update(state: TrainState, loss, grads):
  updates, opt_state = state.tx.update(grads, state.opt_state, state.params)
  params = optax.apply_updates(state.params, updates)
  metrics = {'loss': loss, 'grad_norm': optax.global_norm(grads)}
  return state.replace(step=state.step + 1, params=params, opt_state=opt_state), metrics


def gain_term_weights(config) -> tuple[float, float]:
  """(balance_weight, gain_change_weight) of config.loss (0 when absent: older configs)."""
  return (float(config.loss.get('balance_weight', 0.0)),
          float(config.loss.get('gain_change_weight', 0.0)))


def stereo_term_weights(config) -> tuple[float, float, float, float]:
  """(side_weight, pan_weight, spread_weight, pan_width_weight) of config.loss (1, 0, 0, 0 when
  absent: older configs).

  Raises:
    ValueError: a spread weight for a model without the pan layout, which it trains.
  """
  spread = float(config.loss.get('spread_weight', 0.0))
  problem = config_checks.spread_problem(
      spread, stereo.has_pans(config.model) and register.pan_layout(config.model))
  if problem:
    raise ValueError(problem)
  return (float(config.loss.get('side_weight', 1.0)), float(config.loss.get('pan_weight', 0.0)),
          spread, float(config.loss.get('pan_width_weight', 0.0)))


def _check_pan_data(local_batch, config):
  """A model with pans on data without a designed placement would learn no placement."""
  if not stereo.has_pans(config.model):
    return
  pans = local_batch.get('ideal_pans')
  if pans is None or not np.any(
      np.isfinite(np.asarray(pans)[np.asarray(local_batch['channel_mask'], bool)])):
    raise ValueError("config.model.outputs = ('gain', 'pan') needs a dataset with a designed "
                     'stereo placement (rendered_live, synthetic_live: docs/data.md), but '
                     f'config.data.name={config.data.name!r} has none in its first batch: set '
                     "config.model.outputs = ('gain',) or train on such a dataset.")


def _check_balance_data(local_batch, weight: float, config):
  """A balance term on data without known mixing gains would silently be the paper's loss."""
  if not weight:
    return
  ideal = local_batch.get('ideal_gains')
  if ideal is None or not np.any(
      np.isfinite(np.asarray(ideal)[np.asarray(local_batch['channel_mask'], bool)])):
    raise ValueError(f'config.loss.balance_weight={weight} needs a dataset with known mixing gains '
                     f'(rendered_live, synthetic_live), but config.data.name='
                     f'{config.data.name!r} has none in its first batch: set '
                     'config.loss.balance_weight=0 or train on a dataset with mix_gains.')


def step_options(train_config) -> dict:
  """train_step's static options (but `frozen`) from config.train."""
  return {'accum_steps': int(train_config.get('grad_accum_steps', 1)),
          'remat_chunk': int(train_config.get('remat_embedding_chunk', 0))}


def compile_update(state_sharding, batch_sharding, repl, options: dict, loop: str,
                   xla_options: dict | None = None) -> Callable:
  """(state, batch, rng, frozen) -> (state, metrics): one update, each program jitted once.

  loop 'scan' (or accum_steps 1): `train_step`, state donated. loop 'host':
  `accumulate_step` once per micro-batch (the sums donated, j a traced
  argument: one program for every j) then `apply_accumulated`; the host only
  dispatches, it never waits on the device. Shardings None: inferred (one
  device). `update.lower(state, batch, rng, frozen)` gives {name: Lowered} of
  its programs, for their buffer sizes (bench/train.py). xla_options: the
  model's `compiler_options` for the programs that run it.
  """
  k, remat = options['accum_steps'], options['remat_chunk']
  shard = lambda **kw: {} if state_sharding is None else kw
  if k == 1 or loop == 'scan':
    step = jax.jit(train_step, donate_argnums=(0,), static_argnums=(3, 4, 5),  # frozen, k, remat
                   compiler_options=xla_options,
                   **shard(in_shardings=(state_sharding, batch_sharding, repl),
                           out_shardings=(state_sharding, repl)))
    update = lambda state, batch, rng, frozen: step(state, batch, rng, frozen, k, remat)
    update.lower = lambda state, batch, rng, frozen: {
        'train_step': step.lower(state, batch, rng, frozen, k, remat)}
    return update
  zero = jax.jit(zero_accumulator, static_argnums=(1,))
  add = jax.jit(accumulate_step, donate_argnums=(1,), static_argnums=(5, 6, 7),
                compiler_options=xla_options)
  # The state is donated; the sums are not (the new params and moments already reuse the old ones).
  apply = jax.jit(apply_accumulated, donate_argnums=(0,), static_argnums=(2,),
                  **shard(out_shardings=(state_sharding, repl)))

  def update(state, batch, rng, frozen):
    acc = zero(state, frozen)
    for j in range(k):
      acc = add(state, acc, batch, rng, np.int32(j), frozen, k, remat)
    return apply(state, acc, frozen)

  def lower(state, batch, rng, frozen):
    acc = jax.eval_shape(lambda s: zero_accumulator(s, frozen), state)
    return {'accumulate_step': add.lower(state, acc, batch, rng, np.int32(0), frozen, k, remat),
            'apply_accumulated': apply.lower(state, acc, frozen)}

  update.lower = lower
  return update


# ---- logging ---------------------------------------------------------------


def _check_finite(fetched, workdir, last_saved):
  """Raises NonFiniteLossError at the first step whose loss or gradient is NaN/Inf."""
  for step, m in fetched:
    if not (np.isfinite(m['loss']) and np.isfinite(m['grad_norm'])):
      kept = (f'the last good checkpoint (step {last_saved}) in {checkpoints.checkpoint_dir(workdir)} '
              'is intact' if last_saved is not None else 'no checkpoint had been saved yet')
      raise NonFiniteLossError(
          f'Training stopped: non-finite loss or gradient at step {step} (loss={m["loss"]}, '
          f'grad_norm={m["grad_norm"]}); the state after it was not saved and {kept}. Lower '
          'config.train.learning_rate, set config.train.grad_clip_norm, or check the data.')


# ---- the loop --------------------------------------------------------------


def warm_start(params, path: str):
  """`params` with every leaf the trained model at `path` holds at the same place, shape and dtype.

  For a new model that extends a trained one (config.train.init_params_from: a stereo head on a
  mono mixer, say): the shared networks start trained, the new ones fresh. `path` is anything
  `--checkpoint` takes, or several of them comma-separated, taken in turn (a later one's leaves
  over an earlier one's). Raises ValueError if no leaf of one of them matches (a different model
  altogether).
  """
  for source in path.split(','):
    params = _take_from(params, source.strip())
  return params


def _take_from(params, path: str):
  """`warm_start` from one trained model."""
  _, saved, step = restore.restore_params(path)
  saved = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(saved)}
  taken, fresh = [], []

  def pick(key_path, leaf):
    key = jax.tree_util.keystr(key_path)
    old = saved.get(key)
    if old is not None and old.shape == leaf.shape and old.dtype == leaf.dtype:
      taken.append(key)
      return np.asarray(old)
    fresh.append(key)
    return leaf

  params = jax.tree_util.tree_map_with_path(pick, params)
  if not taken:
    raise ValueError(f'config.train.init_params_from={path}: none of its parameters has a name and '
                     'shape of this model; give a checkpoint of the same architecture (or clear it).')
  logging.info('Parameters initialised from %s (step %d): %d of %d leaves; not in it (fresh, or '
               'from an earlier source): %s', path, step, len(taken), len(taken) + len(fresh),
               ', '.join(fresh) or 'none')
  return params


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
                       make_train_iterator: Callable | None = None,
                       make_eval_batches: Callable | None = None,
                       num_train_songs: Callable | None = None) -> TrainState:
  """Trains `config` in `workdir`, resuming from its latest checkpoint.

  Resume order: the latest checkpoint in WORKDIR/checkpoints (parameters,
  optimiser state, step); else a fresh initialisation with the pretrained
  embedding from config.model.embedding.weights when set; else a fresh
  initialisation from config.seed.

  Args:
    config: the full config (configs/*.py).
    workdir: output folder: config.json, checkpoints/, TensorBoard events; a
      local path or a URL such as gs://bucket/run (str or path object).
    make_train_iterator, make_eval_batches, num_train_songs: the input
      pipeline's functions (default: `alm_jax.data.pipeline`'s); tests pass
      their own with the same signatures.
  Returns:
    The final TrainState.
  Raises:
    NonFiniteLossError: the loss or a gradient became NaN/Inf.
  """
  make_train_iterator, make_eval_batches = validation.data_functions(make_train_iterator, make_eval_batches)
  workdir = paths.as_path(workdir)
  tc = config.train
  process_index, process_count = jax.process_index(), jax.process_count()
  is_writer = process_index == 0

  # ---- mesh, schedule ------------------------------------------------------
  mesh = sharding.make_mesh()
  sharding.check_batch_size(int(tc.batch_size), mesh, process_count)
  if num_train_songs is None:
    from alm_jax.data import pipeline  # pylint: disable=g-import-not-at-top  (loads tfds)
    num_train_songs = pipeline.num_train_songs
  # Steps per epoch: computed once, here where the loop starts, and handed to the schedule and
  # the input pipeline (flax imagenet's train.py); alm_jax.optimizer holds the rule.
  spe = optimizer.steps_per_epoch(tc, lambda: num_train_songs(config))
  num_steps = optimizer.total_steps(tc, spe)
  tx, schedule = optimizer.make(tc, spe)
  logging.info('%d devices, %d processes; %d steps per epoch, %d steps in all.',
               mesh.devices.size, process_count, spe, num_steps)

  # ---- state: resume, pretrained embedding, or fresh -------------------------
  manager = checkpoints.open_manager(workdir, config)
  rng = jax.random.key(int(config.seed))
  init_rng, dropout_rng = jax.random.split(rng)
  statics = (build_model(without_init_only(config)), tx,
             losses.MRSTFTSpec.from_config(config.loss), *gain_term_weights(config),
             *stereo_term_weights(config))
  abstract = jax.eval_shape(lambda key: create_train_state(key, *statics), init_rng)
  repl = sharding.replicated(mesh)
  state_sharding = jax.tree.map(lambda _: repl, abstract)
  try:  # the newest intact step; damaged ones are moved aside, with a warning
    state = checkpoints.restore_latest(manager, workdir, abstract, state_sharding)
  except (checkpoints.CheckpointError, ValueError):
    manager.close()
    raise
  latest = None if state is None else int(jax.device_get(state.step))
  if latest is not None:
    logging.info('Resumed from checkpoint step %d in %s', latest, workdir)
  else:
    # Runs once: XLA's backend optimisations would cost more compile time than they save.
    fast = _FAST_COMPILE if jax.default_backend() == 'cpu' else None
    state = jax.jit(create_train_state, static_argnums=tuple(range(1, len(statics) + 1)),
                    out_shardings=state_sharding, compiler_options=fast)(init_rng, *statics)
    params = jax.device_get(state.params)
    pretrained = embeddings.load_pretrained(params, config.model.embedding)
    if pretrained is not params:
      logging.info('Embedding initialised from its pretrained weights (%s).',
                   config.model.embedding.get('weights', '') or 'shipped with the package')
      state = state.replace(params=jax.device_put(pretrained, state_sharding.params))
    if tc.get('init_params_from', ''):
      warm = warm_start(jax.device_get(state.params), tc.init_params_from)
      state = state.replace(params=jax.device_put(warm, state_sharding.params))
  start_step = int(jax.device_get(state.step))
  if start_step >= num_steps:
    manager.close()
    if is_writer:
      logging.info('This run is finished: step %d of %d in %s; nothing to train (give another '
                   '--workdir for a new run).', start_step, num_steps, workdir)
    return state

  # ---- compiled steps (each compiled once) ----------------------------------
  batch_sharding = sharding.data_sharding(mesh)
  # Two programs: updates 1..frozen_until leave params['embedding'] out of the
  # backward pass (the optimiser does not move it then); each compiles on first use.
  frozen_until = optimizer.freeze_steps(tc, spe)
  update = compile_update(state_sharding, batch_sharding, repl, step_options(tc),
                          gradients.accumulation_loop(tc), compiler_options(config))
  p_train_step = lambda state, batch, rng, step: update(state, batch, rng, step <= frozen_until)
  jit_eval_step = jax.jit(validation.eval_step, static_argnums=(2, 3),
                          in_shardings=(state_sharding.params, batch_sharding),
                          out_shardings=batch_sharding, compiler_options=compiler_options(config))
  p_eval_step = lambda params, batch: jit_eval_step(params, batch, state.model, state.loss_spec)
  # Keys cannot be device_put across processes; move their raw data instead.
  dropout_rng = jax.random.wrap_key_data(jax.device_put(jax.random.key_data(dropout_rng), repl))

  # ---- data -----------------------------------------------------------------
  data_kwargs = dict(process_index=process_index, process_count=process_count, workdir=workdir)
  train_iter = iter(make_train_iterator(config, start_step=start_step, steps_per_epoch=spe,
                                       **data_kwargs))
  first = next(train_iter)  # checked before any work, then trained on first
  _check_balance_data(first, statics[3], config)
  _check_pan_data(first, config)
  train_iter = itertools.chain([first], train_iter)
  eval_batches = None  # built at the first evaluation

  def validate(step):
    nonlocal eval_batches
    if eval_batches is None:
      eval_batches = make_eval_batches(config, 'validation', **data_kwargs)
    results = validation.evaluate(p_eval_step, state.params, eval_batches, mesh, config)
    writer.write(step, {f'validation/{k}': v for k, v in results.items()})
    return results

  # ---- loop -----------------------------------------------------------------
  writer = writers.MetricWriter(workdir, enabled=is_writer)
  from tqdm import auto as tqdm  # pylint: disable=g-import-not-at-top
  bar = tqdm.tqdm(total=num_steps, initial=start_step, disable=not is_writer, unit='step',
                  dynamic_ncols=True)
  last_saved = latest
  eval_every = int(tc.eval_every_steps)  # <= 0: no validation at all
  pending, window = [], []  # device metrics not yet fetched; fetched ones not yet logged
  first_loss = last_loss = last_validation = None
  step = start_step  # the loop's step, read by the Ctrl-C handler
  try:
    if eval_every > 0 and start_step == 0:
      last_validation = validate(0)  # where a fresh run starts from
    window_start = time.time()
    for step in range(start_step + 1, num_steps + 1):
      batch = sharding.model_inputs(next(train_iter), mesh)
      state, metrics = p_train_step(state, batch, dropout_rng, step)
      pending.append((step, metrics))
      bar.update(1)
      is_last = step == num_steps
      log_now = step % int(tc.log_every_steps) == 0 or is_last
      save_now = step % int(tc.checkpoint_every_steps) == 0 or is_last
      eval_now = eval_every > 0 and (step % eval_every == 0 or is_last)
      if not (log_now or save_now or eval_now):
        continue
      # The only host syncs: at log, evaluation and checkpoint steps.
      fetched = [(s, jax.device_get(m)) for s, m in pending]
      pending = []
      _check_finite(fetched, workdir, last_saved)
      window.extend(fetched)
      if log_now:
        elapsed = time.time() - window_start
        scalars = {f'train/{k}': float(np.mean([m[k] for _, m in window])) for k in window[0][1]}
        scalars['train/learning_rate'] = float(schedule(step - 1))
        scalars['train/steps_per_second'] = len(window) / max(elapsed, 1e-9)
        writer.write(step, scalars)
        bar.set_postfix(loss=f'{scalars["train/loss"]:.4f}')
        first_loss = scalars['train/loss'] if first_loss is None else first_loss
        last_loss = scalars['train/loss']
        window, window_start = [], time.time()
      if eval_now:
        last_validation = validate(step)
      if save_now and last_saved != step:
        checkpoints.save_state(manager, step, state)
        if is_writer:
          logging.info('Saving checkpoint %s (in the background).',
                       checkpoints.checkpoint_dir(workdir) / str(step))
        last_saved = step
  except KeyboardInterrupt:
    # Ctrl-C: keep the step reached (if its state is finite) so the same command resumes there.
    try:
      reached = int(jax.device_get(state.step))
      finite = all(np.isfinite(x).all() for x in jax.tree.leaves(jax.device_get(state.params)))
    except (RuntimeError, ValueError):  # the state was donated to the update the interrupt cut
      reached, finite = max(start_step, step - 1), False
    if process_count == 1 and finite and reached > start_step and reached != last_saved:
      checkpoints.save_state(manager, reached, state)
      last_saved = reached
    raise TrainingInterrupted(reached, last_saved) from None
  finally:
    if hasattr(train_iter, 'close'):  # stops the pipeline's prefetch thread
      train_iter.close()
    bar.close()
    writer.close()
    manager.wait_until_finished()
    manager.close()
  if is_writer and last_loss is not None:
    logging.info('Done: step %d in %s; train loss %.4f (first logged %.4f)%s.', num_steps, workdir,
                 last_loss, first_loss,
                 '' if last_validation is None else
                 f', validation loss {last_validation["loss"]:.4f}')
  return state
