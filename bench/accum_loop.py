r"""The embedding's gradient inside and outside the micro-batch loop: time and XLA buffers.

    python bench/accum_loop.py [--embedding=vggish] [--patches=32] [--accum=4] [--steps=2]

Gradient of sum(embedding(patches) ** 2) over `patches` log-mel patches [n, 96, 64], four ways:
`one batch` (`gradients.loss_and_grads`, accum_steps=1), `scan` (the same call with
accum_steps=k: the micro-batches run in a `lax.scan`, config.train.grad_accum_loop = 'scan'),
`host loop` (`gradients.accumulate_micro_batch` compiled once and called k times, as
grad_accum_loop = 'host' trains) and `unrolled` (the k micro-batches' gradients summed in one
program, for reference). Prints the median step time after compilation and the XLA temporary
buffers of each (the host loop's: its one micro-batch program). It isolates why the paper-shape
VGGish step with the scan did not finish on CPU and what the host loop gives (bench/README.md).
"""

import argparse
import time

import common  # also puts the repository root on sys.path
import jax
import jax.numpy as jnp
import numpy as np

from alm_jax import embeddings
from alm_jax import gradients


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--embedding', default='vggish', choices=('vggish', 'small'),
                 help='config.model.embedding.name (both take 96 x 64 patches)')
  p.add_argument('--patches', type=int, default=32)
  p.add_argument('--accum', type=int, default=4)
  p.add_argument('--steps', type=int, default=2, help='timed steps per variant')
  args = p.parse_args(argv)
  if args.patches % args.accum:
    raise SystemExit(f'error: --patches ({args.patches}) must be a multiple of --accum '
                     f'({args.accum}).')
  config = common.with_embedding(common.load_config('base'), args.embedding)
  module = embeddings.build_embedding(config.model.embedding)
  patches = jnp.asarray(np.random.default_rng(0).standard_normal((args.patches, 96, 64)),
                        jnp.float32)
  params = {'embedding': module.init(jax.random.PRNGKey(0), patches[:1])['params']}
  batch = {'patches': patches}
  rng = jax.random.PRNGKey(1)

  def example_losses(p, b, key):
    del key
    out = module.apply({'params': p['embedding']}, b['patches'])
    return jnp.sum(out.reshape(out.shape[0], -1) ** 2, axis=-1)

  k = args.accum
  one_batch = jax.jit(lambda p, b: gradients.loss_and_grads(example_losses, p, b, rng)[1])
  scanned = jax.jit(lambda p, b: gradients.loss_and_grads(example_losses, p, b, rng,
                                                          accum_steps=k)[1])

  def unrolled_fn(p, b):
    micro = gradients.split_micro_batches(b, k)
    grads = [jax.grad(lambda q, mb: jnp.sum(example_losses(q, mb, None)))(
        p, jax.tree.map(lambda x, j=j: x[j], micro)) for j in range(k)]
    return jax.tree.map(lambda *g: sum(g) / args.patches, *grads)

  unrolled = jax.jit(unrolled_fn)
  add = jax.jit(lambda p, acc, b, j: gradients.accumulate_micro_batch(
      example_losses, p, b, rng, j, acc, accum_steps=k), donate_argnums=(1,))
  finish = jax.jit(lambda acc, p: gradients.finish_accumulation(acc, p)[1])

  def host_loop(p, b):
    acc = gradients.zero_accumulator(p)
    for j in range(k):
      acc = add(p, acc, b, np.int32(j))
    return finish(acc, p)

  acc0 = jax.eval_shape(gradients.zero_accumulator, params)
  host_loop.lower = lambda p, b: add.lower(p, acc0, b, np.int32(0))
  print(f'{common.machine()}\n{args.embedding}: gradient over {args.patches} patches, '
        f'{k} micro-batches where split')
  print('| variant | compile + first s | step s | XLA temp GB |\n|---|---|---|---|')
  for name, fn in (('one batch', one_batch), ('scan', scanned), ('host loop', host_loop),
                   ('unrolled', unrolled)):
    temp = fn.lower(params, batch).compile().memory_analysis().temp_size_in_bytes / 1e9
    t = time.perf_counter()
    jax.block_until_ready(fn(params, batch))
    first = time.perf_counter() - t
    times = []
    for _ in range(args.steps):
      t = time.perf_counter()
      jax.block_until_ready(fn(params, batch))
      times.append(time.perf_counter() - t)
    print(f'| {name} | {first:.1f} | {np.median(times):.2f} | {temp:.3f} |', flush=True)


if __name__ == '__main__':
  main()
