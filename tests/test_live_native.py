"""The C audio callback (alm_jax/live/rtcore.c) against `Engine.process_python`, period by period.

Both engines get the same periods (sizes that cross F2 frames and wrap the
ring), the same published and missing gains, NaN/Inf bursts, mutes, master
changes and a limiter that engages; their outputs and every piece of state the
other threads read must agree, mono and stereo. A stereo engine's two outputs
must also equal `alm_jax.stereo.apply_gains_stereo` (the pan law's one
definition) of the published gains and pans. The JACK tests (test_live_jack.py)
run the C callback in JACK's own thread.
"""

import jax.numpy as jnp
import numpy as np
import pytest

from alm_jax import frames
from alm_jax import stereo
from alm_jax.live import controls as controls_lib
from alm_jax.live import engine as engine_lib
from alm_jax.live import native as native_lib

pytestmark = pytest.mark.skipif(not native_lib.available(),
                                reason=f'C callback not built: {native_lib.load_error()}')

C, F2, SR = 5, 100, 44100


def _engines(limit_db=-3.0, **kwargs):
  pair = []
  for native in (False, True):
    ctl = controls_lib.Controls(C, limit_db=limit_db, release_ms=5.0)
    pair.append(engine_lib.Engine(C, F2, ctl, initial_gain=0.5, gain_delay=2, sample_rate=SR,
                                  native=native, ring_seconds=0.0, **kwargs))
  return pair


def _close(a, b, what):
  np.testing.assert_allclose(a, b, rtol=2e-6, atol=1e-7, err_msg=what)


def _mix_buffers(eng, n):
  """What `process` mixes into, filled with garbage: [n] (mono) or a pair of [n] (stereo)."""
  if eng.stereo:
    return [np.full(n, 7.0, np.float32), np.full(n, -7.0, np.float32)]
  return np.full(n, 7.0, np.float32)


@pytest.mark.parametrize('stereo_engine', [False, True], ids=['mono', 'stereo'])
def test_the_c_callback_computes_what_the_python_one_does(stereo_engine):
  rng = np.random.default_rng(0)
  py, cc = _engines(channel_outputs=True, stereo=stereo_engine)
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
        pans = rng.uniform(-1.0, 1.0, C).astype(np.float32)
        for eng in (py, cc):
          if eng.slot_stamp[f % engine_lib.NUM_SLOTS] != f:
            eng.publish(f, g, pans)
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
      mix = _mix_buffers(eng, n)
      chans = [np.full(n, 7.0, np.float32) for _ in range(C)]
      eng.process(list(x.copy()), mix, chans)
      outs[eng is cc] = (np.asarray(mix), np.stack(chans))
    _close(outs[True][0], outs[False][0], f'mix, period {period_index}')
    _close(outs[True][1], outs[False][1], f'gained channels, period {period_index}')
    assert np.isfinite(outs[True][0]).all()
    total += n
    period_index += 1
  _close(cc.ring, py.ring, 'input ring')
  _close(cc.mix_ring, py.mix_ring, 'mix ring')
  _close(cc.applied, py.applied, 'applied gains')
  _close(cc.amp, py.amp, 'pan amplitudes in force')
  assert cc.mix_ring.shape == ((2,) if stereo_engine else ()) + (ring,)
  keep = [i for i in range(native_lib.NUM_COUNTERS)]
  np.testing.assert_array_equal(cc.counters[keep], py.counters[keep])
  np.testing.assert_array_equal(cc.bad_frame, py.bad_frame)
  np.testing.assert_array_equal(cc.late_frames, py.late_frames)
  assert cc.written == total and cc.late > 0 and cc.nonfinite_periods > 0
  assert cc.limited_periods > 0 and (cc.bad_frame >= 0).sum() == 2
  assert cc.limiter_gain == pytest.approx(py.limiter_gain, rel=1e-6)
  assert 0 < cc.callback_max_s < 0.1


@pytest.mark.parametrize('stereo_engine', [False, True], ids=['mono', 'stereo'])
def test_an_oversized_period_is_silenced_and_counted(stereo_engine):
  py, cc = _engines(stereo=stereo_engine)
  n = engine_lib.MAX_PERIOD + 1
  for eng in (py, cc):
    mix = np.ones((2, n) if stereo_engine else n, np.float32)
    eng.process([np.ones(n, np.float32)] * C, mix)
    assert not mix.any() and eng.oversize_periods == 1 and eng.written == 0


def _play(eng, x, gains, pans, sizes, rng, before=None):
  """Feeds x [c, n] in periods of `sizes` (each <= F2), publishing frame f's gains [c, T] and pans
  [c, T] two frames ahead; returns the [2, n] output. `before(eng, period_index)` may act."""
  n_total = x.shape[1]
  out = np.zeros((2, n_total), np.float32)
  pos, published, i = 0, 0, 0
  while pos < n_total:
    n = min(int(rng.choice(sizes)), n_total - pos)
    while published < gains.shape[1] and published <= (pos + n) // F2 + 1:
      eng.publish(published, gains[:, published], pans[:, published])
      published += 1
    if before is not None:
      before(eng, i)
    mix = np.zeros((2, n), np.float32)
    eng.process(list(x[:, pos:pos + n]), mix)
    out[:, pos:pos + n] = mix
    pos, i = pos + n, i + 1
  return out


def test_stereo_output_is_the_pan_law_of_alm_jax_stereo_in_c_and_python():
  """C = Python = stereo.apply_gains_stereo for published gains and pans (hard left, right and
  centre included), with periods that cross F2 frames."""
  rng = np.random.default_rng(1)
  t = 40
  gains = rng.uniform(0.0, 2.0, (C, t)).astype(np.float32)
  pans = rng.uniform(-1.0, 1.0, (C, t)).astype(np.float32)
  pans[0, 5:9], pans[1, 5:9], pans[2, 5:9] = -1.0, 1.0, 0.0
  x = (rng.standard_normal((C, t * F2)) * 0.3).astype(np.float32)
  spec = frames.FrameSpec(sample_rate=SR, f1=F2, f2=F2, stride=1)
  want = np.asarray(stereo.apply_gains_stereo(
      jnp.asarray(x[None]), jnp.asarray(gains[None]), jnp.asarray(pans[None]),
      jnp.ones((1, C), bool), spec))[0]
  got = {}
  for eng in _engines(limit_db=None, stereo=True):
    eng.slot_stamp[:] = -1  # frame 0 too comes from a published slot
    got[eng.callback] = _play(eng, x, gains, pans, [1, 37, 64, 99, 100], np.random.default_rng(2))
    assert eng.late == 0
  scale = np.abs(want).max()
  np.testing.assert_allclose(got['python'], want, atol=2e-6 * scale)
  np.testing.assert_allclose(got['native'], want, atol=2e-6 * scale)
  # The law is really applied: hard left is silent on the right, and swapping sides differs.
  assert np.abs(want[0] - want[1]).max() > 0.1 * scale


def test_centred_stereo_is_the_mono_mix_at_minus_3_db_and_controls_act_on_both_sides():
  """Pans 0 (a mono model's): left = right = mono mix / √2 (`stereo.centred`), with a mute and
  a master change acting on both sides alike, in C and Python (the limiter: the test above)."""
  rng = np.random.default_rng(3)
  t = 30
  gains = rng.uniform(0.0, 2.0, (C, t)).astype(np.float32)
  zero = np.zeros((C, t), np.float32)
  x = (rng.standard_normal((C, t * F2)) * 0.3).astype(np.float32)

  def controls(eng, i):
    if i == 10:
      eng.controls.set('mute', ch=1, value=True)
      eng.controls.set('master', -6.0)

  for native in (False, True):
    mono, st = (engine_lib.Engine(C, F2, controls_lib.Controls(C, limit_db=None), sample_rate=SR,
                                  native=native, ring_seconds=0.0, stereo=s) for s in (False, True))
    sizes = [1, 37, 64, 100]
    out = _play(st, x, gains, zero, sizes, np.random.default_rng(4), before=controls)
    # The mono engine: same periods, same gains, same controls.
    ref = np.zeros(t * F2, np.float32)
    pos, published, i, sizes_rng = 0, 0, 0, np.random.default_rng(4)
    while pos < t * F2:
      n = min(int(sizes_rng.choice(sizes)), t * F2 - pos)
      while published < t and published <= (pos + n) // F2 + 1:
        mono.publish(published, gains[:, published])
        published += 1
      controls(mono, i)
      mix = np.zeros(n, np.float32)
      mono.process(list(x[:, pos:pos + n]), mix)
      ref[pos:pos + n] = mix
      pos, i = pos + n, i + 1
    centred = ref * np.float32(stereo.SQRT_HALF)
    np.testing.assert_allclose(out[0], centred, atol=1e-6 * np.abs(ref).max())
    np.testing.assert_allclose(out[1], centred, atol=1e-6 * np.abs(ref).max())
    assert np.abs(out[:, 20 * F2:]).max() < 0.6 * np.abs(out[:, :10 * F2]).max()  # master acted


def test_a_stereo_engine_refuses_a_mono_buffer_and_pans_it_was_not_given():
  for eng in _engines(stereo=True):
    with pytest.raises(ValueError, match=r'\[2, n\] array or a pair'):
      eng.process([np.zeros(64, np.float32)] * C, np.zeros(64, np.float32))
    with pytest.raises(ValueError, match='needs the pans'):
      eng.publish(0, np.ones(C, np.float32))


def test_the_c_callback_refuses_buffers_it_cannot_read():
  _, cc = _engines()
  with pytest.raises(TypeError, match='float32'):
    cc.process([np.zeros(64, np.float64)] * C, np.zeros(64, np.float32))
  with pytest.raises(ValueError, match="mix buffer's length"):
    cc.process([np.zeros(32, np.float32)] * C, np.zeros(64, np.float32))
