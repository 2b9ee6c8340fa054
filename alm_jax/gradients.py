"""The loss and gradients of one training batch: frozen embedding, micro-batches, rematerialisation.

`loss_and_grads(example_losses, params, batch, rng, frozen=..., accum_steps=..., remat_chunk=...)`
gives the mean loss over the real examples and its gradient; `frozen` leaves params['embedding']
undifferentiated, `accum_steps` runs the batch as micro-batches in a `lax.scan`, and
`remat_chunk` rematerialises the embedding a few patches at a time (`remat_embedding`).
`accumulate_micro_batch` is that loop's one step, which the training loop can also call once per
micro-batch from the host (`accumulation_loop`). What each mode computes and keeps: docs/model.md
("Gradients of one training batch").
"""

import contextlib
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from alm_jax import optimizer


ACCUM_LOOPS = ('auto', 'scan', 'host')


def accumulation_loop(train_config, backend: str | None = None) -> str:
  """'scan' or 'host': how config.train.grad_accum_steps > 1 runs its micro-batches (docs/model.md).

  'auto' (the default) is 'host' on CPU, where XLA runs the embedding's forward
  and backward about 20x slower inside a loop (bench/accum_loop.py), and
  'scan' on accelerators, where the one-program loop is the usual choice.
  """
  loop = str(train_config.get('grad_accum_loop', 'auto'))
  if loop not in ACCUM_LOOPS:
    raise ValueError(f'config.train.grad_accum_loop = {loop!r}: valid are {", ".join(ACCUM_LOOPS)}.')
  if loop == 'auto':
    loop = 'host' if (backend or jax.default_backend()) == 'cpu' else 'scan'
  return loop


def loss_and_grads(example_losses: Callable, params, batch: dict, rng, *, frozen: bool = False,
                   accum_steps: int = 1, remat_chunk: int = 0):
  """(mean loss over the real examples, its gradient w.r.t. params) of one batch (docs/model.md).

  Args:
    example_losses: (params, batch, rng) -> per-example losses [b'] of a
      (micro-)batch.
    params: the parameter tree; its top-level 'embedding' entry is held
      constant when `frozen`.
    batch: dict of arrays with leading axis b ('example_mask' [b] bool optional).
    rng: the step's dropout key.
    frozen: differentiate everything but params['embedding'].
    accum_steps: micro-batches, k, run in a `lax.scan`; b must be a multiple of k.
    remat_chunk: patches per rematerialised embedding chunk; 0: off.
  """
  k = int(accum_steps)
  acc = zero_accumulator(params, frozen=frozen)
  if k == 1:
    acc = accumulate_micro_batch(example_losses, params, batch, rng, None, acc, accum_steps=1,
                                 frozen=frozen, remat_chunk=remat_chunk)
  else:
    def body(carry, j):
      return accumulate_micro_batch(example_losses, params, batch, rng, j, carry, accum_steps=k,
                                    frozen=frozen, remat_chunk=remat_chunk), None

    acc, _ = jax.lax.scan(body, acc, jnp.arange(k))
  return finish_accumulation(acc, params, frozen=frozen)


def zero_accumulator(params, *, frozen: bool = False):
  """(loss sum 0, example count 0, zero gradients of the differentiated params)."""
  trained, _ = _differentiated(params, frozen)
  # Two arrays, not one twice: the host loop donates every leaf of the sums.
  return (jnp.zeros([], jnp.float32), jnp.zeros([], jnp.float32),
          jax.tree.map(jnp.zeros_like, trained))


def accumulate_micro_batch(example_losses: Callable, params, batch: dict, rng, j, acc, *,
                           accum_steps: int, frozen: bool = False, remat_chunk: int = 0):
  """acc + (loss sum, real examples, gradient of the sum) of micro-batch j of `accum_steps`.

  The one micro-batch step of both loops: `loss_and_grads`'s scan calls it
  with a traced j, the host loop (config.train.grad_accum_loop = 'host') calls
  it jitted once per micro-batch, so both split the batch and fold the dropout
  key the same way. j = None with accum_steps = 1: the whole batch, key `rng`.
  """
  trained, join = _differentiated(params, frozen)

  def summed(t, micro, key):
    """(sum of the real examples' losses, their count) of one micro-batch; grad w.r.t. t."""
    with remat_embedding(remat_chunk):
      losses = example_losses(join(t), micro, key)
    mask = micro.get('example_mask')
    if mask is None:
      return jnp.sum(losses), jnp.asarray(losses.shape[0], losses.dtype)
    mask = jnp.asarray(mask, bool)
    # where, not multiply: a non-finite padding value must not leak into the sum.
    return jnp.sum(jnp.where(mask, losses, 0.0)), jnp.sum(mask).astype(losses.dtype)

  if j is None:
    micro, key = batch, rng
  else:
    # Examples j, j + k, ...: a slice of the [b / k, k, ...] view, not a transpose of the batch
    # (this runs once per micro-batch, inside the scan or per host call).
    micro = jax.tree.map(lambda x: jax.lax.dynamic_index_in_dim(
        _grouped(x, int(accum_steps)), j, axis=1, keepdims=False), batch)
    key = jax.random.fold_in(rng, j)
  (s, c), g = jax.value_and_grad(summed, has_aux=True)(trained, micro, key)
  acc_s, acc_c, acc_g = acc
  return acc_s + s, acc_c + c, jax.tree.map(jnp.add, acc_g, g)


def finish_accumulation(acc, params, *, frozen: bool = False):
  """(mean loss, gradients of the full params tree) from the summed micro-batches."""
  total, count, grads = acc
  count = jnp.maximum(count, 1.0)  # an all-padding batch: loss 0, no NaN into the update
  grads = jax.tree.map(lambda g: g / count.astype(g.dtype), grads)
  if frozen and optimizer.EMBEDDING_KEY in params:
    zeros = jax.tree.map(jnp.zeros_like, params[optimizer.EMBEDDING_KEY])
    grads = {**grads, optimizer.EMBEDDING_KEY: zeros}
  return total / count, grads


def _differentiated(params, frozen: bool):
  """(the params that are differentiated, a function adding the constant ones back)."""
  if not (frozen and optimizer.EMBEDDING_KEY in params):
    return params, lambda t: t
  constant = params[optimizer.EMBEDDING_KEY]
  trained = {n: v for n, v in params.items() if n != optimizer.EMBEDDING_KEY}
  return trained, lambda t: {**t, optimizer.EMBEDDING_KEY: constant}


def split_micro_batches(batch: dict, k: int) -> dict:
  """Arrays [b, ...] -> [k, b / k, ...], micro-batch j holding examples j, j + k, j + 2k, ..."""
  return jax.tree.map(lambda x: jnp.swapaxes(_grouped(x, k), 0, 1), batch)


def _grouped(x, k: int):
  """[b, ...] -> [b / k, k, ...]: column j holds micro-batch j."""
  b = x.shape[0]
  if b % k:
    raise ValueError(f'config.train.batch_size per step ({b}) is not a multiple of '
                     f'config.train.grad_accum_steps ({k}); make it one.')
  return x.reshape((b // k, k) + x.shape[1:])


@contextlib.contextmanager
def remat_embedding(chunk: int):
  """Within it, the models' top-level 'embedding' network runs rematerialised in chunks of `chunk`.

  The embedding maps patches [n, frames, bands] -> [n, dim] independently per
  patch, so it is run by `lax.map` over ceil(n / chunk) chunks of a pure
  function of (its parameters, a chunk) wrapped in `jax.checkpoint`. chunk <= 0,
  initialisation, and modules other than the top-level embedding run as usual.
  """
  if int(chunk) <= 0:
    yield
    return

  def interceptor(next_fun, args, kwargs, context):
    module = context.module
    # The model's own child: its parent is a Module whose parent is not (a Scope).
    top_level = (isinstance(module.parent, nn.Module)
                 and not isinstance(module.parent.parent, nn.Module))
    if (context.method_name != '__call__' or module.name != optimizer.EMBEDDING_KEY
        or not top_level or module.is_initializing() or kwargs or len(args) != 1):
      return next_fun(*args, **kwargs)
    return _chunked_remat(module, module.variables, args[0], int(chunk))

  with nn.intercept_methods(interceptor):
    yield


def _chunked_remat(module: nn.Module, variables, patches, chunk: int):
  """module(patches) [n, ...] -> [n, dim], `chunk` patches at a time, each chunk rematerialised."""
  unbound = module.clone(parent=None)

  @jax.checkpoint
  def run(v, x):
    return unbound.apply(v, x)

  n = patches.shape[0]
  chunk = min(chunk, n)
  m = -(-n // chunk)
  padded = jnp.pad(patches, [(0, m * chunk - n)] + [(0, 0)] * (patches.ndim - 1))
  out = jax.lax.map(lambda x: run(variables, x), padded.reshape((m, chunk) + patches.shape[1:]))
  return out.reshape((m * chunk,) + out.shape[2:])[:n]
