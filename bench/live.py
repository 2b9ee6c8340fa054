"""The live mixer's real-time margins on one CPU core: audio callback and worker, per period and channel count.

    taskset -c 0 python bench/live.py                          # 8/16/32 channels x 64/128/256 periods
    taskset -c 0 python bench/live.py --channels=8,32,48 --seconds=10
    taskset -c 0 python bench/live.py --embedding=musicnn --channels=8,16
    taskset -c 0 python bench/live.py --mix=mono,stereo --channels=16 --periods=128

Pins itself to one CPU and single-threaded XLA (as bench/streaming.py does),
builds an `alm_jax.live.app.LiveMixer` with the small-embedding model of
configs/quickstart.py (random parameters: a trained model costs the same) and
feeds it noise at real-time pace through `drivers.FileDriver`, which calls the
same `Engine.process` the JACK callback calls (the C one, rtcore.c, unless
--callback=python), from a SCHED_FIFO thread when permitted. For each
(channels, period) it reports the callback's worst and p99.9 time per period
as the engine itself measures it (inside the call: what JACK's thread would
spend) and their share of the period, the worker's p99 time per
F2 frame and its share of the 50 ms budget (with --gain_delay=1 a result may
take one F2 frame minus one period), the process's CPU share (in cores: the
step runs on XLA's threads), and late results.
The last line names the largest channel count with no late result.
`--mix=stereo` runs the same model made stereo (config.model.outputs =
('gain', 'pan'), its pans computed by the step) to two outputs: what a stereo
show (`--output=1,2`) adds to the callback (a second bus) and to the worker.
"""

import os

os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                           ' --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1')
if hasattr(os, 'sched_setaffinity'):
  os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})

import argparse  # pylint: disable=g-import-not-at-top,wrong-import-position
import sys

from common import load_config, machine, random_params, with_embedding  # pylint: disable=wrong-import-position
import jax
import numpy as np

from alm_jax.live import adapter as adapter_lib  # pylint: disable=wrong-import-position
from alm_jax.live import app  # pylint: disable=wrong-import-position
from alm_jax.live import drivers  # pylint: disable=wrong-import-position
from alm_jax.live import engine as engine_lib  # pylint: disable=wrong-import-position
from alm_jax import models  # pylint: disable=wrong-import-position


def run_one(config, params, adapter, channels, period, seconds, rt, callback, gain_delay,
            stereo=False):
  sr = int(config.model.sample_rate)
  audio = (0.1 * np.random.default_rng(1).standard_normal((channels, int(seconds * sr)))
           ).astype(np.float32)
  live = app.LiveMixer(models.load(config, params), channels, adapter=adapter, rt_priority=rt,
                       callback=callback, gain_delay=gain_delay, stereo=stereo)
  times = np.zeros(audio.shape[1] // period + 2)
  count = [0]
  eng = live.engine
  process = eng.process

  def timed(inputs, mix, outs=None):
    process(inputs, mix, outs)
    times[count[0]] = eng.callback_last_s
    count[0] += 1

  live.engine.process = timed
  drv = drivers.FileDriver(live.engine, audio, period=period, pace=True)
  drv.rt_priority = rt + 1 if rt else 0
  adapter.reset()
  live.start(drv)
  while not drv.done.wait(0.1):
    live.tick()
  live.stop()
  t = times[5:count[0]]  # the first periods touch fresh pages
  w = live.worker
  n = min(w.frame, w.step_times.shape[0])
  step = w.step_times[2:n]
  period_s, frame_s = period / sr, live.spec.f2 / sr
  return {
      'channels': channels, 'period': period, 'cb_max_ms': 1e3 * t.max(),
      'cb_p999_ms': 1e3 * np.percentile(t, 99.9), 'cb_share': t.max() / period_s,
      'worker_p99_ms': 1e3 * np.percentile(step, 99), 'worker_max_ms': 1e3 * step.max(),
      'worker_share': np.percentile(step, 99) / frame_s, 'cpu_share': w.cpu_share,
      'late': live.engine.late,
  }


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--config', default='quickstart')
  parser.add_argument('--embedding', default='small', help="small, student or musicnn (3 s F1 frame); '': the config's own")
  parser.add_argument('--channels', default='8,16,32')
  parser.add_argument('--periods', default='64,128,256')
  parser.add_argument('--seconds', type=float, default=6.0)
  parser.add_argument('--rt_priority', type=int, default=2)
  parser.add_argument('--callback', default='auto', choices=app.CALLBACKS)
  parser.add_argument('--gain_delay', type=int, default=1,
                      help='F2 frames of compute time per result (alm_jax.live --gain_delay)')
  parser.add_argument('--mix', default='mono', help="mono, stereo or mono,stereo: 'stereo' is "
                      "the model with outputs ('gain', 'pan') to two outputs (--output=1,2)")
  args = parser.parse_args()
  mixes = args.mix.split(',')
  if not mixes or set(mixes) - {'mono', 'stereo'}:
    parser.error(f'--mix={args.mix}: give mono, stereo or mono,stereo')
  jax.config.update('jax_cpu_enable_async_dispatch', False)
  sys.setswitchinterval(0.0005)
  engine_lib.set_realtime(max(args.rt_priority - 1, 0))
  config = with_embedding(load_config(args.config), args.embedding)
  chans = [int(c) for c in args.channels.split(',')]
  config.model.max_channels = max(chans + [int(config.model.max_channels)])
  params = random_params(config)
  if 'stereo' in mixes:
    stereo_config = config.copy_and_resolve_references()
    stereo_config.model.outputs = ('gain', 'pan')
    stereo_params = random_params(stereo_config)
  print(f'# {machine()}; {args.config} ({config.model.embedding.name} embedding, d_model '
        f'{config.model.d_model}); {app.choose_callback(args.callback)} callback; gain delay '
        f'{args.gain_delay} F2 frame(s); '
        f'{args.seconds:g} s per case; one core, XLA single-threaded; '
        f'SCHED_FIFO {"on" if engine_lib.set_realtime(0) or args.rt_priority else "off"}; '
        f'load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs')
  print('| mix | channels | period | callback max (ms) | callback p99.9 (ms) | max / period | '
        'worker p99 (ms) | worker max (ms) | p99 / 50 ms | process CPU | late |')
  print('|---|---|---|---|---|---|---|---|---|---|---|')
  best = 0
  cases = [(m, c) for c in chans for m in mixes]
  for mix, c in cases:
    cfg, prm = (stereo_config, stereo_params) if mix == 'stereo' else (config, params)
    adapter = adapter_lib.StepAdapter(models.load(cfg, prm), c)
    adapter.warm_up()
    ok = True
    for p in [int(p) for p in args.periods.split(',')]:
      r = run_one(cfg, prm, adapter, c, p, args.seconds, args.rt_priority, args.callback,
                  args.gain_delay, stereo=mix == 'stereo')
      ok &= r['late'] == 0
      print(f"| {mix} | {c} | {p} | {r['cb_max_ms']:.3f} | {r['cb_p999_ms']:.3f} | "
            f"{100 * r['cb_share']:.0f}% | {r['worker_p99_ms']:.2f} | {r['worker_max_ms']:.2f} | "
            f"{100 * r['worker_share']:.0f}% | {100 * r['cpu_share']:.1f}% | {r['late']} |",
            flush=True)
    if ok and mix == mixes[-1]:
      best = c
  print(f'\nlargest channel count with no late result ({args.mix}): {best or "none"} (of {chans})')


if __name__ == '__main__':
  main()
