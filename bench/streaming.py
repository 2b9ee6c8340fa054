"""Streaming cost per block on one CPU thread: is the live mixer fast enough?

    taskset -c 0 python bench/streaming.py                 # small embedding and VGGish, 8 channels
    taskset -c 0 python bench/streaming.py --models=small --hops=240
    taskset -c 0 python bench/streaming.py --models=musicnn    # musicnn on its 3 s F1 frame

The script pins itself to one CPU (os.sched_setaffinity, as `taskset -c 0`) and
sets XLA_FLAGS=--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1
before JAX starts, so every number is one CPU thread. Parameters are random (a
trained model costs the same). For each model it streams noise for 8 channels
through the jitted `alm_jax.inference.streaming` block step in 50 ms blocks (2205 samples: one
MR F2 frame per block) and times every block, split into

  embed        blocks that complete a group's first F2 frame: the F1-rate
               embedding (or, when spread, its last part) runs there,
               1 block in 6 in MR
  other F2     blocks that complete another F2 frame: the F2-rate stages, plus
               the next F1 frame's layer rows when spread
  no boundary  blocks that complete no F2 frame (only with --block < 2205)

and prints the median / p99 / max wall time per block, the median / p99 / mean
process CPU time per block (on a shared machine the wall time includes time the
process waited for the CPU; CPU time does not), the real-time fraction (mean
CPU time / block duration) and the peak resident memory.
'spread' is the default step (the small embedding's layers computed in equal
row chunks on every boundary as their inputs arrive); 'whole' runs the network
at once on the embedding block. The front end's log-mel rows are computed on
every boundary either way (5 per 50 ms F2 frame in MR).
--block=128 adds small audio-interface blocks, whose deadline is the block's
own 2.9 ms.
"""

import os

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1')
if hasattr(os, 'sched_setaffinity'):
  os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import argparse  # pylint: disable=g-import-not-at-top,wrong-import-position
import resource
import time

from common import REPO, load_config, machine, with_embedding  # pylint: disable=wrong-import-position
import jax
import jax.numpy as jnp
import numpy as np

from alm_jax import frames  # pylint: disable=wrong-import-position
from alm_jax.inference import streaming  # pylint: disable=wrong-import-position
from alm_jax.models import build_mixer  # pylint: disable=wrong-import-position
from alm_jax.models import stepping  # pylint: disable=wrong-import-position
from alm_jax.models import build_model  # pylint: disable=wrong-import-position


def random_params(model, audio, mask, seed=0):
  """Random parameters of the model's shapes (compiling model.init costs more than the bench)."""
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), audio, mask)
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    if leaf.ndim >= 2:
      x = rng.standard_normal(leaf.shape, np.float32) / np.sqrt(np.prod(leaf.shape[:-1]))
    else:
      x = (1.0 if 'scale' in name else 0.25 if 'negative_slope' in name else 0.0) + \
          0.1 * rng.standard_normal(leaf.shape, np.float32)
    return jnp.asarray(x, leaf.dtype)

  return jax.tree_util.tree_map_with_path(draw, shapes)


def run(config, channels, block, hops, spread):
  """Per-block kinds (EMBED, AHEAD, NONE), wall and CPU times."""
  spec = frames.FrameSpec.from_config(config.model)
  model = build_model(config)
  mask = jnp.ones((1, channels), bool)
  params = random_params(model, jnp.zeros((1, channels, spec.f1)), mask)['params']
  mixer = build_mixer(config)
  if not spread:
    mixer.plan = stepping.make_plan(mixer.spec, mixer.front, mixer.row_tiles, spread=False)
  stream = streaming.BlockStream(mixer)
  step = jax.jit(stream.step, donate_argnums=(1,))
  state = stream.init_state(1, channels)
  rng = np.random.default_rng(0)
  blocks = [jnp.asarray(0.1 * rng.standard_normal((1, channels, block), np.float32))
            for _ in range(8)]
  t0 = time.perf_counter()
  state, out, _, _ = step(params, state, blocks[0], mask)  # compile
  jax.block_until_ready(out)
  compile_s = time.perf_counter() - t0
  # Warm up over two whole groups so every branch has run once.
  warm = -(-2 * spec.stride * spec.f2 // block)
  kinds, wall, cpu = [], [], []
  for i in range(warm + hops):
    before = int(state['frame']) % spec.stride
    fill = int(state['fill'])
    w0, c0 = time.perf_counter(), time.process_time()
    state, out, _, _ = step(params, state, blocks[i % len(blocks)], mask)
    jax.block_until_ready(out)
    w1, c1 = time.perf_counter(), time.process_time()
    if i >= warm:
      phases = [(before + k) % spec.stride for k in range((fill + block) // spec.f2)]
      kinds.append(EMBED if 0 in phases else AHEAD if phases else NONE)
      wall.append(w1 - w0)
      cpu.append(c1 - c0)
  return np.array(kinds), np.array(wall), np.array(cpu), compile_s


EMBED, AHEAD, NONE = 0, 1, 2


def row(label, sel, wall, cpu, block_s):
  if not sel.any():
    return f'{label:<12} {"-":>6}'
  w, c = wall[sel] * 1e3, cpu[sel] * 1e3
  return (f'{label:<12} {sel.sum():>6} {np.median(w):>8.2f} {np.percentile(w, 99):>8.2f} '
          f'{w.max():>8.2f} {np.median(c):>8.2f} {np.percentile(c, 99):>8.2f} {c.mean():>8.2f} '
          f'{c.mean() / 1e3 / block_s:>8.1%}')


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default=os.path.join(REPO, 'configs', 'mr.py'))
  parser.add_argument('--models', default='small,vggish', help='comma list: small, vggish, musicnn')
  parser.add_argument('--channels', type=int, default=8)
  parser.add_argument('--hops', type=int, default=120, help='timed blocks for the small embedding')
  parser.add_argument('--vggish_hops', type=int, default=24, help='timed blocks for VGGish and musicnn')
  parser.add_argument('--block', type=int, default=0,
                      help='also time this block size (e.g. 128) with the small embedding')
  args = parser.parse_args()

  print(f'{machine()}; 1 thread pinned to CPU {sorted(os.sched_getaffinity(0))}')
  base = load_config(args.config)
  f2 = frames.FrameSpec.from_config(base.model).f2
  hop_s = f2 / base.model.sample_rate
  print(f'config {os.path.relpath(args.config, REPO)}: F2 = {f2} samples ({hop_s * 1e3:.0f} ms), '
        f'stride {base.model.f1_stride}, {args.channels} channels, batch 1, float32\n')
  header = (f'{"":<12} {"":>6} {"wall ms":>26}  {"CPU ms":>26}\n'
            f'{"":<12} {"blocks":>6} {"median":>8} {"p99":>8} {"max":>8} {"median":>8} {"p99":>8} '
            f'{"mean":>8} {"RT frac":>8}')
  cases = []
  for name in args.models.split(','):
    hops = args.hops if name == 'small' else args.vggish_hops
    cases.append((name, f2, hops, True))
    if name == 'small':
      cases.append((name, f2, hops, False))
  if args.block:
    cases.append(('small', args.block, args.hops * (f2 // args.block), True))
  for name, block, hops, spread in cases:
    config = with_embedding(load_config(args.config), name)
    config.model.encoder.dropout = 0.0
    kinds, wall, cpu, compile_s = run(config, args.channels, block, hops, spread)
    block_s = block / config.model.sample_rate
    print(f'== embedding {name}, block {block} samples ({block_s * 1e3:.1f} ms), network '
          f'{"spread" if spread else "whole"} (compile {compile_s:.1f} s)')
    print(header)
    print(row('embed', kinds == EMBED, wall, cpu, block_s))
    print(row('other F2', kinds == AHEAD, wall, cpu, block_s))
    if (kinds == NONE).any():
      print(row('no boundary', kinds == NONE, wall, cpu, block_s))
    print(row('all blocks', kinds >= 0, wall, cpu, block_s))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f'peak resident memory of the process so far: {peak:.0f} MiB\n')


if __name__ == '__main__':
  main()
