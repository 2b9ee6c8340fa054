"""The real-time core: the audio callback's work (`Engine.process`) and the worker thread (`Worker`).

The callback copies each period into a ring buffer of the inputs and mixes it
with the gains already published for the current F2 frame; the worker runs the
streaming step on each completed F2 frame and publishes the gains of a later
frame. They share preallocated arrays only: each index has one writer (the
callback writes `written`, the worker writes a slot and then its stamp), so no
lock is taken and the callback never waits. Timing, fault handling and the
gain delay are explained in docs/live.md. A stereo engine (two mix outputs,
`--output=L,R`) also publishes a pan per channel beside each gain and mixes a
left and a right bus with `alm_jax.stereo`'s pan law.
"""

import ctypes
import ctypes.util
import gc
import os
import threading
import time

import numpy as np

from alm_jax import stereo as stereo_lib
from alm_jax.live import controls as controls_lib
from alm_jax.live import native as native_lib

def set_realtime(priority: int) -> bool:
  """Gives the calling thread SCHED_FIFO `priority` (0: leave it); False where not permitted.

  The audio callback needs the GIL: a Python thread of this process that holds
  it and is preempted by another process would stall the callback, so every
  thread here runs just below JACK's real-time priority.
  """
  if priority <= 0 or not hasattr(os, 'sched_setscheduler'):
    return False
  try:
    os.sched_setscheduler(0, os.SCHED_FIFO, os.sched_param(priority))
    return True
  except OSError:
    return False


# XLA:CPU's intra-op thread pool: the step hands work to these threads (even with
# --xla_cpu_multi_thread_eigen=false) and waits for it, so a worker with real-time
# priority waits behind whatever the machine runs if they are normally scheduled.
XLA_POOL_THREADS = ('tf_XLAEigen',)


def promote_threads(prefixes, priority: int) -> int:
  """Gives this process's threads whose name starts with one of `prefixes` SCHED_FIFO `priority`.

  Returns how many were promoted (0 where not permitted or priority <= 0).
  Measured (bench/live_soak.py, load average 20 on 2 cores): XLA's two pool
  threads spent 94 % of their time waiting to run while the real-time worker
  waited for them, and results were late.
  """
  if priority <= 0 or not hasattr(os, 'sched_setscheduler'):
    return 0
  count = 0
  for task in os.listdir('/proc/self/task'):
    try:
      with open(f'/proc/self/task/{task}/comm', encoding='utf-8') as fh:
        name = fh.read().strip()
      if name.startswith(tuple(prefixes)):
        os.sched_setscheduler(int(task), os.SCHED_FIFO, os.sched_param(priority))
        count += 1
    except (OSError, ValueError):
      continue  # the thread ended, or no rights
  return count


def lock_memory() -> bool:
  """Locks the pages this process holds now in RAM (mlockall); False where not permitted.

  A page of the model or of the ring that the kernel reclaimed must be read back
  when the worker next touches it: the soak's longest stall (715 ms at load 20)
  was such a reclaim. Called once the step has run (its buffers exist). Not
  MCL_FUTURE: it makes every later allocation fault in and zero all its pages
  at once, which put the worker's p99 from about 6 to 22 ms. Needs root or a
  large enough RLIMIT_MEMLOCK.
  """
  name = ctypes.util.find_library('c')
  if not name or not hasattr(os, 'sched_setscheduler'):
    return False
  libc = ctypes.CDLL(name, use_errno=True)
  mcl_current = 1  # <sys/mman.h> on Linux
  return libc.mlockall(mcl_current) == 0


NUM_SLOTS = 8  # published gain frames kept: the worker overwrites a slot NUM_SLOTS frames later
MAX_PERIOD = 8192  # largest JACK period handled (samples)


class Engine:
  """The state shared by the audio callback, the worker, the recorder and the UI.

  Attributes (the ones other threads read):
    written: samples received so far (the callback is its only writer).
    ring: [c, ring_size] float32 the latest inputs (sanitised: NaN/Inf -> 0).
    buses: 1 (a mono mix) or 2 (left and right: a stereo engine).
    mix_ring: [ring_size] (mono) or [2, ring_size] (stereo) float32 the latest
      mix output (after the limiter).
    applied: [c] float32 the gains the callback applies now.
    amp: [2, c] float32 the pan-law amplitudes (left, right) the callback
      applies now (stereo; `stereo.pan_law` of the published pans).
    late: F2 frames whose gains were not published in time (last gains held).
    bad_frame: [c] int64 the last F2 frame in which the callback saw a
      non-finite sample on the channel (-1: never).
    callback_max_s, callback_last_s: time spent in `process`.

  The scalars the callback writes live in two small arrays (`counters`,
  `values`; indices in `native.py`) so that the C callback (`rtcore.c`) and
  `process_python` share one state: `native=True` makes `process` the C one.
  `stereo=True` makes the mix two buses: `process` then takes a [2, n] array
  (or a pair of [n] arrays, the JACK port buffers) where a mono engine takes [n].
  """

  def __init__(self, channels: int, f2: int, controls: controls_lib.Controls, *,
               initial_gain: float = 1.0, gain_delay: int = 1, ring_seconds: float = 4.0,
               sample_rate: int = 44100, channel_outputs: bool = False, native: bool = False,
               stereo: bool = False):
    if gain_delay < 1:
      raise ValueError(f'gain_delay={gain_delay}: the gains of F2 frame t are only known when '
                       'frame t - 1 has ended, so a live mixer needs gain_delay >= 1 '
                       '(docs/live.md, "Latency").')
    c = self.channels = int(channels)
    self.f2, self.gain_delay, self.sample_rate = int(f2), int(gain_delay), int(sample_rate)
    size = max(int(ring_seconds * sample_rate), 4 * f2 + MAX_PERIOD)
    self.ring_size = size
    self.ring = np.zeros((c, size), np.float32)
    self.buses = 2 if stereo else 1
    self.mix_ring = np.zeros((size,) if self.buses == 1 else (2, size), np.float32)
    self.counters = np.zeros(native_lib.NUM_COUNTERS, np.int64)
    self.values = np.zeros(native_lib.NUM_VALUES, np.float64)
    self.controls = controls
    controls.engine = self
    ceiling = controls_lib.db_to_gain(controls.ceiling_db)
    self.applied = np.full(c, min(initial_gain, ceiling), np.float32)
    self.chan_mult = np.ones(c, np.float32)
    for ctl in controls_lib.CONTROLS:  # what the callback reads of each control, from its table entry
      if ctl.callback is not None:
        self.control_changed(ctl)
    self.limiter_gain = 1.0
    self.values[native_lib.TAU] = max(controls.release_ms, 1.0) * 1e-3 * self.sample_rate
    self.channel_outputs = channel_outputs
    # Published gains: slot f % NUM_SLOTS holds frame f's gains once stamp[slot] == f.
    self.slot_gains = np.zeros((NUM_SLOTS, c), np.float32)
    self.slot_stamp = np.full(NUM_SLOTS, -1, np.int64)
    # Stereo: the pan-law amplitudes of each published frame, and those in force (the centre
    # until a frame is published, as a stereo mixer's initial state). Allocated in mono too:
    # the C struct points at them either way.
    centre = np.asarray(stereo_lib.pan_law(np.full(c, stereo_lib.CENTRE, np.float32)), np.float32)
    self.slot_amps = np.broadcast_to(centre, (NUM_SLOTS, 2, c)).copy()
    self.amp = centre.copy()
    self.bus = np.zeros((2, c), np.float32)  # gm * amp: each channel's gain to the left, right
    self.bus_first = np.zeros((2, c), np.float32)
    self.bad_frame = np.full(c, -1, np.int64)
    self.late_frames = np.full(256, -1, np.int64)  # the frames of the last 256 late results
    self.counters[[native_lib.LAST_LATE, native_lib.FRAME, native_lib.FIRST_TIME]] = -1
    self.gm = np.zeros(c, np.float32)  # applied * chan_mult
    self.gm_first = np.zeros(c, np.float32)  # a period's first part's gm when it crosses a frame
    self.x = np.zeros((c, MAX_PERIOD), np.float32)
    self._abs = np.zeros(MAX_PERIOD, np.float32)
    self.native = native_lib.NativeEngine(self) if native else None
    self.process = self.native.process if native else self.process_python

  # ---- the scalars in `counters` and `values` ----

  def _counter(i, doc):  # pylint: disable=no-self-argument
    return property(lambda self: int(self.counters[i]), doc=doc)

  def _value(i, doc):  # pylint: disable=no-self-argument
    def set_value(self, v):
      self.values[i] = v
    return property(lambda self: float(self.values[i]), set_value, doc=doc)

  written = _counter(native_lib.WRITTEN, 'Samples received so far (the callback is the only writer).')
  late = _counter(native_lib.LATE, 'F2 frames whose gains were not published in time.')
  last_late_frame = _counter(native_lib.LAST_LATE, 'The last late frame (-1: none).')
  periods = _counter(native_lib.PERIODS, 'Periods processed.')
  nonfinite_periods = _counter(native_lib.NONFINITE, 'Periods with a non-finite input sample.')
  limited_periods = _counter(native_lib.LIMITED, 'Periods in which the limiter engaged.')
  oversize_periods = _counter(native_lib.OVERSIZE, 'Periods longer than MAX_PERIOD (silenced).')
  master = _value(native_lib.MASTER, 'Master gain (linear), applied in the callback.')
  limit = _value(native_lib.LIMIT, "The limiter's threshold (linear peak; inf: off).")
  limiter_gain = _value(native_lib.LIMITER_GAIN, "The limiter's gain in the last period.")
  callback_max_s = _value(native_lib.CB_MAX, 'Longest time spent in `process`.')
  callback_last_s = _value(native_lib.CB_LAST, 'Time spent in the last `process`.')
  del _counter, _value

  @property
  def callback(self) -> str:
    """'native' (rtcore.c) or 'python': which implementation `process` is."""
    return 'python' if self.native is None else 'native'

  @property
  def first_frame_time(self) -> int | None:
    """JACK frame time of the first period a JACK callback processed (None: none yet)."""
    t = int(self.counters[native_lib.FIRST_TIME])
    return None if t < 0 else t

  def control_changed(self, ctl: controls_lib.Control, ch: int | None = None):
    """Puts control `ctl`'s value (of channel `ch`, or every channel) where the audio callback reads it.

    Per-channel controls with a callback multiply into `chan_mult`; global ones
    go to their slot of `values` (`native.VALUE`, derived from the table).
    """
    if ctl.per_channel:
      for c in range(self.channels) if ch is None else (ch,):
        self.chan_mult[c] = self.controls.chan_mult(c)
    else:
      self.values[native_lib.VALUE[ctl.name]] = ctl.callback(getattr(self.controls, ctl.attr))

  # ---- called by the worker ----

  @property
  def stereo(self) -> bool:
    return self.buses == 2

  def publish(self, frame: int, gains, pans=None):
    """Makes `gains` [c] (and on a stereo engine `pans` [c], finite) those of F2 frame `frame`.

    The worker's only write. The pan law is evaluated here, outside the audio
    callback, with `stereo.pan_law` (its one definition): the callbacks only
    multiply by the amplitudes.
    """
    slot = frame % NUM_SLOTS
    self.slot_gains[slot] = gains
    if self.buses == 2:
      if pans is None:
        raise ValueError('a stereo engine needs the pans of each frame it publishes')
      left, right = stereo_lib.pan_law(np.asarray(pans, np.float32))
      self.slot_amps[slot, 0] = left
      self.slot_amps[slot, 1] = right
    self.slot_stamp[slot] = frame  # after the data: the callback checks the stamp first

  # ---- the audio callback ----

  def _load(self, frame: int):
    slot = frame % NUM_SLOTS
    k = self.counters
    if self.slot_stamp[slot] == frame:
      np.copyto(self.applied, self.slot_gains[slot])
      if self.buses == 2:
        np.copyto(self.amp, self.slot_amps[slot])
    elif frame > self.gain_delay:  # frames up to gain_delay have the initial gain by design
      self.late_frames[k[native_lib.LATE] % self.late_frames.shape[0]] = frame
      k[native_lib.LATE] += 1
      k[native_lib.LAST_LATE] = frame
    k[native_lib.FRAME] = frame
    self._gains_now()

  def _gains_now(self):
    """gm = applied x chan_mult (and the buses' gm x amp): what this period applies."""
    np.multiply(self.applied, self.chan_mult, out=self.gm)
    if self.buses == 2:
      np.multiply(self.gm, self.amp, out=self.bus)

  def _mix(self, gm, bus, x, mixes, outs, a: int, b: int):
    if self.buses == 1:
      np.dot(gm, x[:, a:b], out=mixes[0][a:b])
    else:  # left and right: Σ_c gm[c] · pan_law(pan[c])[side] · x[c]
      for side, mix in enumerate(mixes):
        np.dot(bus[side], x[:, a:b], out=mix[a:b])
    if outs is not None:  # the gained channels, unpanned (--channel_outputs)
      for ch, out in enumerate(outs):
        np.multiply(x[ch, a:b], gm[ch], out=out[a:b])

  def _mix_period(self, x, mixes, outs, split: int):
    n = mixes[0].shape[0]
    if split >= n:
      self._mix(self.gm, self.bus, x, mixes, outs, 0, n)
    else:
      self._mix(self.gm_first, self.bus_first, x, mixes, outs, 0, split)
      self._mix(self.gm, self.bus, x, mixes, outs, split, n)

  def buses_of(self, mix):
    """A `process` mix argument -> the tuple of its buses' [n] arrays (checked)."""
    if self.buses == 1:
      if getattr(mix, 'ndim', 0) != 1:
        raise ValueError(f'a mono engine mixes into one [n] array, got {getattr(mix, "shape", mix)}')
      return (mix,)
    mixes = tuple(mix)
    if len(mixes) != 2 or any(m.ndim != 1 or m.shape != mixes[0].shape for m in mixes):
      raise ValueError('a stereo engine mixes into a [2, n] array or a pair of [n] arrays (left, '
                       'right)')
    return mixes

  def process_python(self, inputs, mix, outs=None):
    """One period: inputs -> ring, mix (and per-channel gained outputs); rtcore.c's `alm_process`.

    Args:
      inputs: c arrays [n] float32 (the JACK port buffers).
      mix: [n] float32 array the mix is written into; on a stereo engine a
        [2, n] array or a pair of [n] arrays (left, right).
      outs: None or c arrays [n] the gained channels are written into.
    """
    t0 = time.perf_counter()
    k, v = self.counters, self.values
    mixes = self.buses_of(mix)
    n = mixes[0].shape[0]
    if n > MAX_PERIOD:
      for m in mixes:
        m[:] = 0.0
      for out in outs or ():
        out[:] = 0.0
      k[native_lib.OVERSIZE] += 1
      return
    if n != k[native_lib.PERIOD]:
      v[native_lib.RELEASE] = np.exp(n / v[native_lib.TAU])
      k[native_lib.PERIOD] = n
    x = self.x[:, :n]
    for ch in range(self.channels):
      np.copyto(x[ch], inputs[ch])
    s0 = int(k[native_lib.WRITTEN])
    frame = s0 // self.f2
    if frame != k[native_lib.FRAME]:
      self._load(frame)
    else:  # a mute changed since the frame began acts from this period
      self._gains_now()
    split = (frame + 1) * self.f2 - s0  # samples left in this F2 frame
    if split < n:
      np.copyto(self.gm_first, self.gm)
      np.copyto(self.bus_first, self.bus)
      self._load(frame + 1)
    self._mix_period(x, mixes, outs, split)
    total = sum(m.sum() for m in mixes)
    if not np.isfinite(total):
      self._sanitise(x, mixes, outs, s0, split)
    # Master gain and limiter: one gain per period for both sides (the image stays where the
    # model put it), attack within the period.
    g = np.float32(v[native_lib.MASTER])
    if g != 1.0:
      for m in mixes:
        np.multiply(m, g, out=m)
    peak = max(float(np.abs(m, out=self._abs[:n]).max()) for m in mixes)
    lim = min(1.0, float(v[native_lib.LIMITER_GAIN] * v[native_lib.RELEASE]))
    if peak * lim > v[native_lib.LIMIT]:
      lim = float(v[native_lib.LIMIT]) / peak
      k[native_lib.LIMITED] += 1
    v[native_lib.LIMITER_GAIN] = lim
    if lim < 1.0:
      for m in mixes:
        np.multiply(m, np.float32(lim), out=m)
    self._write(x, mixes, s0, n)
    k[native_lib.WRITTEN] = s0 + n  # publish last: readers only read samples before `written`
    k[native_lib.PERIODS] += 1
    dt = time.perf_counter() - t0
    v[native_lib.CB_LAST] = dt
    if dt > v[native_lib.CB_MAX]:
      v[native_lib.CB_MAX] = dt

  def _sanitise(self, x, mixes, outs, s0, split):
    """Rare path: a non-finite sample reached the mix. Zero it, note the channel, mix again."""
    self.counters[native_lib.NONFINITE] += 1
    bad = ~np.isfinite(x).all(axis=1)
    frame = s0 // self.f2
    self.bad_frame[bad] = frame + (1 if split < mixes[0].shape[0] else 0)
    np.nan_to_num(x, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
    self._mix_period(x, mixes, outs, split)
    for m in mixes:
      np.nan_to_num(m, copy=False, nan=0.0, posinf=0.0, neginf=0.0)

  def _write(self, x, mixes, s0, n):
    size = self.ring_size
    p = s0 % size
    first = min(n, size - p)
    rings = (self.mix_ring,) if self.buses == 1 else self.mix_ring
    self.ring[:, p:p + first] = x[:, :first]
    for ring, mix in zip(rings, mixes):
      ring[p:p + first] = mix[:first]
    if first < n:
      self.ring[:, :n - first] = x[:, first:]
      for ring, mix in zip(rings, mixes):
        ring[:n - first] = mix[first:]

  # ---- readers (worker, recorder) ----

  def read(self, start: int, n: int, out=None, mix: bool = False):
    """Samples [start, start + n) of the inputs ([c, n]) or of the mix ([n], stereo [2, n]).

    The caller checks they are still in the ring.
    """
    size = self.ring_size
    src = self.mix_ring if mix else self.ring
    if out is None:
      out = np.empty(src.shape[:-1] + (n,), np.float32)
    p = start % size
    first = min(n, size - p)
    out[..., :first] = src[..., p:p + first]
    if first < n:
      out[..., first:] = src[..., :n - first]
    return out


class Worker(threading.Thread):
  """Runs the streaming step on each completed F2 frame and publishes the gains of frame k + 1 + gain_delay.

  On a stereo engine it publishes the pans of that frame beside the gains (a
  mono model's are the centre, 0).

  Attributes (read by the UI):
    frame: F2 frames processed.
    predicted: [c] the model's last gains.
    predicted_pans: [c] the model's last pans (0 for a mono model).
    pans: [c] the pans last published (`Controls.apply_pans`: finite, held
      through a fault).
    held: [c] bool channels in a fault hold.
    levels_db: [c] RMS of the last frame per channel, dBFS; mix_db the mix's.
    cpu_share: the process's CPU time over the last second / wall time, in
      cores: XLA runs the step on its own threads, so the worker thread's own
      CPU time misses most of it (the callback, recorder and UI add little).
    step_times: recent per-frame compute times (s), for p99.
    error: the exception that ended the thread, if any.
  """

  def __init__(self, engine: Engine, adapter, *, absurd: float = 100.0, fault: str = 'hold',
               hold_frames: int = 20, on_frame=None, start_frame: int | None = None):
    super().__init__(name='alm-live-worker', daemon=True)
    if fault not in ('hold', 'mute'):
      raise ValueError(f"--fault must be 'hold' or 'mute', got {fault!r}.")
    self.engine, self.adapter = engine, adapter
    c = engine.channels
    self.absurd, self.fault_mute, self.hold_frames = float(absurd), fault == 'mute', int(hold_frames)
    self.on_frame = on_frame
    self.frame = engine.written // engine.f2 if start_frame is None else start_frame
    self.predicted = np.full(c, adapter.initial_gain, np.float32)
    self.previous = engine.applied.copy()
    self.predicted_pans = np.zeros(c, np.float32)
    self.pans = np.full(c, stereo_lib.CENTRE, np.float32)  # a stereo mixer's initial pans
    self.last_bad = np.full(c, -10**9, np.int64)
    self.held = np.zeros(c, bool)
    self.levels_db = np.full(c, -120.0)
    self.mix_db = -120.0
    self.cpu_share = 0.0
    self.step_times = np.zeros(1200)  # one minute of frames
    self.overruns = 0
    self.error = None
    self._block = np.zeros((c, engine.f2), np.float32)
    self._mixblock = np.zeros(engine.mix_ring.shape[:-1] + (engine.f2,), np.float32)
    self._halt = threading.Event()
    self.fail_after = None  # tests: raise in the thread after this frame
    self.rt_priority = 0
    self.promoted = 0  # XLA pool threads given the worker's priority
    self.ready = threading.Event()  # set once the step has run on this thread

  def stop(self):
    self._halt.set()

  def run(self):
    set_realtime(self.rt_priority)
    try:
      # JAX's first call of a jitted function on a new thread costs extra
      # (thread-local caches): pay it here, before any frame is due.
      self.adapter.warm_up()
      # The step waits on XLA's pool threads (made by now): they get the worker's priority.
      self.promoted = promote_threads(XLA_POOL_THREADS, self.rt_priority)
      if self.rt_priority > 0:
        # Everything made so far (modules, the jitted step) lives for the show: moved out of the
        # collector's view, a full collection started by any thread no longer walks it while
        # holding the GIL the callback and the worker need.
        gc.freeze()
      self.ready.set()
      self._loop()
    except Exception as e:  # pylint: disable=broad-except
      self.error = e  # the main thread reports it and starts a new worker
    finally:
      self.ready.set()

  def _loop(self):
    eng, f2 = self.engine, self.engine.f2
    cpu0, wall0 = time.process_time(), time.monotonic()
    while not self._halt.is_set():
      k = self.frame
      if eng.written < (k + 1) * f2:
        time.sleep(0.001)
        continue
      if eng.written - k * f2 > eng.ring_size - 2 * f2:
        # Fell behind by a whole ring (a stall): restart the model from now.
        self.overruns += 1
        self.adapter.reset()
        self.frame = eng.written // f2
        continue
      t0 = time.perf_counter()
      self._frame(k)
      self.step_times[k % self.step_times.shape[0]] = time.perf_counter() - t0
      self.frame = k + 1
      if self.fail_after is not None and k >= self.fail_after:
        raise RuntimeError(f'worker stopped on request after frame {k} (test hook)')
      wall = time.monotonic() - wall0
      if wall >= 1.0:
        self.cpu_share = (time.process_time() - cpu0) / wall
        cpu0, wall0 = time.process_time(), time.monotonic()

  def _frame(self, k: int):
    eng, block = self.engine, self._block
    eng.read(k * eng.f2, eng.f2, out=block)
    eng.read(k * eng.f2, eng.f2, out=self._mixblock, mix=True)
    # Guard before the step: a non-finite or absurd channel is zeroed and left
    # out for this frame, so the model's state never sees it.
    peak = np.abs(block).max(axis=1)
    bad = ~(peak <= self.absurd) | (eng.bad_frame >= k)
    mask = ~bad
    if bad.any():
      block[bad] = 0.0
      self.last_bad[bad] = k
      if not mask.any():
        mask[:] = True  # all bad: feed silence rather than an empty stream
    pred, pred_pans = self.adapter.step(block, mask)
    if not (np.isfinite(pred).all() and np.isfinite(pred_pans).all()):
      self.adapter.reset()  # defence in depth: a state gone bad is restarted
    self.held = (k - self.last_bad) < self.hold_frames
    applied = eng.controls.apply(pred, self.previous, self.held, self.fault_mute)
    pans = eng.controls.apply_pans(pred_pans, self.pans, self.held)
    eng.publish(k + 1 + eng.gain_delay, applied, pans)
    self.predicted = np.where(np.isfinite(pred), pred, 0.0).astype(np.float32)
    self.predicted_pans = np.where(np.isfinite(pred_pans), pred_pans, 0.0).astype(np.float32)
    self.previous, self.pans = applied, pans
    rms = np.sqrt(np.mean(np.square(block, dtype=np.float64), axis=1))
    self.levels_db = controls_lib.gain_to_db(rms)
    self.mix_db = float(controls_lib.gain_to_db(np.sqrt(np.mean(np.square(self._mixblock)))))
    if self.on_frame is not None:
      self.on_frame(k + 1 + eng.gain_delay, self.predicted, applied, self.held,
                    self.predicted_pans, pans)

  def p99_ms(self) -> float:
    n = min(self.frame, self.step_times.shape[0])
    return float(np.percentile(self.step_times[:n], 99) * 1e3) if n else 0.0
