"""`LiveMixer`: the engine, worker, recorder, driver and controls of one show, assembled.

`python -m alm_jax.live` builds one from its flags; tests and bench/live.py
build one directly. `tick` is the main thread's housekeeping (a few times a
second): JACK reconnects, restarting a dead worker, the recorder's info file.
"""

import json
import logging
import math
import time

import numpy as np

from alm_jax import frames
from alm_jax.live import adapter as adapter_lib
from alm_jax.live import controls as controls_lib
from alm_jax.live import drivers
from alm_jax.live import engine as engine_lib
from alm_jax.live import native as native_lib
from alm_jax.live import recorder as recorder_lib


class LiveMixer:
  """One live mixing session.

  Args:
    loaded: the mixer built once (`restore.load_mixer`): mixer, parameters, config.
    channels: input channels.
    names: channel names (default '1'..'c').
    controls: a `Controls` (default: its defaults).
    gain_delay: F2 frames between the frame a gain is predicted from and the
      one it is applied to, beyond the model's own one (>= 1; docs/live.md).
    fault: 'hold' or 'mute' for a channel with NaN/Inf/absurd input.
    absurd_db: peak level (dBFS) above which a frame counts as absurd.
    record: a folder to record the show into, or None: the show goes to a
      new numbered take in it, `record/take-NNN` (`recorder.take_folder`);
      `record_dir` is where.
    overwrite: record into `record` itself, replacing the recording it holds.
    inputs: folders the show reads (--play): `record` may not overlap one.
    adapter: a ready `StepAdapter` (default: built and compiled here).
    rt_priority: SCHED_FIFO priority of the worker (the recorder gets one
      less), 0 for normal scheduling (`engine.set_realtime`).
    callback: 'native' (the C audio callback, rtcore.c), 'python'
      (`Engine.process_python`), or 'auto': native where it is built.
    stereo: mix to two outputs, left and right, with the model's pans (a mono
      model's mix at the centre), or to one (True/False); None: as the model
      does (`Capabilities.stereo`). `mix_outputs` turns --output into it.
  """

  def __init__(self, loaded, channels: int, *, names=None, controls=None,
               gain_delay: int = 1, fault: str = 'hold', absurd_db: float = 40.0, record=None,
               channel_outputs: bool = False, adapter=None, info=None, rt_priority: int = 0,
               callback: str = 'auto', overwrite: bool = False, inputs=(), stereo=None):
    config, params = loaded.config, loaded.params
    max_c = config.model.get('max_channels', None)
    if max_c is not None and channels > max_c:
      raise ValueError(f'{channels} channels but this model mixes at most {max_c} '
                       '(config.model.max_channels): pass fewer --inputs.')
    self.config, self.params = config, params
    # Before the compile: a folder that must not be written is refused at once.
    self.record_dir = (recorder_lib.take_folder(record, overwrite=overwrite, inputs=inputs)
                       if record else None)
    spec = frames.FrameSpec.from_config(config.model)
    self.spec = spec
    self.names = list(names or [str(i + 1) for i in range(channels)])
    self.controls = controls or controls_lib.Controls(channels)
    self.adapter = adapter or adapter_lib.StepAdapter(loaded, channels)
    if adapter is None:
      self.adapter.warm_up()
    self.stereo = self.adapter.stereo if stereo is None else bool(stereo)
    self.engine = engine_lib.Engine(channels, spec.f2, self.controls,
                                    initial_gain=float(config.model.initial_gain),
                                    gain_delay=gain_delay, sample_rate=spec.sample_rate,
                                    channel_outputs=channel_outputs,
                                    native=choose_callback(callback) == 'native',
                                    stereo=self.stereo)
    self._worker_args = dict(absurd=controls_lib.db_to_gain(absurd_db), fault=fault,
                             hold_frames=math.ceil(spec.f1 / spec.f2))
    self.recorder = None
    if self.record_dir is not None:
      self.recorder = recorder_lib.Recorder(self.engine, self.record_dir, self.names, info={
          'channels': channels, 'names': self.names, 'sample_rate': spec.sample_rate,
          'f2': spec.f2, 'gain_delay': gain_delay,
          'mix': 'stereo' if self.stereo else 'mono', 'model_pans': self.adapter.stereo,
          **(info or {})})
    self.rt_priority = rt_priority
    self.worker = self._new_worker(start_frame=0)
    self.driver = None
    self.worker_restarts = 0
    self.memory_locked = False  # lock_memory() succeeded (real-time mode only)
    self.last_message = ''

  def _new_worker(self, start_frame=None):
    on_frame = self.recorder.add_gains if self.recorder else None
    worker = engine_lib.Worker(self.engine, self.adapter, on_frame=on_frame,
                               start_frame=start_frame, **self._worker_args)
    worker.rt_priority = self.rt_priority
    return worker

  def start(self, driver):
    """Starts the worker and recorder threads, then `driver` (a JackDriver is opened here)."""
    self.driver = driver
    self.worker.start()
    self.worker.ready.wait(600)
    if self.rt_priority > 0:
      self.memory_locked = engine_lib.lock_memory()
    if self.recorder:
      self.recorder.rt_priority = max(self.rt_priority - 1, 0)
      self.recorder.start()
    if isinstance(driver, drivers.JackDriver):
      driver.open()
    else:
      driver.start()

  def tick(self):
    """Housekeeping from the main thread; never raises for a fault it can handle."""
    self.driver.poll()
    if not self.worker.is_alive() and self.worker.error is not None:
      err = self.worker.error
      self.worker_restarts += 1
      self.last_message = (f'worker thread died ({err!r}); gains held, model restarted from '
                           'silence (restart %d)' % self.worker_restarts)
      logging.error(self.last_message)
      self.adapter.reset()
      pans = self.worker.pans.copy()
      self.worker = self._new_worker()
      self.worker.previous = self.engine.applied.copy()
      self.worker.pans = pans  # the pans in force stay where they are, as the gains do
      self.worker.start()

  def status(self) -> dict:
    eng, w = self.engine, self.worker
    return {
        'callback': eng.callback,
        'mix': 'stereo' if eng.stereo else 'mono',
        'samples': eng.written, 'periods': eng.periods, 'late': eng.late,
        'late_frames': sorted(int(f) for f in eng.late_frames if f >= 0),
        'xruns': getattr(self.driver, 'xruns', 0),
        'xrun_times_s': list(getattr(self.driver, 'xrun_times', [])), 'nonfinite_periods': eng.nonfinite_periods,
        'limited_periods': eng.limited_periods,
        'callback_max_ms': 1e3 * eng.callback_max_s, 'worker_p99_ms': w.p99_ms(),
        'worker_cpu_share': w.cpu_share, 'worker_restarts': self.worker_restarts,
        'worker_overruns': w.overruns, 'frames': w.frame, 'xla_threads_promoted': w.promoted,
        'memory_locked': self.memory_locked,
        'held': [self.names[i] for i in np.flatnonzero(w.held)],
        'record_lost': self.recorder.lost if self.recorder else 0,
        'first_frame_time': getattr(self.driver, 'first_frame_time', None),
        'driver': getattr(self.driver, 'kind', None),
        'jack_connected': bool(isinstance(self.driver, drivers.JackDriver) and self.driver.connected),
        'controls': self.controls.snapshot(),
    }

  def status_json(self) -> str:
    return json.dumps(self.status())

  def stop(self):
    """Stops the driver, then the worker, then flushes and closes the recording."""
    if self.driver is not None:
      if isinstance(self.driver, drivers.JackDriver):
        self.driver.close()
      else:
        self.driver.stop()
        self.driver.join(timeout=5)
    self.worker.stop()
    self.worker.join(timeout=5)
    if self.recorder:
      self.recorder.write_info(stats=self.status())
      self.recorder.stop()
      self.recorder.join(timeout=10)


CALLBACKS = ('auto', 'native', 'python')


def mix_outputs(destinations) -> bool | None:
  """--output's ports -> `LiveMixer`'s `stereo`: 2 ports stereo (left, right), 1 mono, none: as the model.

  Raises ValueError (one line naming the fix) for more than two.
  """
  n = len(destinations)
  if n > 2:
    raise ValueError(f'--output names {n} ports ({", ".join(destinations)}): the mix has one '
                     'output (mono) or two (left, right). Pass --output=1 or --output=1,2 (or one '
                     'or two port names); each channel on its own port is --channel_outputs.')
  return None if n == 0 else n == 2


def choose_callback(callback: str) -> str:
  """'auto' | 'native' | 'python' -> the audio callback to run ('native' or 'python')."""
  if callback not in CALLBACKS:
    raise ValueError(f'callback={callback!r}: expected one of {", ".join(CALLBACKS)}.')
  if callback == 'python':
    return 'python'
  if native_lib.available():
    return 'native'
  if callback == 'native':
    raise RuntimeError(f'--callback=native: {native_lib.load_error()}, or pass --callback=python.')
  logging.warning('Using the Python audio callback (it needs the GIL every period, so JACK may '
                  'report more xruns): %s.', native_lib.load_error())
  return 'python'


def wait_for(predicate, timeout: float) -> bool:
  return recorder_lib.wait_until(predicate, timeout)


def sleep_ticks(live, seconds: float, stop=None, interval: float = 0.2):
  """Runs `live.tick()` every `interval` for `seconds` (or until `stop()` is true)."""
  end = time.monotonic() + seconds
  while time.monotonic() < end and not (stop and stop()):
    live.tick()
    time.sleep(interval)
