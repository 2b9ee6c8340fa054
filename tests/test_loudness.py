"""Tests for alm_jax.loudness: BS.1770 K-weighting and loudness, with known answers and against pyloudnorm."""

import numpy as np
import pyloudnorm
import pytest

from alm_jax import loudness

RATE = 44100


def sine(freq, seconds, rate=RATE, amplitude=1.0):
  t = np.arange(int(round(seconds * rate))) / rate
  return amplitude * np.sin(2 * np.pi * freq * t)


def _music_like(seconds, rate=RATE, seed=0):
  """Stereo noise with a loud section, a quiet section (−40 dB) and a silent gap, [2, samples]."""
  rng = np.random.default_rng(seed)
  n = int(round(seconds * rate))
  x = 0.1 * rng.standard_normal((2, n))
  x[1] *= 0.5
  x[:, n // 3:n // 2] *= 0.01
  x[:, n // 2:n // 2 + rate] = 0.0
  return x


def test_k_weighting_matches_bs1770_table_at_48k():
  (b_shelf, a_shelf), (b_hp, a_hp) = loudness.k_weighting_coefficients(48000)
  np.testing.assert_allclose(b_shelf, [1.53512485958697, -2.69169618940638, 1.19839281085285], atol=1e-8)
  np.testing.assert_allclose(a_shelf, [1.0, -1.69065929318241, 0.73248077421585], atol=1e-8)
  np.testing.assert_allclose(b_hp, [1.0, -2.0, 1.0])
  np.testing.assert_allclose(a_hp, [1.0, -1.99004745483398, 0.99007225036621], atol=1e-8)


@pytest.mark.parametrize('rate', [48000, 44100])
def test_full_scale_997hz_sine_is_minus_3_01_lufs(rate):
  assert loudness.integrated_loudness(sine(997.0, 3.0, rate), rate) == pytest.approx(-3.01, abs=0.01)
  # The same sine in the left channel of a stereo pair with a silent right channel reads the same.
  stereo = np.stack([sine(997.0, 3.0, rate), np.zeros(3 * rate)])
  assert loudness.integrated_loudness(stereo, rate) == pytest.approx(-3.01, abs=0.01)


def test_6db_gain_gives_6_lu_difference():
  x = _music_like(6.0)
  gain = 10.0**(6.0 / 20.0)
  assert loudness.loudness_difference(gain * x, x, RATE) == pytest.approx(6.0, abs=1e-6)
  assert loudness.loudness_difference(x, gain * x, RATE) == pytest.approx(-6.0, abs=1e-6)


@pytest.mark.parametrize('rate', [44100, 48000])
def test_agrees_with_pyloudnorm(rate):
  x = _music_like(6.0, rate)
  ours = loudness.integrated_loudness(x, rate)
  # pyloudnorm's 'DeMan' filters are the same BS.1770 analog prototypes as ours: gating must agree exactly.
  same_filters = pyloudnorm.Meter(rate, filter_class='DeMan').integrated_loudness(x.T.copy())
  assert ours == pytest.approx(same_filters, abs=1e-6)
  # Its default 'K-weighting' approximates the filters (−3.05 LUFS for the 997 Hz sine): close, not equal.
  default = pyloudnorm.Meter(rate).integrated_loudness(x.T.copy())
  assert ours == pytest.approx(default, abs=0.1)


def test_relative_gate_removes_quiet_passages():
  loud = sine(997.0, 4.0)
  followed_by_silence = np.concatenate([loud, np.zeros(4 * RATE)])  # removed by the absolute gate
  followed_by_quiet = np.concatenate([loud, 0.01 * sine(997.0, 4.0)])  # −40 dB: only the relative gate
  silence_lufs = loudness.integrated_loudness(followed_by_silence, RATE)
  assert loudness.integrated_loudness(followed_by_quiet, RATE) == pytest.approx(silence_lufs, abs=0.01)
  # Ungated, the quiet half would pull the mean 3 dB down; gated it costs only the boundary blocks.
  assert silence_lufs == pytest.approx(loudness.integrated_loudness(loud, RATE), abs=0.3)


def test_loudness_of_silence_and_bad_input():
  silence = np.zeros(RATE)
  assert loudness.integrated_loudness(silence, RATE) == float('-inf')
  assert np.isnan(loudness.loudness_difference(silence, silence, RATE))
  assert loudness.loudness_difference(sine(997.0, 1.0), silence, RATE) == float('inf')
  with pytest.raises(ValueError, match='400 ms'):
    loudness.integrated_loudness(np.ones(1000), RATE)
  with pytest.raises(ValueError, match='NaN'):
    loudness.integrated_loudness(np.full(RATE, np.nan), RATE)
  with pytest.raises(ValueError, match='Sample rate'):
    loudness.integrated_loudness(np.ones(RATE), 3000)
