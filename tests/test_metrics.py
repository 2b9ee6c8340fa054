"""Tests for alm_jax.metrics on signals with known answers."""

import numpy as np
import pytest

from alm_jax import metrics
from conftest import load_config
from test_loudness import RATE
from test_loudness import sine


# ---- SI-SDR ----------------------------------------------------------------


def test_si_sdr_known_answers():
  ref = sine(441.0, 1.0)
  orthogonal = np.cos(2 * np.pi * 441.0 * np.arange(RATE) / RATE)  # whole periods: exactly orthogonal
  assert metrics.si_sdr(ref, ref) == np.inf
  assert metrics.si_sdr(ref, ref, max_db=100.0) == 100.0
  assert metrics.si_sdr(0.25 * ref, ref) > 100.0  # scale invariant
  assert metrics.si_sdr(ref + 0.1 * orthogonal, ref) == pytest.approx(20.0, abs=1e-6)
  assert metrics.si_sdr(ref + orthogonal, ref) == pytest.approx(0.0, abs=1e-6)
  assert metrics.si_sdr(np.zeros(RATE), ref) == -np.inf
  # Batched over leading axes, a DC offset ignored with zero_mean.
  batch = metrics.si_sdr(np.stack([ref + 0.1 * orthogonal + 3.0, ref]), np.stack([ref, ref]))
  np.testing.assert_allclose(batch, [20.0, np.inf])


def test_si_sdr_silent_reference_and_bad_input():
  ref = sine(441.0, 0.1)
  out = metrics.si_sdr(np.stack([ref, ref]), np.stack([ref, np.zeros_like(ref)]))
  assert out[0] == np.inf and np.isnan(out[1])
  with pytest.raises(ValueError, match='silent reference'):
    metrics.si_sdr(ref, np.zeros_like(ref), silent_reference='raise')
  with pytest.raises(ValueError, match='same shape'):
    metrics.si_sdr(ref, ref[:-1])
  with pytest.raises(ValueError, match='NaN'):
    metrics.si_sdr(np.full_like(ref, np.nan), ref)


# ---- gains -------------------------------------------------------------------


def test_gain_change_known_answers():
  frame = 0.05
  constant = np.full((3, 40), 0.7)
  assert metrics.gain_change_db_per_s(constant, frame) == 0.0
  # One 6.02 dB step over 39 transitions, on every channel.
  step = np.ones((2, 40))
  step[:, 20:] = 0.5
  expected = 20 * np.log10(2.0) / 39 / frame
  assert metrics.gain_change_db_per_s(step, frame) == pytest.approx(expected, rel=1e-9)
  # A 1 dB-per-frame ramp: 20 dB/s at 50 ms frames.
  ramp = 10.0**(np.arange(40) / 20.0)[None]
  assert metrics.gain_change_db_per_s(ramp, frame) == pytest.approx(20.0, rel=1e-9)
  # Inactive channels do not count; batched [b, c, t] with a [b, c] mask; no active channel: nan.
  jumpy = np.abs(np.random.default_rng(0).standard_normal(40)) + 0.1
  gains = np.stack([np.stack([constant[0], jumpy]), np.stack([ramp[0], ramp[0]])])
  mask = np.array([[True, False], [False, False]])
  out = metrics.gain_change_db_per_s(gains, frame, mask)
  assert out[0] == 0.0 and np.isnan(out[1])
  # A muted channel is floored, not −inf: finite, and its fade-out counted at most down to the floor.
  muted = np.ones((1, 40))
  muted[:, 20:] = 0.0
  assert metrics.gain_change_db_per_s(muted, frame) == pytest.approx(120.0 / 39 / frame)
  with pytest.raises(ValueError, match='2 frames'):
    metrics.gain_change_db_per_s(np.ones((2, 1)), frame)
  with pytest.raises(ValueError, match='non-negative'):
    metrics.gain_change_db_per_s(-np.ones((2, 4)), frame)


def test_balance_error_known_answers():
  target = np.array([1.0, 0.5, 0.25, 2.0])
  # A global level change keeps the balance.
  assert metrics.balance_error_db(3.0 * target, target) == pytest.approx(0.0, abs=1e-12)
  # One channel of four 6 dB too loud: +4.5 dB there, −1.5 dB elsewhere once the mean is removed.
  louder = target.copy()
  louder[0] *= 10.0**(6.0 / 20.0)
  np.testing.assert_allclose(metrics.balance_error_db(louder, target, per_channel=True),
                             [4.5, -1.5, -1.5, -1.5], atol=1e-12)
  assert metrics.balance_error_db(louder, target) == pytest.approx(2.25)
  # A masked channel is ignored (nan per channel), even when wildly off.
  wrong = louder.copy()
  wrong[3] = 1e-3
  mask = np.array([True, True, True, False])
  per_channel = metrics.balance_error_db(wrong, target, mask, per_channel=True)
  np.testing.assert_allclose(per_channel[:3], [4.0, -2.0, -2.0], atol=1e-12)
  assert np.isnan(per_channel[3])
  # Time-varying gains [c, t] are averaged in dB: a ±3 dB wobble around the target balance is no error.
  wobble = target[:, None] * 10.0**(3.0 * np.array([1.0, -1.0] * 10) / 20.0)[None]
  assert metrics.balance_error_db(wobble, target) == pytest.approx(0.0, abs=1e-12)
  assert metrics.balance_error_db(wobble, target[:, None] * np.ones(20), np.ones(4, bool)) == pytest.approx(
      0.0, abs=1e-12)


# ---- mix-level ----------------------------------------------------------------


def test_clipping_fraction():
  mix = np.array([0.0, 0.5, 1.0, -1.0, 1.5, -2.0, 0.99, 1.01])
  assert metrics.clipping_fraction(mix) == pytest.approx(3 / 8)  # exactly ±1 is not clipped
  np.testing.assert_allclose(metrics.clipping_fraction(np.stack([mix, np.zeros(8)])), [3 / 8, 0.0])
  assert metrics.clipping_fraction(mix, threshold=0.9) == pytest.approx(6 / 8)


def test_mr_stft_distance():
  config = load_config('mr').loss
  rng = np.random.default_rng(0)
  target = 0.1 * rng.standard_normal((2, 5000)).astype(np.float32)
  out = metrics.mr_stft_distance(target, target, config)
  assert out.shape == (2,) and np.all(np.abs(out) < 1e-6)
  doubled = metrics.mr_stft_distance(2.0 * target, target, config)
  np.testing.assert_allclose(doubled, 1.0 + np.log(2.0), rtol=1e-3)
  single = metrics.mr_stft_distance(2.0 * target[0], target[0], config)
  assert np.ndim(single) == 0 and single == pytest.approx(doubled[0], rel=1e-5)


# ---- the suite ------------------------------------------------------------------


def test_mix_metrics_of_a_perfect_mix_and_batching():
  rng = np.random.default_rng(0)
  target = 0.1 * rng.standard_normal((2, RATE))
  gains = np.full((2, 3, 20), 0.5)
  ideal = np.full((2, 3), 2.0)
  ideal[1, 2] = np.nan  # e.g. MedleyDB: this example has no balance error
  mask = np.ones((2, 3), bool)
  out = metrics.mix_metrics(target, target, gains, rate=RATE, frame_seconds=0.05, channel_mask=mask,
                            ideal_gains=ideal)
  assert tuple(sorted(out)) == tuple(sorted(set(metrics.MIX_METRICS) - {'mr_stft'}))
  # Capped, so a perfect example cannot make a mean +inf, in training and evaluation alike.
  np.testing.assert_array_equal(out['si_sdr_db'], [metrics.SI_SDR_MAX_DB] * 2)
  np.testing.assert_array_equal(out['loudness_diff_lu'], [0.0, 0.0])
  np.testing.assert_array_equal(out['gain_change_db_per_s'], [0.0, 0.0])
  np.testing.assert_array_equal(out['clipping_fraction'], [0.0, 0.0])
  assert out['balance_error_db'][0] == 0.0 and np.isnan(out['balance_error_db'][1])
  # One example alone gives the same numbers as a float, and a padding channel's NaN gain is ignored.
  mask[1, 2] = False
  single = metrics.mix_metrics(1.5 * target[1], np.concatenate([target[1], [0.0]]), gains[1],
                               rate=RATE, frame_seconds=0.05, channel_mask=mask[1],
                               ideal_gains=ideal[1])
  # ('mr_stft', the JAX loss, is added with a loss config: tests/test_evaluate.py.)
  assert all(np.ndim(v) == 0 for v in single.values()) and set(single) == set(out)
  assert single['loudness_diff_lu'] == pytest.approx(20 * np.log10(1.5), abs=0.01)
  assert single['balance_error_db'] == 0.0


def test_mix_metrics_undefined_and_bad_shapes():
  x = 0.1 * np.random.default_rng(1).standard_normal(RATE)
  out = metrics.mix_metrics(x, x, np.ones((2, 1)), rate=RATE, frame_seconds=0.05)
  assert np.isnan(out['gain_change_db_per_s']) and np.isnan(out['balance_error_db'])
  with pytest.raises(ValueError, match='target'):
    metrics.mix_metrics(x, x[:-1], np.ones((2, 4)), rate=RATE, frame_seconds=0.05)
  with pytest.raises(ValueError, match='channels, frames'):
    metrics.mix_metrics(x, x, np.ones(4), rate=RATE, frame_seconds=0.05)


def test_ideal_input_gains():
  np.testing.assert_allclose(metrics.ideal_input_gains([2.0, 1.0], [20 * np.log10(2), -20.0]), [1.0, 10.0])
  assert np.isnan(metrics.ideal_input_gains([np.nan], [0.0])[0])


def test_pan_error_and_stereo_metrics():
  from alm_jax import stereo  # pylint: disable=g-import-not-at-top
  pans = np.zeros((2, 3, 4))
  pans[0, 0] = [0.2, 0.4, 0.6, 0.8]  # mean 0.5
  target = np.array([[0.0, 0.1, 0.9], [0.0, np.nan, 0.0]])
  mask = np.array([[True, True, False], [True, True, True]])
  np.testing.assert_allclose(metrics.pan_error(pans, target, mask)[0], (0.5 + 0.1) / 2)
  assert np.isnan(metrics.pan_error(pans, target, mask)[1])  # unknown designed pan
  signed = metrics.pan_error(pans, target, mask, per_channel=True)
  np.testing.assert_allclose(signed[0, :2], [0.5, -0.1])
  assert np.isnan(signed[0, 2])
  rng = np.random.default_rng(1)
  a = rng.standard_normal((2, 8192)) * 0.1
  loss = load_config('mr').loss
  centred = stereo.centred(a)
  wide = np.stack([a, 0.2 * a], axis=1)
  out = metrics.stereo_metrics(centred, wide, np.zeros((2, 3, 4)), np.zeros((2, 3)),
                               loss_config=loss)
  assert set(out) == set(metrics.STEREO_METRICS)
  assert np.all(out['mr_stft_side'] > 1.0)  # a centred mix has no side where the target has one
  same = metrics.stereo_metrics(wide, wide, np.zeros((2, 3, 4)), np.zeros((2, 3)),
                                loss_config=loss)
  np.testing.assert_allclose(same['mr_stft_mid'], 0.0, atol=1e-6)
  np.testing.assert_allclose(same['mr_stft_side'], 0.0, atol=1e-6)
  silent_side = metrics.stereo_metrics(centred, centred, np.zeros((2, 3, 4)), np.zeros((2, 3)),
                                       loss_config=loss)
  assert np.all(np.isnan(silent_side['mr_stft_side']))  # undefined without a target side
  with pytest.raises(ValueError, match=r'\[\.\.\., 2, n\]'):
    metrics.stereo_metrics(a[0], a[0], pans, target, loss_config=loss)
