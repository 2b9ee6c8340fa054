"""Shared by the live tests and bench/live.py: a tiny model, a test song and the expected live mix.

The live mixer applies the gains the model predicts on F2 frame t to frame
t + 1 + gain_delay (docs/live.md, "Latency"), so its output equals the offline
zero-latency mix (`alm_jax.inference.offline.mix_arrays`) with the offline gain track
delayed by gain_delay frames; `expected_live_mix` computes that.
"""

import numpy as np

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
  return offline.mix_arrays(config, params, audio[None], np.ones((1, c), bool))['gains'][0]


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
    (mix [n] float32 read back from the engine's mix ring, the LiveMixer).
  """
  c, n = audio.shape
  if adapter is not None:
    adapter.reset()
  live = app.LiveMixer(config, params, c, controls=controls or controls_lib.Controls(
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
