"""Tests for alm_jax/data/timbre.py: the random equaliser of training sources."""

import numpy as np
import pytest

from alm_jax import config_checks
from alm_jax.data import common
from alm_jax.data import timbre
from conftest import load_config

ON = timbre.Settings(enabled=True)
RATE = common.SAMPLE_RATE


def test_rms_kept_silence_kept_and_deterministic():
  x = np.random.default_rng(1).standard_normal((4, RATE)).astype(np.float32)
  x[1] *= 0.01
  x[3] = 0
  y = timbre.apply(x, np.random.default_rng(7), ON)
  assert y.shape == x.shape and y.dtype == np.float32
  np.testing.assert_allclose(np.sqrt(np.mean(y**2, -1)), np.sqrt(np.mean(x**2, -1)), rtol=1e-5)
  np.testing.assert_array_equal(y[3], 0)
  np.testing.assert_array_equal(y, timbre.apply(x, np.random.default_rng(7), ON))
  # Each channel its own equaliser: the same noise in two channels comes out different.
  twins = np.stack([x[0], x[0]])
  a, b = timbre.apply(twins, np.random.default_rng(3), ON)
  assert np.max(np.abs(a - b)) > 0.05 * np.max(np.abs(a))


def test_the_drawn_tilt_is_applied():
  """Equal sines at 125 Hz and 8 kHz, three octaves either side of the tilt's 1 kHz hinge, come
  out at +-tilt: the curve's level difference."""
  settings = timbre.Settings(enabled=True, tilt_db=6.0, bells=0)
  t = np.arange(2 * RATE) / RATE
  lo, hi = np.sin(2 * np.pi * 125 * t), np.sin(2 * np.pi * 8000 * t)
  y = timbre.apply((lo + hi)[None].astype(np.float32), np.random.default_rng(5), settings)[0]
  mid = slice(RATE // 2, 3 * RATE // 2)  # away from the window's edges
  amp = [2 * np.dot(y[mid], s[mid]) / RATE for s in (lo, hi)]
  want = timbre.draw_curves(np.random.default_rng(5), 1, np.array([125.0, 8000.0]), settings)[0]
  assert abs(want[1] - want[0]) > 0.5  # the draw tilts
  np.testing.assert_allclose(20 * np.log10(amp[1] / amp[0]), want[1] - want[0], atol=0.05)
  # Three octaves either side of the hinge: the tilt's full value, opposite signs.
  np.testing.assert_allclose(want[0], -want[1], atol=1e-9)
  tilt = np.random.default_rng(5).uniform(-6.0, 6.0)  # the first draw is the tilt
  np.testing.assert_allclose(want[1], tilt, atol=1e-9)


def test_zero_phase_and_linear_not_circular():
  """A click stays where it is and symmetric; sound at the window's end does not wrap to its start."""
  n = RATE
  click = np.zeros((1, n), np.float32)
  click[0, n // 2] = 1
  y = timbre.apply(click, np.random.default_rng(2), ON)[0]
  assert int(np.argmax(np.abs(y))) == n // 2
  k = 400
  np.testing.assert_allclose(y[n // 2 - k:n // 2], y[n // 2 + k:n // 2:-1], atol=1e-6)
  late = np.zeros((1, n), np.float32)
  late[0, -RATE // 10:] = np.random.default_rng(0).standard_normal(RATE // 10)
  y = timbre.apply(late, np.random.default_rng(2), ON)[0]
  assert np.max(np.abs(y[:n // 2])) < 1e-4 * np.max(np.abs(y))


def test_settings_from_configs():
  assert timbre.Settings.from_config(load_config('base').data) == timbre.Settings()
  assert timbre.Settings.from_config(load_config('alm_mr_timbre').data) == ON
  data = load_config('base').data
  del data['timbre']  # a run's config from before the augmentation
  assert timbre.Settings.from_config(data) == timbre.Settings()
  config = load_config('alm_mr_timbre')
  config.data.timbre.bells = -1
  config.data.timbre.tilt_db = -3.0
  with pytest.raises(config_checks.ConfigError, match='timbre.tilt_db = -3.0.*timbre.bells = -1'):
    config_checks.check(config)
