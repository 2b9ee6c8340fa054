"""Live soak: a long 16-channel show through `alm_jax.live` with hostile OSC traffic and NaN/Inf bursts.

    python bench/soak.py --live                      # 60 min, 16 channels (this file's main)
    python bench/live_soak.py --minutes=5 --channels=16 --record=/tmp/soak

A `LiveMixer` (the small-embedding model of configs/quickstart.py with random
parameters: a trained model costs the same) is fed at real-time pace, period by
period through `Engine.process` (the C callback where built), by a driver that
synthesises the show as it goes (noise under slow envelopes, one second at a
time from a seeded generator, so any second can be made again to check the
recording). Every `--burst_every` seconds a random channel gets a burst of NaN
or Inf (or absurd) samples. A control surface sends `--osc_rate` random OSC
messages a second through a real UDP socket: plausible moves of every control
and, one in three, bad ones (NaN, Inf, out of range, strings, wrong channels,
unknown addresses), with a /alm/status query now and then. Every
`--report_every` seconds a line: late results, worker p99, RSS, refused
messages. At the end the checks: no late result after the first
`--warmup` seconds, RSS flat (growth from the end of the warm-up), every
control in range, the recording valid (every WAV's header covers what was
recorded, finite, the inputs equal to the regenerated show, sanitised where
the bursts were, gains.csv complete). Prints PASS/FAIL per check.
"""

import os
import sys

if 'xla_cpu_multi_thread_eigen' not in os.environ.get('XLA_FLAGS', ''):
  # As `python -m alm_jax.live` does: the step runs on the worker's own thread.
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                             ' --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1')

import argparse  # pylint: disable=g-import-not-at-top,wrong-import-position
import json
import logging
import resource
import shutil
import signal
import subprocess
import tempfile
import threading
import time

from common import load_config, machine, random_params, with_embedding  # pylint: disable=wrong-import-position
import jax
import numpy as np
import soundfile as sf

from alm_jax import models  # pylint: disable=wrong-import-position
from alm_jax.live import app  # pylint: disable=wrong-import-position
from alm_jax.live import controls as controls_lib  # pylint: disable=wrong-import-position
from alm_jax.live import engine as engine_lib  # pylint: disable=wrong-import-position
from alm_jax.live import recorder as recorder_lib  # pylint: disable=wrong-import-position
from alm_jax.live import ui  # pylint: disable=wrong-import-position

SR = 44100


def rss_mib() -> float:
  with open('/proc/self/statm') as f:
    return int(f.read().split()[1]) * resource.getpagesize() / 2**20


def show_second(k: int, channels: int, seed: int) -> np.ndarray:
  """[channels, SR] float32: second k of the show (made again, identical, by the checks)."""
  rng = np.random.default_rng([seed, k])
  t = (k * SR + np.arange(SR)) / SR
  period = 5 + 35 * np.random.default_rng([seed, 10**9]).random((channels, 1))
  env = 0.03 + 0.1 * (1 + np.sin(2 * np.pi * t[None] / period))
  return (rng.standard_normal((channels, SR), np.float32) * env).astype(np.float32)


class SoakDriver(threading.Thread):
  """Feeds the engine `seconds` of the synthetic show in `period`-sample periods at real-time pace, with bursts."""

  def __init__(self, engine, channels, seconds, *, period=128, seed=0, burst_every=20.0):
    super().__init__(name='soak-driver', daemon=True)
    self.engine, self.channels, self.period, self.seed = engine, channels, period, seed
    self.total = int(seconds * SR) // period * period
    rng = np.random.default_rng(seed + 1)
    self.bursts = []  # (start sample, end sample, channel, kind)
    t = 5.0
    while t < seconds - 2:
      a = int(t * SR)
      self.bursts.append((a, a + int(rng.uniform(0.01, 0.5) * SR), int(rng.integers(channels)),
                          str(rng.choice(['nan', 'inf', '-inf', 'absurd']))))
      t += rng.uniform(0.5, 1.5) * burst_every
    self.rt_priority = 0
    self.done = threading.Event()
    self._halt = threading.Event()
    # The show is made ahead by its own thread, so that the feeding thread only copies: a feeder
    # that made each second itself fell behind by up to 100 ms on a loaded machine, and the
    # catch-up compressed time for the worker as a JACK xrun would. The maker runs real-time
    # too (lowest priority): normally scheduled, it was preempted holding the GIL, and the
    # feeder waited for it (as every Python thread of alm_jax.live runs real-time, docs/live.md).
    self._ready, self._cv = {}, threading.Condition()
    self.underruns = 0  # times the feeder waited for the maker
    threading.Thread(target=self._make, name='soak-maker', daemon=True).start()
    self.xruns = 0
    self.connected = False
    self.kind = 'soak driver (no JACK)'
    self.message = 'soak'
    self.max_lag_s = 0.0
    self.lag_events = []

  def poll(self):
    pass

  def stop(self):
    self._halt.set()

  def audio(self, k):
    """Second k with its bursts applied (what the engine is fed)."""
    x = show_second(k, self.channels, self.seed)
    a0 = k * SR
    for a, b, ch, kind in self.bursts:
      lo, hi = max(a, a0), min(b, a0 + SR)
      if lo < hi:
        x[ch, lo - a0:hi - a0] = {'nan': np.nan, 'inf': np.inf, '-inf': -np.inf,
                                  'absurd': 1e6}[kind]
    return x

  def _make(self, ahead=4):
    engine_lib.set_realtime(1)
    for k in range(self.total // SR + 2):
      with self._cv:
        while len(self._ready) >= ahead and not self._halt.is_set():
          self._cv.wait(0.2)
      if self._halt.is_set():
        return
      x = self.audio(k)
      with self._cv:
        self._ready[k] = x
        self._cv.notify_all()

  def _second(self, k):
    with self._cv:
      if k not in self._ready:
        self.underruns += 1
      while k not in self._ready:
        self._cv.wait(0.1)
      return self._ready[k]

  def _drop(self, k):
    with self._cv:
      self._ready.pop(k, None)
      self._cv.notify_all()

  def run(self):
    engine_lib.set_realtime(self.rt_priority)
    eng, n = self.engine, self.period
    mix = np.zeros(n, np.float32)
    t0 = time.monotonic()
    pos, k, cur = 0, -1, None
    while pos < self.total and not self._halt.is_set():
      if pos // SR != k:
        self._drop(k)
        k = pos // SR
        cur = self._second(k)
      a = pos - k * SR
      bufs = list(cur[:, a:a + n]) if a + n <= SR else list(np.concatenate(
          [cur[:, a:], self._second(k + 1)[:, :a + n - SR]], axis=1))
      lag = time.monotonic() - (t0 + pos / SR)
      if lag < 0:
        time.sleep(-lag)
      else:
        self.max_lag_s = max(self.max_lag_s, lag)
        if lag > 0.02 and len(self.lag_events) < 10000:
          self.lag_events.append((pos / SR, lag))  # show time, seconds behind
      eng.process([np.ascontiguousarray(b) for b in bufs], mix)
      pos += n
    self.done.set()
    self._halt.set()


class Surface:
  """The control surface: random OSC traffic over UDP from its own process (bench/osc_surface.py).

  A separate process, as a console or tablet is: in the mixer's process its Python thread
  would compete for the GIL with the real-time threads, which a real show does not have.
  """

  def __init__(self, address, channels, rate, seed=0):
    self.args = [sys.executable, os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                              'osc_surface.py'),
                 f'--host={address[0]}', f'--port={address[1]}', f'--channels={channels}',
                 f'--rate={rate}', f'--seed={seed}']
    self.proc = None
    self.sent = self.bad = self.status_replies = 0

  def start(self):
    self.proc = subprocess.Popen(self.args, stdout=subprocess.PIPE, text=True)

  def stop(self):
    """Stops the traffic and reads the surface's counts."""
    self.proc.send_signal(signal.SIGINT)
    out, _ = self.proc.communicate(timeout=10)
    counts = json.loads(out.strip().splitlines()[-1])
    self.sent, self.bad, self.status_replies = counts['sent'], counts['bad'], counts['replies']


class RefusalCounter(logging.Handler):
  def __init__(self):
    super().__init__(logging.WARNING)
    self.count, self.last = 0, ''

  def emit(self, record):
    if 'refused' in record.getMessage():
      self.count += 1
      self.last = record.getMessage()


def check_recording(folder, driver, written, channels, seed, samples_to_check, rng):
  """The recording's checks: (name, ok, detail) tuples."""
  out = []
  frames_ = {}
  for name in [f'in_{i + 1:02d}.wav' for i in range(channels)] + ['mix.wav']:
    info = sf.info(os.path.join(folder, name))
    frames_[name] = info.frames
  out.append(('every WAV header covers the recording', all(f == written for f in frames_.values()),
              f'{len(frames_)} files, frames {sorted(set(frames_.values()))}, written {written}'))
  # The mix: finite, read in one-minute pieces.
  finite, peak = True, 0.0
  with sf.SoundFile(os.path.join(folder, 'mix.wav')) as fh:
    for block in fh.blocks(blocksize=60 * SR, dtype='float32'):
      finite &= bool(np.isfinite(block).all())
      peak = max(peak, float(np.abs(block).max()) if block.size else 0.0)
  out.append(('mix.wav finite', finite, f'peak {peak:.3f}'))
  # Inputs: random seconds regenerated and compared (the ring holds sanitised samples: 0 for NaN/Inf).
  seconds = written // SR
  picks = sorted(set(rng.integers(0, max(seconds - 1, 1), samples_to_check).tolist()) |
                 {a // SR for a, _, _, _ in driver.bursts if a // SR < seconds - 1})
  bad = []
  for k in picks:
    want = driver.audio(k)
    want[~np.isfinite(want)] = 0.0
    for ch in range(channels):
      got, _ = sf.read(os.path.join(folder, f'in_{ch + 1:02d}.wav'), start=k * SR,
                       frames=SR, dtype='float32')
      if not np.array_equal(got, want[ch]):
        bad.append((k, ch))
  out.append(('inputs equal the show (sanitised)', not bad,
              f'{len(picks)} seconds x {channels} channels compared'
              f'{", mismatches " + str(bad[:5]) if bad else ""}'))
  fr, _, applied, held = recorder_lib.read_gains_csv(os.path.join(folder, 'gains.csv'))
  return out, fr, applied, held


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--minutes', type=float, default=60.0)
  p.add_argument('--channels', type=int, default=16)
  p.add_argument('--period', type=int, default=128)
  p.add_argument('--osc_rate', type=float, default=20.0, help='OSC messages per second')
  p.add_argument('--burst_every', type=float, default=20.0, help='mean seconds between bursts')
  p.add_argument('--warmup', type=float, default=10.0, help='seconds in which late results are allowed')
  p.add_argument('--report_every', type=float, default=60.0)
  p.add_argument('--rt_priority', type=int, default=2)
  p.add_argument('--record', default=None, help='folder for the takes (default: a temporary one, '
                 'removed after the checks)')
  p.add_argument('--seed', type=int, default=0)
  args = p.parse_args(argv)
  logging.basicConfig(level=logging.WARNING, format='%(message)s')
  logging.getLogger().handlers[0].setLevel(logging.ERROR)  # count the refusals, print errors only
  refusals = RefusalCounter()
  logging.getLogger().addHandler(refusals)
  jax.config.update('jax_cpu_enable_async_dispatch', False)
  sys.setswitchinterval(0.0005)
  config = with_embedding(load_config('quickstart'), 'small')
  config.model.max_channels = max(args.channels, int(config.model.max_channels))
  params = random_params(config)
  seconds = args.minutes * 60
  record_root = args.record or tempfile.mkdtemp(prefix='alm_soak_')
  live = app.LiveMixer(models.load(config, params), args.channels, record=record_root,
                       rt_priority=args.rt_priority)
  f2 = live.spec.f2
  drv = SoakDriver(live.engine, args.channels, seconds, period=args.period, seed=args.seed,
                   burst_every=args.burst_every)
  drv.rt_priority = args.rt_priority + 1 if args.rt_priority else 0
  rt = engine_lib.set_realtime(max(args.rt_priority - 1, 0))
  print(f'# {machine()}')
  print(f'# live soak: {args.minutes:g} min x {args.channels} channels, period {args.period}, '
        f'{live.engine.callback} callback, SCHED_FIFO {"on" if rt else "off"}, '
        f'{len(drv.bursts)} NaN/Inf/absurd bursts, OSC {args.osc_rate:g} msg/s (1/3 bad), '
        f'recording to {live.record_dir}', flush=True)
  osc = ui.start_osc(live.controls, live.status_json, '127.0.0.1', 0)
  surface = Surface(osc.server_address, args.channels, args.osc_rate, seed=args.seed)
  t0 = time.monotonic()
  live.start(drv)
  surface.start()
  print(f'# XLA pool threads given the worker\'s real-time priority: {live.worker.promoted}; '
        f'memory locked (mlockall): {live.memory_locked}',
        flush=True)
  rss = []  # (s, MiB)
  next_report = args.report_every
  late_at_warmup = None
  while not drv.done.wait(1.0):
    live.tick()
    now = time.monotonic() - t0
    if late_at_warmup is None and live.engine.written >= args.warmup * SR:
      late_at_warmup = live.engine.late
    rss.append((now, rss_mib()))
    if now >= next_report:
      next_report += args.report_every
      s = live.status()
      late_after = s['late'] - (late_at_warmup or 0)
      print(f'{now / 60:6.1f} min: late {s["late"]} ({late_after} after the warm-up), worker p99 {s["worker_p99_ms"]:.1f} ms, cpu {100 * s["worker_cpu_share"]:.0f}%,'
            f' RSS {rss[-1][1]:.0f} MiB, held {len(s["held"])}, nonfinite periods '
            f'{s["nonfinite_periods"]}, OSC refused {refusals.count}, '
            f'driver lag max {1e3 * drv.max_lag_s:.1f} ms (underruns {drv.underruns}), load {os.getloadavg()[0]:.1f}',
            flush=True)
  surface.stop()
  osc.shutdown()
  live.stop()
  s = live.status()
  late_total = live.engine.late
  late_after_warmup = late_total - (late_at_warmup or 0)
  late_times = sorted(round(float(f) * f2 / SR, 1) for f in live.engine.late_frames if f >= 0)
  # A feeder more than 20 ms behind catches up in a burst, as JACK after an xrun: a late result
  # within a second after one is the feeding's, not the worker's.
  lag_t = np.array([t for t, _ in drv.lag_events])
  after_lag = sum(1 for t in late_times if lag_t.size and ((t - lag_t >= 0) & (t - lag_t < 1.0)).any())
  r = np.array(rss)
  after = r[r[:, 0] >= max(args.warmup, 60.0)]
  growth = float(after[-1, 1] - after[0, 1]) if len(after) > 1 else float('nan')
  slope = (float(np.polyfit(after[:, 0] / 3600, after[:, 1], 1)[0]) if len(after) > 10
           else float('nan'))
  checks = [
      ('no late result after the warm-up', late_after_warmup == 0,
       f'{late_total} late in all, {late_after_warmup} after {args.warmup:g} s, of the last '
       f'{len(late_times)} {after_lag} within 1 s after the feeder fell > 20 ms behind '
       f'({len(drv.lag_events)} times); the last at {late_times[-10:]} s'),
      # A fall is the kernel taking back pages under memory pressure (seen at load 20), not a leak.
      ('RSS flat (no growth)', growth < 50, f'{after[0, 1] if len(after) else 0:.0f} -> '
       f'{after[-1, 1] if len(after) else 0:.0f} MiB from {max(args.warmup, 60.0):g} s to the end '
       f'(growth {growth:+.1f} MiB, fit {slope:+.1f} MiB/h), peak {r[:, 1].max():.0f} MiB'),
  ]
  ctl = live.controls
  in_range = True
  for c in controls_lib.CONTROLS:
    for v in (ctl.snapshot()[c.name] if c.per_channel else [ctl.snapshot()[c.name]]):
      try:
        c.check(v)
      except controls_lib.ControlError:
        in_range = False
  checks.append(('every control in range after the traffic', in_range,
                 f'OSC sent {surface.sent}, of them bad {surface.bad}, refusals logged '
                 f'{refusals.count}, status replies {surface.status_replies}'))
  rec_checks, fr, applied, held = check_recording(
      live.record_dir, drv, s['samples'], args.channels, args.seed, 20,
      np.random.default_rng(args.seed + 3))
  checks += rec_checks
  rows_ok = len(fr) >= s['frames'] - 2 and np.isfinite(applied).all()
  checks.append(('gains.csv complete and finite', bool(rows_ok),
                 f'{len(fr)} rows for {s["frames"]} frames, held rows {int(held.any(1).sum())}'))
  checks.append(('faults contained', s['nonfinite_periods'] > 0 and s['worker_restarts'] == 0,
                 f'{s["nonfinite_periods"]} periods with non-finite input, worker restarts '
                 f'{s["worker_restarts"]}, record lost {s["record_lost"]} samples'))
  print(f'\nsummary: {s["samples"] / SR / 60:.1f} min mixed; late {late_total}; worker p99 '
        f'{s["worker_p99_ms"]:.1f} ms (last minute), callback max {s["callback_max_ms"]:.3f} ms; '
        f'driver max lag {1e3 * drv.max_lag_s:.1f} ms, source underruns {drv.underruns}; '
        f'{len(drv.bursts)} bursts')
  for name, ok, detail in checks:
    print(f'{"PASS" if ok else "FAIL"}  {name}: {detail}')
  print(json.dumps({'ok': all(ok for _, ok, _ in checks), 'late': late_total,
                    'late_after_warmup': late_after_warmup, 'rss_growth_mib': growth,
                    'rss_slope_mib_per_h': slope}))
  if args.record is None:
    shutil.rmtree(record_root, ignore_errors=True)
  return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == '__main__':
  sys.exit(main())
