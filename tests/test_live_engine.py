"""The live mixer's engine without JACK: exactness, controls, limits, faults and recording.

A FileDriver feeds the engine period by period in lockstep with the worker, so
every result is deterministic; the JACK tests (test_live_jack.py) check the
same mixer in real time.
"""

import json

import numpy as np
import pytest
import soundfile as sf

from alm_jax import frames as frames_lib
from alm_jax import models
from alm_jax import restore
from alm_jax import stereo
from alm_jax.live import adapter as adapter_lib
from alm_jax.live import app
from alm_jax.live import controls as controls_lib
from alm_jax.live import drivers
from alm_jax.live import native as native_lib
from alm_jax.live import recorder as recorder_lib
from checkpoint_fixtures import TinyModel
import live_helpers

C = 8
SECONDS = 3.0


@pytest.fixture(scope='module')
def tiny():
  """A tiny ALM-MR for 8 channels, its compiled step, a song and its offline gains."""
  tm = TinyModel('mr', max_channels=32)
  tm.adapter = adapter_lib.StepAdapter(models.load(tm.config, tm.params), C)
  tm.adapter.warm_up()
  tm.audio = live_helpers.song(C, SECONDS)
  tm.gains = live_helpers.offline_gains(tm.config, tm.params, tm.audio)
  tm.f2 = tm.spec.f2
  return tm


def _run(tiny, audio=None, **kwargs):
  return live_helpers.run_lockstep(tiny.config, tiny.params,
                                   tiny.audio if audio is None else audio,
                                   adapter=tiny.adapter, **kwargs)


@pytest.mark.parametrize('period,delay', [(128, 1), (64, 2)])
def test_live_mix_equals_offline_mix_with_delayed_gains(tiny, period, delay):
  mixed, live = _run(tiny, period=period, gain_delay=delay)
  want = live_helpers.apply_gains(tiny.audio, live_helpers.live_gains(tiny.gains, delay), tiny.f2)
  n = want.shape[0]
  np.testing.assert_allclose(mixed[:n], want, atol=2e-6 * np.abs(want).max())
  assert live.engine.late == 0
  # A wrong delay does not match: the test can tell the gain track apart.
  other = live_helpers.apply_gains(tiny.audio, live_helpers.live_gains(tiny.gains, delay + 1),
                                   tiny.f2)
  assert np.abs(mixed[:n] - other).max() > 1e-3 * np.abs(want).max()


def test_controls_change_the_output_as_specified(tiny):
  ceiling = 10 ** (-1 / 20)
  ctl = controls_lib.Controls(C, ceiling_db=-1.0, slew_db=0.0, limit_db=None)
  ctl.set('mute', ch=0, value=True)
  ctl.set('override', ch=1, value=-6.0)
  ctl.set('weight', ch=2, value=6.0)
  ctl.set('weight', ch=3, value=-20.0)
  mixed, _ = _run(tiny, controls=ctl)
  g = live_helpers.live_gains(tiny.gains).astype(np.float64)
  want_g = g.copy()
  want_g[0] = 0.0
  want_g[1] = 10 ** (-6 / 20)
  want_g[2] = g[2] * 10 ** (6 / 20)
  want_g[3] = g[3] * 10 ** (-20 / 20)
  want_g = np.minimum(want_g, ceiling)
  # Frames 0 and 1 carry the initial gain (min(initial, ceiling)) and only the
  # callback's mute; the worker's controls start with frame 2.
  want_g[:, :2] = np.minimum(g[:, :2], ceiling)
  want_g[0, :] = 0.0
  want = live_helpers.apply_gains(tiny.audio, want_g.astype(np.float32), tiny.f2)
  n = want.shape[0]
  np.testing.assert_allclose(mixed[:n], want, atol=2e-6 * np.abs(want).max())
  # The ceiling acted on the boosted channel and not on the others.
  assert (g[2, 2:] * 10 ** (6 / 20) > ceiling).all() and (g[4:, 2:] < ceiling).all()


def test_slew_limit_and_limiter(tiny, tmp_path):
  ctl = controls_lib.Controls(C, ceiling_db=60.0, slew_db=1.0, limit_db=-6.0)
  ctl.set('master', 24.0)
  mixed, live = _run(tiny, controls=ctl, record=str(tmp_path))
  rec_dir = live.record_dir
  assert rec_dir == tmp_path / 'take-001'
  frames, pred, applied, held = recorder_lib.read_gains_csv(rec_dir / 'gains.csv')
  assert frames.tolist() == list(range(2, 2 + len(frames)))
  ratio = applied[1:] / np.maximum(applied[:-1], 1e-3)
  assert np.all(np.abs(20 * np.log10(ratio)) <= 1.0 + 1e-4)
  assert np.abs(applied - pred).max() > 1e-2  # the limit did act (initial gain 1 -> prediction)
  assert not held.any()
  peak = np.abs(mixed).max()
  assert peak <= 10 ** (-6 / 20) * (1 + 1e-6)
  assert peak > 10 ** (-6 / 20) * 0.9 and live.engine.limited_periods > 0
  # The recording is the engine's output.
  rec, rate = sf.read(rec_dir / 'mix.wav', dtype='float32')
  assert rate == 44100
  np.testing.assert_array_equal(rec[:mixed.shape[0]], mixed[:rec.shape[0]])
  rec_in, _ = sf.read(rec_dir / 'in_03.wav', dtype='float32')
  np.testing.assert_array_equal(rec_in[:tiny.audio.shape[1]], tiny.audio[2])


@pytest.mark.parametrize('fault', ['hold', 'mute'])
def test_nan_and_absurd_bursts_are_contained(tiny, fault):
  audio = tiny.audio.copy()
  f2, sr = tiny.f2, 44100
  a, b = int(0.8 * sr), int(1.0 * sr)
  audio[3, a:b] = np.nan
  audio[3, a + 100] = np.inf
  audio[5, a:a + 50] = 1e6  # absurd but finite
  mixed, live = _run(tiny, audio=audio, fault=fault)
  assert np.isfinite(mixed).all()
  assert live.engine.nonfinite_periods > 0
  w = live.worker
  assert not w.held.any(), 'held channels did not recover'
  # Frames of the burst on the faulty channel: held (or muted); the mix of the
  # clean channels stays exact up to the burst.
  want = live_helpers.apply_gains(tiny.audio, live_helpers.live_gains(tiny.gains), f2)
  first_bad = a // f2 * f2
  np.testing.assert_allclose(mixed[:first_bad], want[:first_bad], atol=2e-6 * np.abs(want).max())
  # One F1 frame after the burst the model sees only clean input: its gains
  # are finite and every channel is on auto again.
  assert np.isfinite(w.predicted).all()


def test_faulty_channel_is_held_then_released(tiny, tmp_path):
  audio = tiny.audio.copy()
  sr, f2 = 44100, tiny.f2
  a, b = int(0.5 * sr), int(0.7 * sr)
  audio[2, a:b] = np.nan
  _, live = _run(tiny, audio=audio, record=str(tmp_path))
  frames, _, applied, held = recorder_lib.read_gains_csv(live.record_dir / 'gains.csv')
  # `frames` are the frames the gains apply to: processed frame k -> frame k + 2.
  k = frames - 2
  bad = (k >= a // f2) & (k <= (b - 1) // f2)
  assert held[bad, 2].all()
  hold = int(np.ceil(tiny.spec.f1 / f2))
  # A period straddling an F2 boundary marks both frames: one frame of slack.
  released = k >= (b - 1) // f2 + hold + 1
  assert not held[released, 2].any() and released.any()
  assert not held[:, [0, 1, 3]].any()
  # Held: the applied gain stays at its last good value.
  first = np.flatnonzero(bad)[0]
  assert np.all(applied[bad, 2] == applied[first - 1, 2])


def test_killed_worker_is_restarted_and_recording_stays_valid(tiny, tmp_path):
  def kill_early(live, drv):
    live.worker.fail_after = 20
  mixed, live = _run(tiny, record=str(tmp_path), before=kill_early)
  assert live.worker_restarts == 1
  assert np.isfinite(mixed).all()
  rec, _ = sf.read(live.record_dir / 'mix.wav', dtype='float32')
  assert rec.shape[0] >= tiny.audio.shape[1]
  np.testing.assert_array_equal(rec[:tiny.audio.shape[1]], mixed[:tiny.audio.shape[1]])


def test_controls_apply_order():
  ctl = controls_lib.Controls(3, ceiling_db=6.0, slew_db=3.0, limit_db=None)
  prev = np.array([1.0, 1.0, 0.0], np.float32)
  g = ctl.apply(np.array([4.0, 0.01, 1.0], np.float32), prev, np.zeros(3, bool), False)
  np.testing.assert_allclose(g, [10 ** (3 / 20), 10 ** (-3 / 20), 10 ** (-57 / 20)], rtol=1e-5)
  ctl.set('auto', ch=0, value=False)
  ctl.set('mute', ch=1, value=True)
  g = ctl.apply(np.array([4.0, 1.0, np.nan], np.float32), prev, np.zeros(3, bool), False)
  np.testing.assert_allclose(g, [1.0, 0.0, 0.0], rtol=1e-6)  # frozen, muted, NaN held at prev


def test_wav_writer_is_valid_up_to_the_last_flush(tmp_path):
  path = tmp_path / 'x.wav'
  w = recorder_lib.WavWriter(str(path), 44100)
  w.write(np.arange(100, dtype=np.float32))
  w.flush()
  w.write(np.ones(50, np.float32))  # written, not flushed: as if killed now
  w._fh.flush()  # pylint: disable=protected-access
  data, rate = sf.read(path, dtype='float32')
  assert rate == 44100
  np.testing.assert_array_equal(data, np.arange(100, dtype=np.float32))


# ---- stereo (issue 32): two outputs, the model's pans beside its gains ----


@pytest.fixture(scope='module')
def tiny_stereo():
  """A tiny stereo ALM-MR (config.model.outputs = ('gain', 'pan')), random parameters."""
  tm = TinyModel('mr', max_channels=32, outputs=('gain', 'pan'))
  tm.adapter = adapter_lib.StepAdapter(models.load(tm.config, tm.params), C)
  tm.adapter.warm_up()
  tm.audio = live_helpers.song(C, SECONDS, seed=1)
  tm.offline = live_helpers.offline_outputs(tm.config, tm.params, tm.audio)
  tm.f2 = tm.spec.f2
  return tm


def _want_stereo(tm, delay=1):
  out = tm.offline
  return live_helpers.apply_stereo(tm.audio, live_helpers.live_gains(out['gains'], delay),
                                   live_helpers.live_gains(out['pans'], delay), tm.f2)


@pytest.mark.parametrize('callback,period,delay', [('native', 128, 1), ('python', 64, 2)])
def test_stereo_live_mix_equals_offline_stereo_mix(tiny_stereo, tmp_path, callback, period, delay):
  """Both callbacks: left and right equal the offline stereo mix (mix_arrays' gains and pans,
  delayed by gain_delay frames, through stereo.apply_gains_stereo); the recording holds them."""
  if callback == 'native' and not native_lib.available():
    pytest.skip(f'C callback not built: {native_lib.load_error()}')
  tm = tiny_stereo
  mixed, live = live_helpers.run_lockstep(tm.config, tm.params, tm.audio, adapter=tm.adapter,
                                          period=period, gain_delay=delay, callback=callback,
                                          record=str(tmp_path))
  assert live.engine.callback == callback and live.engine.stereo and mixed.shape[0] == 2
  want = _want_stereo(tm, delay)
  n = want.shape[1]
  np.testing.assert_allclose(mixed[:, :n], want, atol=2e-6 * np.abs(want).max())
  assert live.engine.late == 0
  pans = tm.offline['pans']
  assert np.abs(pans).max() > 0.05 and np.abs(want[0] - want[1]).max() > 1e-2  # really panned
  # The pans a frame late do not match: the test can tell the pan track apart.
  other = live_helpers.apply_stereo(tm.audio, live_helpers.live_gains(tm.offline['gains'], delay),
                                    live_helpers.live_gains(pans, delay + 1), tm.f2)
  assert np.abs(mixed[:, :n] - other).max() > 1e-4 * np.abs(want).max()
  # The recording: a 2-channel mix.wav equal to the output, pans.csv beside gains.csv.
  rec, rate = sf.read(live.record_dir / 'mix.wav', dtype='float32')
  assert rate == 44100 and rec.ndim == 2 and rec.shape[1] == 2
  m = min(rec.shape[0], mixed.shape[1])
  np.testing.assert_array_equal(rec[:m].T, mixed[:, :m])
  frames, pred_pans, pans_applied = recorder_lib.read_pans_csv(live.record_dir / 'pans.csv')
  gain_frames = recorder_lib.read_gains_csv(live.record_dir / 'gains.csv')[0]
  np.testing.assert_array_equal(frames, gain_frames)
  # Row k: the pans of frame k (= the offline pans of frame k - delay), none held. The worker
  # may have run a frame or two past the song (the driver's last period): those have no
  # offline pans to compare with.
  keep = frames - delay < pans.shape[1]
  assert keep.sum() >= pans.shape[1] - delay - 2
  np.testing.assert_allclose(pans_applied[keep], pans[:, frames[keep] - delay].T, atol=1e-6)
  np.testing.assert_array_equal(pred_pans, pans_applied)
  info = json.loads((live.record_dir / 'info.json').read_text())
  assert info['mix'] == 'stereo' and info['model_pans'] is True


def test_mono_model_to_two_outputs_is_its_mix_at_the_centre(tiny):
  """stereo=True with a mono model (--output=1,2): both sides are the offline mono mix / √2, as
  protocol.step_stereo places a mono mixer's mix; no pans.csv."""
  mixed, live = _run(tiny, stereo=True)
  assert live.engine.stereo and not live.adapter.stereo
  want = live_helpers.apply_gains(tiny.audio, live_helpers.live_gains(tiny.gains), tiny.f2)
  n = want.shape[0]
  centred = want * np.float32(stereo.SQRT_HALF)
  for side in mixed:
    np.testing.assert_allclose(side[:n], centred, atol=2e-6 * np.abs(want).max())


def test_stereo_model_to_one_output_is_its_mono_mix(tiny_stereo):
  """stereo=False (--output=1): the stereo model's gains, no pans: mix_arrays' mono mix."""
  tm = tiny_stereo
  mixed, live = live_helpers.run_lockstep(tm.config, tm.params, tm.audio, adapter=tm.adapter,
                                          stereo=False)
  assert mixed.ndim == 1 and not live.engine.stereo
  want = live_helpers.apply_gains(tm.audio, live_helpers.live_gains(tm.offline['gains']), tm.f2)
  np.testing.assert_allclose(mixed[:want.shape[0]], want, atol=2e-6 * np.abs(want).max())


def test_stereo_nan_burst_holds_the_pan_and_never_makes_it_nan(tiny_stereo, tmp_path):
  """A NaN/Inf burst on one channel: the output stays finite on both sides, the channel's pan
  is held at its last good value while its gain is, and the other channels stay exact."""
  tm = tiny_stereo
  audio = tm.audio.copy()
  sr, f2 = 44100, tm.f2
  a, b = int(0.5 * sr), int(0.7 * sr)
  audio[2, a:b] = np.nan
  audio[2, a + 10] = np.inf
  mixed, live = live_helpers.run_lockstep(tm.config, tm.params, audio, adapter=tm.adapter,
                                          record=str(tmp_path))
  assert np.isfinite(mixed).all() and live.engine.nonfinite_periods > 0
  frames, _, _, held = recorder_lib.read_gains_csv(live.record_dir / 'gains.csv')
  pframes, _, pans = recorder_lib.read_pans_csv(live.record_dir / 'pans.csv')
  np.testing.assert_array_equal(frames, pframes)
  assert np.isfinite(pans).all() and np.abs(pans).max() <= 1.0
  bad = held[:, 2]
  assert bad.any() and not held[:, [0, 1, 3]].any()
  first = np.flatnonzero(bad)[0]
  assert np.all(pans[bad, 2] == pans[first - 1, 2])  # held: the last good pan
  assert np.ptp(pans[~bad, 2]) > 1e-4  # elsewhere the pan moves: holding it is a real rule
  assert np.isfinite(live.worker.pans).all()
  want = _want_stereo(tm)
  first_bad = a // f2 * f2
  np.testing.assert_allclose(mixed[:, :first_bad], want[:, :first_bad],
                             atol=2e-6 * np.abs(want).max())


def test_stereo_killed_worker_keeps_the_pans_in_force(tiny_stereo, tmp_path):
  """A worker that dies mid-show: the new one starts from the pans in force (not the centre), the
  output stays finite on both sides and the stereo recording stays valid."""
  tm = tiny_stereo
  kept = {}

  def kill_early(live, drv):
    del drv
    live.worker.fail_after = 20
    tick = live.tick

    def tick_and_note():
      old = live.worker
      tick()
      if live.worker is not old and 'pans' not in kept:
        kept['pans'], kept['new'] = old.pans.copy(), live.worker.pans.copy()
    live.tick = tick_and_note

  mixed, live = live_helpers.run_lockstep(tm.config, tm.params, tm.audio, adapter=tm.adapter,
                                          record=str(tmp_path), before=kill_early)
  assert live.worker_restarts == 1 and np.isfinite(mixed).all()
  np.testing.assert_array_equal(kept['new'], kept['pans'])
  assert np.abs(kept['pans']).max() > 0  # not the centre it would otherwise restart from
  rec, _ = sf.read(live.record_dir / 'mix.wav', dtype='float32')
  n = tm.audio.shape[1]
  np.testing.assert_array_equal(rec[:n].T, mixed[:, :n])
  frames, _, pans = recorder_lib.read_pans_csv(live.record_dir / 'pans.csv')
  assert np.isfinite(pans).all() and len(frames) > 20


def test_pans_follow_the_controls_rule():
  """Controls.apply_pans: held, non-finite or auto-off channels keep their pan; others clip."""
  ctl = controls_lib.Controls(4)
  ctl.set('auto', ch=3, value=False)
  prev = np.array([0.5, -0.5, 0.25, -1.0], np.float32)
  pans = ctl.apply_pans(np.array([2.0, np.nan, 0.1, 0.9], np.float32), prev,
                        np.array([False, False, True, False]))
  np.testing.assert_array_equal(pans, np.array([1.0, -0.5, 0.25, -1.0], np.float32))
  assert pans.dtype == np.float32


@pytest.mark.slow  # the shipped model's compile and 3 s of lockstep: ~40 s on 2 cores
@pytest.mark.parametrize('callback', ['native', 'python'])
def test_shipped_stereo_mixer_live_equals_its_offline_stereo_mix(callback):
  """pretrained:alm_mr_stereo through the live engine (docs/pretrained_stereo.md, "Live")."""
  if callback == 'native' and not native_lib.available():
    pytest.skip(f'C callback not built: {native_lib.load_error()}')
  loaded = restore.load_mixer('pretrained:alm_mr_stereo')
  c = 6
  audio = live_helpers.song(c, 3.0, seed=5)  # < the 4 s ring: read back whole
  offline = live_helpers.offline_outputs(loaded.config, loaded.params, audio)
  f2 = frames_lib.FrameSpec.from_config(loaded.config.model).f2
  want = live_helpers.apply_stereo(audio, live_helpers.live_gains(offline['gains']),
                                   live_helpers.live_gains(offline['pans']), f2)
  live = app.LiveMixer(loaded, c, callback=callback, controls=controls_lib.Controls(
      c, ceiling_db=60.0, slew_db=0.0, limit_db=None))
  drv = drivers.FileDriver(live.engine, audio, period=128, pace=False,
                           worker_frame=lambda: live.worker.frame)
  live.start(drv)
  while not drv.done.wait(0.05):
    live.tick()
  mixed = live.engine.read(0, audio.shape[1], mix=True)
  live.stop()
  assert live.engine.stereo and live.engine.late == 0
  n = want.shape[1]
  np.testing.assert_allclose(mixed[:, :n], want, atol=2e-6 * np.abs(want).max())
  assert np.abs(offline['pans']).max() > 0.05  # the shipped model does pan
