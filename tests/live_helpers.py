"""Shared by the live tests and the live benchmarks: a test song, the expected live mix, a JACK server.

The live mixer applies the gains the model predicts on F2 frame t to frame
t + 1 + gain_delay (docs/live.md, "Latency"), so its output equals the offline
zero-latency mix (`alm_jax.inference.offline.mix_arrays`) with the offline gain track
delayed by gain_delay frames; `live_gains` and `apply_gains` compute that (for a
stereo mixer, `offline_outputs` and `apply_stereo`: the pans delayed alike).
`JackServer` starts a private `jackd -d dummy` and keeps its log, whose xrun
lines say whether jackd itself kept time (`JackServer.xruns`).
"""

import collections
import os
import re
import signal
import subprocess
import threading
import time

import jax.numpy as jnp
import numpy as np

from alm_jax import frames
from alm_jax import models
from alm_jax import stereo
from alm_jax.inference import offline
from alm_jax.live import app
from alm_jax.live import controls as controls_lib
from alm_jax.live import drivers

SR = 44100


def song(channels: int, seconds: float, seed: int = 0):
  """A deterministic multitrack: tones with slow level changes and noise, float32 [c, n]."""
  rng = np.random.default_rng(seed)
  n = int(seconds * SR)
  t = np.arange(n) / SR
  freqs = 110.0 * 2 ** (rng.integers(0, 36, channels) / 12)
  level = 0.05 + 0.25 * rng.random(channels)
  env = 0.5 + 0.5 * np.sin(2 * np.pi * (0.2 + 0.3 * rng.random((channels, 1))) * t)
  x = np.sin(2 * np.pi * freqs[:, None] * t) * env + 0.05 * rng.normal(size=(channels, n))
  return (level[:, None] * x).astype(np.float32)


def offline_gains(config, params, audio):
  """[c, T] the gain of each F2 frame in the offline zero-latency mix (mix_arrays)."""
  c = audio.shape[0]
  return offline.mix_arrays(models.load(config, params), audio[None], np.ones((1, c), bool))['gains'][0]


def offline_outputs(config, params, audio):
  """mix_arrays of audio [c, n]: {'gains' [c, T], and for a stereo mixer 'pans' [c, T], ...}."""
  c = audio.shape[0]
  out = offline.mix_arrays(models.load(config, params), audio[None], np.ones((1, c), bool))
  return {k: v[0] for k, v in out.items()}


def apply_stereo(audio, frame_gains, frame_pans, f2: int):
  """`stereo.apply_gains_stereo` (the pan law's one definition) of audio [c, n] with [c, T]
  gains and pans: [2, n]."""
  c, n = audio.shape
  t = frame_gains.shape[1]
  padded = np.zeros((c, t * f2), np.float32)
  padded[:, :min(n, t * f2)] = audio[:, :t * f2]
  spec = frames.FrameSpec(sample_rate=SR, f1=f2, f2=f2, stride=1)
  out = stereo.apply_gains_stereo(jnp.asarray(padded[None]), jnp.asarray(frame_gains[None]),
                                  jnp.asarray(frame_pans[None]), jnp.ones((1, c), bool), spec)
  return np.asarray(out)[0, :, :n]


def live_gains(gains, gain_delay: int = 1):
  """Offline gains [c, T] -> the gains the live mixer applies to each frame [c, T]."""
  idx = np.maximum(np.arange(gains.shape[1]) - gain_delay, 0)
  return gains[:, idx]


def apply_gains(audio, frame_gains, f2: int):
  """Σ_c audio[c, s] * frame_gains[c, s // f2]: [n]."""
  n = audio.shape[1]
  per = np.repeat(frame_gains, f2, axis=1)[:, :n]
  return (audio[:, :per.shape[1]].astype(np.float64) * per).sum(0).astype(np.float32)


def run_lockstep(config, params, audio, *, adapter=None, controls=None, period=128, record=None,
                 before=None, **kwargs):
  """Mixes `audio` through a LiveMixer fed by a FileDriver in lockstep (no JACK, no timing).

  Returns:
    (mix [n] float32 read back from the engine's mix ring ([2, n] for a stereo
    engine), the LiveMixer).
  """
  c, n = audio.shape
  if adapter is not None:
    adapter.reset()
  live = app.LiveMixer(models.load(config, params), c, controls=controls or controls_lib.Controls(
      c, ceiling_db=60.0, slew_db=0.0, limit_db=None), adapter=adapter, record=record, **kwargs)
  drv = drivers.FileDriver(live.engine, audio, period=period, pace=False,
                           worker_frame=lambda: live.worker.frame)
  if before is not None:
    before(live, drv)
  live.start(drv)
  while not drv.done.wait(0.05):
    live.tick()
  mixed = live.engine.read(0, n, mix=True)
  live.stop()
  return mixed, live


# jackd's log lines (jack2 common/JackTimedDriver.cpp, JackEngine.cpp): the dummy driver's own
# timer woke after the next cycle was due (the server itself late), or a client was still
# running when its next cycle began ('was not finished') or ended after that cycle's start.
DRIVER_XRUN = re.compile(r'JackTimedDriver::Process XRun')
CLIENT_LATE = re.compile(r'JackEngine::XRun: client (?:= (\S+) was not finished|(\S+) finished '
                         r'after current callback)')


class JackServer:
  """A private `jackd -d dummy -r 44100 -p PERIOD` (unique name), its log lines kept with their time.

  Raises RuntimeError (with the log's tail) if it does not start in
  `timeout` s; close() ends it by its pid.
  """

  def __init__(self, period: int, name: str | None = None, timeout: float = 20.0):
    import jack  # pylint: disable=g-import-not-at-top  (optional: JACK-Client)
    self.name = name or f'alm_test_{os.getpid()}_{period}_{time.monotonic_ns() % 10**6}'
    self.lines = []  # (time.monotonic(), line)
    env = dict(os.environ, JACK_NO_AUDIO_RESERVATION='1')
    self.proc = subprocess.Popen(['jackd', '-n', self.name, '-d', 'dummy', '-r', str(SR), '-p',
                                  str(period)], env=env, stdout=subprocess.PIPE,
                                 stderr=subprocess.STDOUT, text=True, errors='replace')
    # Read continuously: a full pipe would block jackd itself, and a line's arrival time is
    # what places it in a measured window.
    self._reader = threading.Thread(target=self._read, daemon=True)
    self._reader.start()
    deadline = time.monotonic() + timeout
    jack.set_error_function(lambda message: None)  # each failed attempt prints 'Cannot connect'
    try:
      while True:
        try:
          jack.Client('probe', servername=self.name, no_start_server=True).close()
          break
        except jack.JackError:
          if time.monotonic() > deadline or self.proc.poll() is not None:
            self.close()
            tail = ' | '.join(line for _, line in self.lines[-5:])
            hint = ('; jackd says "Failed to open server": a killed jackd can leave its shared '
                    'memory behind, remove /dev/shm/jack* while no jackd runs' if any(
                        'Failed to open server' in line for _, line in self.lines) else '')
            raise RuntimeError(f'jackd -n {self.name} did not start: {tail}{hint}') from None
          time.sleep(0.1)
    finally:
      jack.set_error_function(None)

  def _read(self):
    for line in self.proc.stdout:
      self.lines.append((time.monotonic(), line.rstrip()))

  def xruns(self, t0: float = -np.inf, t1: float = np.inf):
    """Log lines from t0 to t1 (monotonic s): (driver xruns, {client: late cycles},
    {client: of those, finished after the cycle}, other lines that mention an xrun)."""
    driver, late, after, other = 0, collections.Counter(), collections.Counter(), []
    for t, line in list(self.lines):
      if not t0 <= t <= t1:
        continue
      m = CLIENT_LATE.search(line)
      if DRIVER_XRUN.search(line):
        driver += 1
      elif m:
        name = m.group(1) or m.group(2)
        late[name] += 1
        after[name] += bool(m.group(2))
      elif 'xrun' in line.lower():
        other.append(line)
    return driver, late, after, other

  def close(self):
    stop_process(self.proc)
    self._reader.join(5)


def stop_process(proc, sig=signal.SIGTERM, wait: float = 10.0):
  """Ends `proc` (a Popen of ours) by its pid: `sig`, then SIGKILL after `wait` s."""
  if proc is None or proc.poll() is not None:
    return
  proc.send_signal(sig)
  try:
    proc.wait(wait)
  except subprocess.TimeoutExpired:
    proc.kill()
    proc.wait()
