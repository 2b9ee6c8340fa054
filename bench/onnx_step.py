"""Streaming step per block under ONNX Runtime vs JAX, one thread each, same model and blocks.

    python bench/onnx_step.py                                  # ALM-MR, small embedding, 8 channels
    python bench/onnx_step.py --models=small,vggish --blocks=128,441,2205

The script pins itself to one CPU and sets XLA's and ONNX Runtime's thread
counts to 1 (as bench/streaming.py), exports the block stream of
`alm_jax.inference.streaming` with random parameters through
`alm_jax.inference.onnx_export` (the graphs `python -m alm_jax.export
--format=onnx --streaming` writes), then streams the same noise through the
ONNX Runtime session (all graph optimizations, as a plugin host runs it) and
through the jitted JAX step, block by block. It prints, per block size, the
export time, the wall time per block (median, p99, mean) of each, the real-time
fraction (mean CPU time / block duration) and the largest difference between
the two outputs. On a shared machine the wall time includes waiting for the
CPU; the CPU time (this process, one thread) does not.
"""

import os

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1')
if hasattr(os, 'sched_setaffinity'):
  os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import argparse  # pylint: disable=g-import-not-at-top,wrong-import-position
import tempfile
import time

from common import REPO, load_config, machine  # pylint: disable=wrong-import-position
import jax
import jax.numpy as jnp
import numpy as np

from alm_jax import frames  # pylint: disable=wrong-import-position
from alm_jax.inference import onnx_export  # pylint: disable=wrong-import-position
from alm_jax.inference import streaming  # pylint: disable=wrong-import-position
from alm_jax.models import build_mixer  # pylint: disable=wrong-import-position
from alm_jax.models import build_model  # pylint: disable=wrong-import-position
from streaming import random_params  # pylint: disable=wrong-import-position


def session(path):
  import onnxruntime as ort  # pylint: disable=g-import-not-at-top
  options = ort.SessionOptions()
  options.intra_op_num_threads = 1
  options.inter_op_num_threads = 1
  options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
  return ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])


def bench(config, channels, block_sizes, seconds):
  spec = frames.FrameSpec.from_config(config.model)
  mask = np.ones((1, channels), bool)
  params = random_params(build_model(config), jnp.zeros((1, channels, spec.f1)),
                         jnp.asarray(mask))['params']
  stream = streaming.BlockStream(build_mixer(config))
  step = jax.jit(stream.step, donate_argnums=(1,))
  rng = np.random.default_rng(0)
  rows = []
  with tempfile.TemporaryDirectory() as tmp:
    for block in block_sizes:
      t0 = time.perf_counter()
      paths = onnx_export.export_streaming_onnx(stream.init_state, stream.step, params, [block],
                                                tmp, batch=1, channels=channels)
      export_s = time.perf_counter() - t0
      init, sess = session(paths['init_state']), session(paths[f'step_{block}'])
      names = [o.name for o in sess.get_outputs()]
      ort_state = dict(zip([o.name for o in init.get_outputs()], init.run(None, {})))
      jax_state = stream.init_state(1, channels)
      n = max(1, int(seconds * config.model.sample_rate) // block)
      audio = (0.1 * rng.standard_normal((1, channels, n * block))).astype(np.float32)
      t_ort, t_jax, diff = [], [], 0.0  # (wall, CPU) seconds per block
      for i in range(n):
        x = audio[..., i * block:(i + 1) * block]
        w0, c0 = time.perf_counter(), time.process_time()
        res = dict(zip(names, sess.run(None, {'block': x, 'channel_mask': mask, **ort_state})))
        w1, c1 = time.perf_counter(), time.process_time()
        jax_state, out, _, _ = step(params, jax_state, jnp.asarray(x), jnp.asarray(mask))
        out = np.asarray(out)
        w2, c2 = time.perf_counter(), time.process_time()
        ort_state = {k[len('new_'):]: v for k, v in res.items() if k.startswith('new_state_')}
        t_ort.append((w1 - w0, c1 - c0))
        if i:  # the first JAX call compiles
          t_jax.append((w2 - w1, c2 - c1))
        diff = max(diff, float(np.abs(res['out'] - out).max()))
      rows.append((block, export_s, np.array(t_ort) * 1e3, np.array(t_jax) * 1e3, diff))
  return rows


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  parser.add_argument('--config', default=os.path.join(REPO, 'configs', 'mr.py'))
  parser.add_argument('--models', default='small', help='comma list: small, vggish')
  parser.add_argument('--channels', type=int, default=8)
  parser.add_argument('--blocks', default='128,441', help='comma list of block sizes')
  parser.add_argument('--seconds', type=float, default=3.0, help='audio streamed per block size')
  args = parser.parse_args()
  import onnxruntime as ort  # pylint: disable=g-import-not-at-top
  print(f'{machine()}; onnxruntime {ort.__version__}; 1 thread pinned to CPU '
        f'{sorted(os.sched_getaffinity(0))}')
  for name in args.models.split(','):
    config = load_config(args.config)
    config.model.embedding.name = name
    config.model.encoder.dropout = 0.0
    print(f'\n== {os.path.relpath(args.config, REPO)}, embedding {name}, {args.channels} channels, '
          'batch 1, float32')
    print(f'{"":>24} | {"ONNX Runtime: wall ms":>21} {"CPU ms":>14} {"":>7} | '
          f'{"JAX: wall ms":>21} {"CPU ms":>14} {"":>7} |\n'
          f'{"block":>6} {"ms":>6} {"export s":>8} | {"median":>10} {"p99":>10} {"median":>7} '
          f'{"mean":>7} {"RT frac":>7} | {"median":>10} {"p99":>10} {"median":>7} {"mean":>7} '
          f'{"RT frac":>7} | {"max |diff|":>10}')

    def cols(t, block_ms):
      wall, cpu = t[:, 0], t[:, 1]
      return (f'{np.median(wall):>10.3f} {np.percentile(wall, 99):>10.3f} {np.median(cpu):>7.3f} '
              f'{cpu.mean():>7.3f} {cpu.mean() / block_ms:>7.1%}')

    sizes = [int(b) for b in args.blocks.split(',')]
    for block, export_s, o, j, diff in bench(config, args.channels, sizes, args.seconds):
      block_ms = block / config.model.sample_rate * 1e3
      print(f'{block:>6} {block_ms:>6.2f} {export_s:>8.1f} | {cols(o, block_ms)} | '
            f'{cols(j, block_ms)} | {diff:>10.2e}')


if __name__ == '__main__':
  main()
