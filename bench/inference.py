r"""Offline mixing speed: seconds of audio mixed per second of wall time.

    python bench/inference.py                          # small embedding and VGGish, 8 channels
    python bench/inference.py --embeddings=small --seconds=120 --batch_songs=2

For each embedding, a child process builds the ALM-MR config (configs/mr.py)
with that embedding, random parameters of the right shapes (speed does not
depend on the values), and random audio of `--batch_songs` songs x 8 channels
x `--seconds`, then times `alm_jax.inference.offline.ChunkedMixer` (the function the mixing
CLI runs) in three parts:

* compile: lowering + XLA compilation of the chunk function (once per run);
* mix: wall time of whole mixes after compilation (best and median of
  `--repeats`), from host numpy audio to host numpy results;
* peak memory: the child's peak resident set size (ru_maxrss), which includes
  the Python/JAX/TF runtime (~0.5 GB) besides the buffers.

Speed = batch_songs x seconds / mix time (x real time). The target for the
small embedding is >= 100 s of audio per second on 2 CPU cores. On a shared
machine the load average is printed with the table: numbers measured under
load are lower bounds.
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

from common import load_config, machine, with_embedding
import numpy as np

TARGET_SMALL = 100.0  # s of audio per s, small embedding, 2 CPU cores


def _random_params(model, spec, seed=0):
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 2, spec.f1)),
                          jnp.ones((1, 2), bool))['params']
  rng = np.random.default_rng(seed)

  def draw(leaf):
    fan_in = int(np.prod(leaf.shape[:-1])) if len(leaf.shape) > 1 else 400
    return (rng.standard_normal(size=leaf.shape, dtype=np.float32) / np.sqrt(fan_in))

  return jax.tree.map(draw, shapes)


def child(args) -> dict:
  """Runs one measurement in this process and returns its figures."""
  import jax  # pylint: disable=g-import-not-at-top
  from alm_jax import frames  # pylint: disable=g-import-not-at-top
  from alm_jax import models  # pylint: disable=g-import-not-at-top
  from alm_jax.inference import offline  # pylint: disable=g-import-not-at-top
  from alm_jax.models import build_model  # pylint: disable=g-import-not-at-top

  config = with_embedding(load_config(args.config), args.embedding)
  config.train.compute_dtype = args.dtype
  channels = int(config.model.max_channels)
  spec = frames.FrameSpec.from_config(config.model)
  params = jax.device_put(_random_params(build_model(config), spec))
  mixer = offline.ChunkedMixer(models.load(config, params), args.chunk_seconds)

  n = int(args.seconds * spec.sample_rate)
  rng = np.random.default_rng(1)
  audio = (0.1 * rng.standard_normal((args.batch_songs, channels, n), dtype=np.float32))
  mask = np.ones((args.batch_songs, channels), bool)

  # Compile on its own, with the shapes the mix will use.
  put = lambda x: jax.device_put(x, jax.local_devices()[0])
  state = put(mixer.mixer.init_state(args.batch_songs, channels))
  chunk = put(audio[..., :mixer.chunk_samples])
  t0 = time.perf_counter()
  compiled = mixer._step.lower(put(params), state, chunk, put(mask)).compile()  # pylint: disable=protected-access
  compile_s = time.perf_counter() - t0
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  chunk_audio_s = args.batch_songs * mixer.chunk_samples / spec.sample_rate
  gflop_per_audio_s = float(cost.get('flops', float('nan'))) / 1e9 / chunk_audio_s
  mixer(params, audio[..., :mixer.chunk_samples], mask)  # warm-up: fills jit's dispatch cache

  times, cpu = [], []
  for _ in range(args.repeats):
    t0, c0 = time.perf_counter(), time.process_time()
    out = mixer(params, audio, mask)
    times.append(time.perf_counter() - t0)
    cpu.append(time.process_time() - c0)
  assert out['mix'].shape == (args.batch_songs, n) and np.all(np.isfinite(out['mix']))
  audio_s = args.batch_songs * args.seconds
  return {
      'embedding': config.model.embedding.name, 'dtype': args.dtype, 'channels': channels,
      'batch_songs': args.batch_songs, 'seconds': args.seconds,
      'chunk_samples': mixer.chunk_samples, 'compiles': mixer.num_compiles,
      'compile_s': compile_s, 'best_s': min(times), 'median_s': float(np.median(times)),
      'speed_best': audio_s / min(times), 'speed_median': audio_s / float(np.median(times)),
      'peak_rss_gb': resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20,
      'cpu_s': min(cpu), 'gflop_per_audio_s': gflop_per_audio_s,
      'gflops': gflop_per_audio_s * audio_s / min(times),
      'cores': len(os.sched_getaffinity(0)),
  }


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--embeddings', default='small,vggish',
                 help="comma-separated: small, vggish, student, musicnn; 'config': the config's own")
  p.add_argument('--config', default='mr', help='configs/<name>.py (e.g. alm_mr_staged: the shipped '
                 "recipe's model with --embeddings=config)")
  p.add_argument('--seconds', type=float, default=None,
                 help='seconds per song (default: 60 small, 12 vggish)')
  p.add_argument('--batch_songs', type=int, default=1)
  p.add_argument('--chunk_seconds', type=float, default=9.6)
  p.add_argument('--repeats', type=int, default=3)
  p.add_argument('--dtype', default='float32', help='compute dtype (config.train.compute_dtype)')
  p.add_argument('--child', default=None, help=argparse.SUPPRESS)
  args = p.parse_args()

  if args.child:
    args.embedding = '' if args.child == 'config' else args.child
    print(json.dumps(child(args)))
    return

  rows = []
  for emb in args.embeddings.split(','):
    seconds = args.seconds or (60.0 if emb == 'small' else 12.0)
    cmd = [sys.executable, os.path.abspath(__file__), f'--child={emb}', f'--seconds={seconds}',
           f'--batch_songs={args.batch_songs}', f'--chunk_seconds={args.chunk_seconds}',
           f'--repeats={args.repeats}', f'--dtype={args.dtype}', f'--config={args.config}']
    res = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if res.returncode != 0:
      print(res.stderr[-3000:], file=sys.stderr)
      raise SystemExit(f'{emb}: the measurement failed (exit {res.returncode}).')
    rows.append(json.loads(res.stdout.strip().splitlines()[-1]))

  print(f'Offline mixing, ALM-MR (configs/{args.config}.py), {rows[0]["channels"]} channels, batch {args.batch_songs} song(s), '
        f'chunks of {rows[0]["chunk_samples"]} samples')
  print(f'Machine: {machine()}')
  header = (f'{"embedding":<10}{"audio s":>8}{"compile s":>10}{"mix s":>8}{"CPU s":>8}'
            f'{"x real time":>13}{"x rt, idle*":>13}{"GFLOP/audio s":>15}{"GFLOP/s":>9}'
            f'{"peak RSS GB":>13}{"compiles":>10}')
  print(header)
  print('-' * len(header))
  for r in rows:
    audio_s = r['batch_songs'] * r['seconds']
    # What the same CPU work would take with every core of the process to itself.
    idle = audio_s / (r['cpu_s'] / r['cores'])
    speed = f'{r["speed_best"]:.1f}/{r["speed_median"]:.1f}'
    print(f'{r["embedding"]:<10}{audio_s:>8.1f}{r["compile_s"]:>10.1f}{r["best_s"]:>8.2f}'
          f'{r["cpu_s"]:>8.1f}{speed:>13}{idle:>13.1f}{r["gflop_per_audio_s"]:>15.2f}'
          f'{r["gflops"]:>9.1f}{r["peak_rss_gb"]:>13.2f}{r["compiles"]:>10}')
  print('x real time: best/median wall-clock speed. x rt, idle*: audio seconds per (CPU seconds / '
        'cores), the speed if this process had its cores to itself (an upper estimate on a '
        'loaded machine). GFLOP: XLA cost analysis of the chunk function.')
  for r in rows:
    if r['embedding'] == 'small':
      met = 'MET' if r['speed_best'] >= TARGET_SMALL else 'NOT met'
      print(f'Target >= {TARGET_SMALL:.0f} s of audio per s with the small embedding on 2 cores: '
            f'{met} ({r["speed_best"]:.1f} measured; it needs '
            f'{TARGET_SMALL * r["gflop_per_audio_s"]:.0f} GFLOP/s).')
    if r['embedding'] == 'vggish':
      print(f'VGGish: {1.0 / r["speed_best"]:.2f} s of compute per s of audio '
            f'({100.0 / r["speed_best"]:.0f} % of real time).')


if __name__ == '__main__':
  main()
