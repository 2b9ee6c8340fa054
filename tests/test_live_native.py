"""The C audio callback (alm_jax/live/rtcore.c) against `Engine.process_python`, period by period.

Both engines get the same periods (sizes that cross F2 frames and wrap the
ring), the same published and missing gains, NaN/Inf bursts, mutes, master
changes and a limiter that engages; their outputs and every piece of state the
other threads read must agree. The JACK tests (test_live_jack.py) run the C
callback in JACK's own thread.
"""

import numpy as np
import pytest

from alm_jax.live import controls as controls_lib
from alm_jax.live import engine as engine_lib
from alm_jax.live import native as native_lib

pytestmark = pytest.mark.skipif(not native_lib.available(),
                                reason=f'C callback not built: {native_lib.load_error()}')

C, F2, SR = 5, 100, 44100


def _engines(**kwargs):
  pair = []
  for native in (False, True):
    ctl = controls_lib.Controls(C, limit_db=-3.0, release_ms=5.0)
    pair.append(engine_lib.Engine(C, F2, ctl, initial_gain=0.5, gain_delay=2, sample_rate=SR,
                                  native=native, ring_seconds=0.0, **kwargs))
  return pair


def _close(a, b, what):
  np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7, err_msg=what)


def test_the_c_callback_computes_what_the_python_one_does():
  rng = np.random.default_rng(0)
  py, cc = _engines(channel_outputs=True)
  assert cc.native is not None and py.native is None
  sizes = [1, 37, 64, 128, 150, 300, 1024]
  total, period_index = 0, 0
  ring = py.ring_size
  while total < 3 * ring:  # wraps the ring three times
    n = int(rng.choice(sizes))
    frame = total // F2
    # The worker's side: publish most frames a few frames ahead, leave some out (late).
    for f in range(frame, frame + 4):
      if f % 7 != 3:
        g = rng.uniform(0.0, 4.0, C).astype(np.float32)
        for eng in (py, cc):
          if eng.slot_stamp[f % engine_lib.NUM_SLOTS] != f:
            eng.publish(f, g)
    x = (rng.standard_normal((C, n)) * 0.4).astype(np.float32)
    if period_index % 23 == 5:
      x[1, n // 2] = np.nan
    if period_index % 31 == 7:
      x[3, 0] = np.inf
    if period_index == 40:
      for eng in (py, cc):
        eng.controls.set('mute', ch=2, value=True)
        eng.controls.set('master', -4.0)
    if period_index == 90:
      for eng in (py, cc):
        eng.controls.set('mute', ch=2, value=False)
        eng.controls.set('limit', None)
    outs = {}
    for eng in (py, cc):
      mix = np.full(n, 7.0, np.float32)
      chans = [np.full(n, 7.0, np.float32) for _ in range(C)]
      eng.process(list(x.copy()), mix, chans)
      outs[eng is cc] = (mix, np.stack(chans))
    _close(outs[True][0], outs[False][0], f'mix, period {period_index}')
    _close(outs[True][1], outs[False][1], f'gained channels, period {period_index}')
    assert np.isfinite(outs[True][0]).all()
    total += n
    period_index += 1
  _close(cc.ring, py.ring, 'input ring')
  _close(cc.mix_ring, py.mix_ring, 'mix ring')
  _close(cc.applied, py.applied, 'applied gains')
  keep = [i for i in range(native_lib.NUM_COUNTERS)]
  np.testing.assert_array_equal(cc.counters[keep], py.counters[keep])
  np.testing.assert_array_equal(cc.bad_frame, py.bad_frame)
  np.testing.assert_array_equal(cc.late_frames, py.late_frames)
  assert cc.written == total and cc.late > 0 and cc.nonfinite_periods > 0
  assert cc.limited_periods > 0 and (cc.bad_frame >= 0).sum() == 2
  assert cc.limiter_gain == pytest.approx(py.limiter_gain, rel=1e-6)
  assert 0 < cc.callback_max_s < 0.1


def test_an_oversized_period_is_silenced_and_counted():
  py, cc = _engines()
  n = engine_lib.MAX_PERIOD + 1
  for eng in (py, cc):
    mix = np.ones(n, np.float32)
    eng.process([np.ones(n, np.float32)] * C, mix)
    assert not mix.any() and eng.oversize_periods == 1 and eng.written == 0


def test_the_c_callback_refuses_buffers_it_cannot_read():
  _, cc = _engines()
  with pytest.raises(TypeError, match='float32'):
    cc.process([np.zeros(64, np.float64)] * C, np.zeros(64, np.float32))
  with pytest.raises(ValueError, match="mix buffer's length"):
    cc.process([np.zeros(32, np.float32)] * C, np.zeros(64, np.float32))
