"""The loss and gradients of one training batch: frozen embedding, micro-batches, rematerialisation.

`loss_and_grads(example_losses, params, batch, rng, frozen=..., accum_steps=..., remat_chunk=...)`
gives the mean loss over the real examples and its gradient; `frozen` leaves params['embedding']
undifferentiated, `accum_steps` runs the batch as micro-batches in a `lax.scan`, and
`remat_chunk` rematerialises the embedding a few patches at a time (`remat_embedding`). What each
mode computes and keeps: docs/model.md ("Gradients of one training batch").
"""

import contextlib
from typing import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

from alm_jax import optimizer


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
    accum_steps: micro-batches, k; b must be a multiple of k.
    remat_chunk: patches per rematerialised embedding chunk; 0: off.
  """
  k = int(accum_steps)
  frozen = frozen and optimizer.EMBEDDING_KEY in params
  if frozen:
    constant = params[optimizer.EMBEDDING_KEY]
    trained = {n: v for n, v in params.items() if n != optimizer.EMBEDDING_KEY}
    join = lambda t: {**t, optimizer.EMBEDDING_KEY: constant}
  else:
    trained, join = params, lambda t: t

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

  grad_fn = jax.value_and_grad(summed, has_aux=True)
  if k == 1:
    (total, count), grads = grad_fn(trained, batch, rng)
  else:
    micro = split_micro_batches(batch, k)

    def body(carry, xs):
      j, mb = xs
      (s, c), g = grad_fn(trained, mb, jax.random.fold_in(rng, j))
      acc_s, acc_c, acc_g = carry
      return (acc_s + s, acc_c + c, jax.tree.map(jnp.add, acc_g, g)), None

    zeros = jax.tree.map(jnp.zeros_like, trained)
    init = (jnp.zeros([], jnp.float32), jnp.zeros([], jnp.float32), zeros)
    (total, count, grads), _ = jax.lax.scan(body, init, (jnp.arange(k), micro))
  count = jnp.maximum(count, 1.0)  # an all-padding batch: loss 0, no NaN into the update
  grads = jax.tree.map(lambda g: g / count.astype(g.dtype), grads)
  if frozen:
    grads = {**grads, optimizer.EMBEDDING_KEY: jax.tree.map(jnp.zeros_like, constant)}
  return total / count, grads


def split_micro_batches(batch: dict, k: int) -> dict:
  """Arrays [b, ...] -> [k, b / k, ...], micro-batch j holding examples j, j + k, j + 2k, ..."""

  def split(x):
    b = x.shape[0]
    if b % k:
      raise ValueError(f'config.train.batch_size per step ({b}) is not a multiple of '
                       f'config.train.grad_accum_steps ({k}); make it one.')
    return jnp.swapaxes(x.reshape((b // k, k) + x.shape[1:]), 0, 1)

  return jax.tree.map(split, batch)


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
