"""Is the input pipeline the bottleneck? Prints its throughput next to the training step's.

    python bench/input_pipeline.py                                   # quickstart, as configured
    python bench/input_pipeline.py --config=configs/mr.py --model=shrunk \
        --dataset=synthetic_live --batches=4 --steps=2                # MR data path, tiny model
    python bench/input_pipeline.py --config=configs/mr.py --dataset=synthetic_live \
        --no_train --workers=1,2,4,8,15 --batches=32                  # worker scaling

Rates are seconds of multitrack audio (one example = segment_seconds of all its
channels) per wall-clock second; "ch-s/s" counts each channel separately;
"s-audio/cpu-s" per CPU second of the process (all its threads): the rate one
fully used core gives, which times the cores is the most a host can reach.
  input pipeline     make_train_iterator (segment, bleed, levels) with
                     config.data.num_workers = each of --workers (0: built inline
                     in the timing thread; W >= 1: W threads) and prefetch 0;
                     after W + 2 untimed batches, --batches are timed
  bleed conv         the overlap-add convolution alone on the batch shape, numpy/scipy
                     per example vs one jitted JAX call (all c x c paths)
  train step         a jitted forward + backward of build_model(config) on the same
                     batch shape, loss = alm_jax.losses.multi_resolution_stft_loss
                     (or an L2 on the mix where that module is missing)
The pipeline keeps up when its rate exceeds the train step's; with prefetch the two
overlap, so the step time is max(pipeline, train step) on separate cores.
CPU time per batch is printed too: on a shared machine it is the steadier number.
"""

import argparse
import os
import runpy
import tempfile
import time

from common import REPO, load_config, machine
import numpy as np


# A tiny network with the real frame sizes (configs/tiny.py, as the tests use).
shrink_model = runpy.run_path(os.path.join(REPO, 'configs', 'tiny.py'))['shrink']


def timed(fn, repeats):
  """(wall s, cpu s) per call, after one warm-up call."""
  fn()
  wall, cpu = time.perf_counter(), time.process_time()
  for _ in range(repeats):
    fn()
  return (time.perf_counter() - wall) / repeats, (time.process_time() - cpu) / repeats


def bench_pipeline(config, batches, workdir, workers):
  """(first batch, set-up s, (wall s, cpu s) per batch) with `workers` threads."""
  from alm_jax import optimizer  # pylint: disable=g-import-not-at-top
  from alm_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  config.data.prefetch = 0
  config.data.num_workers = workers
  start = time.perf_counter()
  spe = optimizer.steps_per_epoch(config.train, lambda: pipeline.num_train_songs(config))
  it = pipeline.make_train_iterator(config, steps_per_epoch=spe, workdir=workdir)
  first = next(it)
  setup = time.perf_counter() - start
  # Once W batches are in flight, each timed batch starts as one is taken: steady state.
  for _ in range(workers):
    next(it)
  try:
    return first, setup, timed(lambda: next(it), batches)
  finally:
    it.close()


def bench_convolution(config, batch, repeats):
  import jax  # pylint: disable=g-import-not-at-top
  from alm_jax.data import bleed  # pylint: disable=g-import-not-at-top
  from alm_jax.data import rooms  # pylint: disable=g-import-not-at-top
  bank = rooms.bank_for_config(config, config.data.bleed.cache_dir)
  if bank is None:
    return None
  settings = bleed.Settings.from_config(config.data)
  rng = np.random.default_rng(0)
  counts = batch['channel_mask'].sum(axis=1)
  taps = bank.rirs.shape[-1]
  draws = [bleed.draw(rng, int(c), bank, settings) for c in counts]
  audio = batch['audio']

  def numpy_batch():
    for e, d in enumerate(draws):
      bleed.apply_numpy(audio[e, :counts[e]], d)

  def jax_batch():
    jax.block_until_ready(bleed.apply_batch_jax(audio, draws, taps))

  return timed(numpy_batch, repeats), timed(jax_batch, repeats)


def bench_train_step(config, batch, steps):
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from alm_jax.models import build_model  # pylint: disable=g-import-not-at-top
  try:
    from alm_jax.losses import multi_resolution_stft_loss  # pylint: disable=g-import-not-at-top
    loss_name = 'MR-STFT'
  except ImportError:
    multi_resolution_stft_loss, loss_name = None, 'L2'
  model = build_model(config)
  audio, mask, target = (jnp.asarray(batch[k]) for k in ('audio', 'channel_mask', 'target'))
  params = model.init({'params': jax.random.key(0), 'dropout': jax.random.key(1)}, audio, mask)

  def loss_fn(p, key):
    mix = model.apply(p, audio, mask, train=True, rngs={'dropout': key})['mix']
    tgt = target[:, :mix.shape[-1]]
    if multi_resolution_stft_loss is not None:
      return jnp.mean(multi_resolution_stft_loss(mix, tgt, config.loss))
    return jnp.mean((mix - tgt) ** 2)

  step = jax.jit(jax.value_and_grad(loss_fn))
  key = jax.random.key(2)
  compile_start = time.perf_counter()
  jax.block_until_ready(step(params, key))
  compile_s = time.perf_counter() - compile_start
  return loss_name, compile_s, timed(lambda: jax.block_until_ready(step(params, key)), steps)


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--config', default=os.path.join(REPO, 'configs', 'quickstart.py'))
  parser.add_argument('--model', choices=('config', 'shrunk'), default='config',
                      help="'shrunk': tiny network, real frame sizes (for CPU runs of MR/SR)")
  parser.add_argument('--dataset', default='', help="override config.data.name, e.g. "
                      "'synthetic_live' to time MR/SR shapes without MedleyDB")
  parser.add_argument('--data_dir', default='', help='override config.data.data_dir')
  parser.add_argument('--batch_size', type=int, default=0)
  parser.add_argument('--segment_seconds', type=float, default=0.0)
  parser.add_argument('--bank_size', type=int, default=0,
                      help='override config.data.bleed.bank_size (timing does not depend on it)')
  parser.add_argument('--batches', type=int, default=10, help='pipeline batches timed')
  parser.add_argument('--steps', type=int, default=5, help='train steps timed')
  parser.add_argument('--no_train', action='store_true', help='skip the train step')
  parser.add_argument('--workers', default='0,1,2',
                      help='comma list of config.data.num_workers values to time')
  args = parser.parse_args()

  config = load_config(args.config)
  if args.model == 'shrunk':
    shrink_model(config)
  if args.dataset:
    config.data.name = args.dataset
  if args.data_dir:
    config.data.data_dir = args.data_dir
  if args.batch_size:
    config.train.batch_size = args.batch_size
  if args.segment_seconds:
    config.data.segment_seconds = args.segment_seconds
  if args.bank_size:
    config.data.bleed.bank_size = args.bank_size
  workdir = tempfile.mkdtemp(prefix='bench_input_')
  if not config.data.bleed.cache_dir:
    # Reuse one bank across runs rather than re-simulating it in every temp workdir.
    config.data.bleed.cache_dir = os.path.join(
        config.data.data_dir or os.path.expanduser('~/tensorflow_datasets'), 'alm_jax_rir_bank')

  b, seg = int(config.train.batch_size), float(config.data.segment_seconds)
  rows, setup_s, pipe_wall = [], None, None
  bleed_name = config.data.bleed.backend if config.data.bleed.enabled else 'off'
  for workers in (int(w) for w in args.workers.split(',')):
    first, setup, (wall, cpu) = bench_pipeline(config, args.batches, workdir, workers)
    setup_s = setup if setup_s is None else setup_s  # the first run loads songs and the bank
    pipe_wall = wall if pipe_wall is None else min(pipe_wall, wall)
    rows.append((f'input pipeline, {workers} worker{"s" * (workers != 1)} (bleed: {bleed_name})',
                 wall, cpu))
  channels = int(first['channel_mask'].sum())
  conv = bench_convolution(config, first, max(2, args.batches // 2))
  if conv is not None:
    rows.append(('  bleed conv, numpy/scipy', *conv[0]))
    rows.append(('  bleed conv, JAX jit', *conv[1]))
  train = None
  if not args.no_train:
    train = bench_train_step(config, first, args.steps)
    rows.append((f'train step fwd+bwd ({config.model.embedding.name}, {train[0]} loss)',
                 *train[2]))

  print(f'\nMachine: {machine()}')
  print(f'config {os.path.basename(args.config)} (model: {args.model}), data '
        f'{config.data.name}, batch {b} x {config.model.max_channels} ch max '
        f'({channels} active) x {seg:g} s; pipeline setup (load songs, RIR bank) {setup_s:.1f} s'
        + (f'; train step compile {train[1]:.1f} s' if train else ''))
  print(f'{"stage":52s} {"s/batch":>9s} {"cpu s/batch":>11s} {"audio s/s":>10s} '
        f'{"ch-s/s":>9s} {"s-audio/cpu-s":>13s}')
  for name, wall, cpu in rows:
    print(f'{name:52s} {wall:9.3f} {cpu:11.3f} {b * seg / wall:10.1f} '
          f'{channels * seg / wall:9.1f} {b * seg / max(cpu, 1e-9):13.1f}')
  if train is not None:
    verdict = 'is NOT' if pipe_wall < train[2][0] else 'IS'
    print(f'\nThe input pipeline {verdict} the bottleneck: it makes a batch in {pipe_wall:.3f} s, '
          f'the train step uses one in {train[2][0]:.3f} s.')


if __name__ == '__main__':
  main()
