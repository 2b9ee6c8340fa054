"""Validation: the model on the validation split, with the one metric suite.

`eval_step` is the jitted model on one batch; `evaluate` averages the training
loss and `metrics.mix_metrics` over the real examples of a split (what
TensorBoard shows as validation/*, and what `alm_jax.evaluate` reports per
system); `evaluate_checkpoint` does it for the latest checkpoint of a workdir
(`python -m alm_jax.main --mode=evaluate`).
"""

import os
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from alm_jax import frames
from alm_jax import losses
from alm_jax import metrics
from alm_jax import paths
from alm_jax import restore
from alm_jax import sharding
from alm_jax import writers
from alm_jax.models import build_model
from alm_jax.models import compiler_options
from alm_jax.models import without_init_only


def data_functions(make_train_iterator, make_eval_batches):
  """The input pipeline's functions, `alm_jax.data.pipeline`'s where the caller passes None."""
  if make_train_iterator is None or make_eval_batches is None:
    from alm_jax.data import pipeline  # pylint: disable=g-import-not-at-top
    make_train_iterator = make_train_iterator or pipeline.make_train_iterator
    make_eval_batches = make_eval_batches or pipeline.make_eval_batches
  return make_train_iterator, make_eval_batches


def eval_step(params, batch, model: nn.Module, loss_spec: losses.MRSTFTSpec):
  """The model on one validation batch, per example.

  Returns:
    dict with 'loss' [b] (the training loss), 'mix' [b, n] float32 and
    'gains' [b, c, t] (the applied gains), all sharded like the batch; a model
    with pans also 'stereo' [b, 2, n] and 'pans' [b, c, t], and its loss is the
    MR-STFT on mid and side (`losses.stereo_loss`, side weight 1).
  """
  out = model.apply({'params': params}, batch['audio'], batch['channel_mask'], train=False)
  mix = out['mix'].astype(jnp.float32)
  result = {'loss': losses.mix_loss(mix, batch['target'], loss_spec), 'mix': mix,
            'gains': out['gains'].astype(jnp.float32)}
  if 'stereo' in out:
    result.update(loss=losses.stereo_loss(out['stereo'], batch['target_stereo'], loss_spec),
                  stereo=out['stereo'].astype(jnp.float32), pans=out['pans'])
  return result


def example_metrics(out, batch, config) -> dict[str, np.ndarray]:
  """Per-example objective metrics [b] (host NumPy, `alm_jax.metrics`) of one validation batch.

  Args:
    out: `eval_step`'s output as NumPy arrays.
    batch: the batch's 'target' [b, S] and 'channel_mask' [b, C] as NumPy
      arrays, and, when the pipeline provides them, 'target_gains' and
      'input_gain_db' [b, C] (for the balance error against the ideal gains).
    config: the full config (sample rate, F2 frame length).
  """
  # The suite `alm_jax.evaluate` reports too (its 'mr_stft' is the 'loss' logged here).
  ideal = None
  if 'target_gains' in batch and 'input_gain_db' in batch:
    ideal = metrics.ideal_input_gains(batch['target_gains'], batch['input_gain_db'])
  rate = int(config.model.sample_rate)
  found = metrics.mix_metrics(out['mix'], batch['target'], out['gains'], rate=rate,
                              frame_seconds=frames.FrameSpec.from_config(config.model).f2 / rate,
                              channel_mask=batch['channel_mask'], ideal_gains=ideal)
  if 'stereo' in out and 'target_stereo' in batch:  # a model with pans, data with a placement
    found.update(metrics.stereo_metrics(out['stereo'], batch['target_stereo'], out['pans'],
                                        batch['ideal_pans'], loss_config=config.loss,
                                        channel_mask=batch['channel_mask']))
  return found


def to_host(tree):
  """Global (possibly multi-process) arrays -> full NumPy arrays on every process."""
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    return multihost_utils.process_allgather(tree, tiled=True)
  return jax.device_get(tree)


def evaluate(eval_fn, params, batches, mesh, config) -> dict[str, float]:
  """Means over the real validation examples of the loss and the objective metrics.

  Non-finite metric values (e.g. the loudness of a silent segment) are left out
  of that metric's mean; how many were left out is reported as '<name>_nonfinite'.
  A metric with no finite value at all (e.g. the balance error on a dataset
  without known mixing gains) is not reported.
  """
  values = {}
  for local in batches:
    out = to_host(eval_fn(params, sharding.model_inputs(local, mesh)))
    # The metadata the metrics need, for the whole global batch on every process.
    host = {k: local[k] for k in ('target', 'channel_mask', 'target_gains', 'input_gain_db',
                                  'example_mask', 'target_stereo', 'ideal_pans') if k in local}
    if jax.process_count() > 1:
      host = to_host(sharding.global_batch(host, mesh))
    mask = np.asarray(host.get('example_mask', np.ones(out['loss'].shape, bool)), bool)
    per_example = {'loss': out['loss'], **example_metrics(out, host, config)}
    for k, v in per_example.items():
      values.setdefault(k, []).append(np.asarray(v, np.float64)[mask])
  if not values:
    raise ValueError('The validation split has no batches; check config.data.')
  results = {}
  for k, v in values.items():
    v = np.concatenate(v)
    finite = np.isfinite(v)
    if k == 'loss':
      results[k] = float(np.mean(v))  # a NaN loss must show
    elif finite.any():  # metrics the data cannot support (all NaN) are left out
      results[k] = float(np.mean(v[finite]))
      if not finite.all():
        results[f'{k}_nonfinite'] = float(np.sum(~finite))
  return results


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str | os.PathLike, *,
                        make_eval_batches: Callable | None = None) -> dict[str, float]:
  """Evaluates the latest checkpoint in `workdir` on the validation split.

  The metrics go to the console and to TensorBoard under WORKDIR/eval (WORKDIR:
  a local path or a URL, str or path object).
  """
  _, make_eval_batches = data_functions(lambda *a, **k: None, make_eval_batches)
  workdir = paths.as_path(workdir)
  saved_config, params, step = restore.restore_params(workdir, config)
  del saved_config
  mesh = sharding.make_mesh()
  repl = sharding.replicated(mesh)
  params = jax.device_put(jax.device_get(params), repl)  # restored params sit on one local device
  model = build_model(without_init_only(config))
  loss_spec = losses.MRSTFTSpec.from_config(config.loss)
  jit_eval_step = jax.jit(eval_step, static_argnums=(2, 3),
                          in_shardings=(jax.tree.map(lambda _: repl, params),
                                        sharding.data_sharding(mesh)),
                          out_shardings=sharding.data_sharding(mesh),
                          compiler_options=compiler_options(config))
  p_eval_step = lambda params, batch: jit_eval_step(params, batch, model, loss_spec)
  batches = make_eval_batches(config, 'validation', process_index=jax.process_index(),
                              process_count=jax.process_count(), workdir=workdir)
  results = evaluate(p_eval_step, params, batches, mesh, config)
  writer = writers.MetricWriter(workdir / 'eval', enabled=jax.process_index() == 0)
  writer.write(step, {f'validation/{k}': v for k, v in results.items()})
  writer.close()
  return {'step': step, **results}
