"""Tests for alm_jax/data/bleed.py: per-example randomisation and the FFT convolutions."""

import dataclasses

import numpy as np
import pytest
import scipy.signal

from alm_jax.data import bleed
from conftest import load_config

from alm_jax.data import rooms
from test_rooms import SPEC


@pytest.fixture(scope='module')
def bank():
  return rooms.build_bank(SPEC)


def _direct(x, h):
  n = x.shape[1]
  return np.stack([sum(scipy.signal.fftconvolve(x[j], h[i, j])[:n] for j in range(x.shape[0]))
                   for i in range(h.shape[0])])


@pytest.mark.parametrize('n,taps', [(20000, 300), (50, 1024), (12000, 1)])
def test_convolutions_match_direct_sum(n, taps):
  rng = np.random.default_rng(0)
  x = rng.standard_normal((3, n)).astype(np.float32)
  h = rng.standard_normal((3, 3, taps)).astype(np.float32)
  want = _direct(x, h)
  scale = np.abs(want).max()
  np.testing.assert_allclose(bleed.convolve_numpy(x, h), want, atol=1e-5 * scale)
  got = np.asarray(bleed.convolve_jax(x[None], h[None]))[0]
  np.testing.assert_allclose(got, want, atol=1e-5 * scale)


def test_draw_sets_severity_and_respects_switches(bank):
  settings = bleed.Settings(severity_db=(-20.0, -10.0))
  d = bleed.draw(np.random.default_rng(1), 3, bank, settings)
  assert -20 <= d.severity_db <= -10 and d.rirs.shape == (3, 3, SPEC.rir_samples)
  e = np.sum(d.rirs.astype(np.float64) ** 2, axis=-1)
  off = ~np.eye(3, dtype=bool)
  ratio_db = 10 * np.log10(np.mean((e * off).sum(axis=1) / np.diag(e)))
  assert abs(ratio_db - d.severity_db) < 0.05
  assert np.all((d.pre_gain >= 10 ** (-12 / 20)) & (d.pre_gain <= 10 ** (12 / 20)))
  # Switches turn one randomisation off without changing the other's draws.
  no_bleed = bleed.draw(np.random.default_rng(1), 3, bank, dataclasses.replace(settings, bleed=False))
  assert no_bleed.rirs is None and no_bleed.severity_db == bleed.BLEED_OFF_DB
  np.testing.assert_array_equal(no_bleed.pre_gain, d.pre_gain)
  flat = bleed.draw(np.random.default_rng(1), 3, bank, dataclasses.replace(settings, levels=False))
  np.testing.assert_array_equal(flat.pre_gain, 1.0)
  np.testing.assert_array_equal(flat.post_gain, 1.0)
  np.testing.assert_array_equal(flat.rirs, d.rirs)
  single = bleed.draw(np.random.default_rng(1), 1, bank, settings)
  assert single.rirs is None  # one channel has nothing to bleed
  with pytest.raises(ValueError, match='max_channels'):
    bleed.draw(np.random.default_rng(1), 5, bank, settings)


def test_apply_numpy_mixes_sources_into_mics(bank):
  rng = np.random.default_rng(2)
  src = rng.standard_normal((3, 8000)).astype(np.float32)
  d = bleed.draw(rng, 3, bank, bleed.Settings(severity_db=(-12.0, -12.0), levels=False))
  mics = bleed.apply_numpy(src, d)
  own = bleed.apply_numpy(src, d._replace(rirs=d.rirs * np.eye(3)[:, :, None]))
  corr = np.corrcoef(np.concatenate([mics, src]))[:3, 3:]
  assert np.all(np.argmax(corr, axis=1) == np.arange(3))  # each mic hears its source most
  # For equal-power white sources the bleed/own energy ratio is the drawn severity.
  ratio = np.sum((mics - own) ** 2, axis=1) / np.sum(own ** 2, axis=1)
  assert abs(10 * np.log10(ratio.mean()) - (-12.0)) < 1.0
  clean = bleed.apply_numpy(src, d._replace(rirs=None))
  np.testing.assert_array_equal(clean, src)
  d2 = bleed.draw(rng, 3, bank, bleed.Settings())
  batch = np.zeros((2, 4, 8000), np.float32)
  batch[0, :3] = src
  batch[1, :3] = src
  got = bleed.apply_batch_jax(batch, [d2, d2._replace(rirs=None)], SPEC.rir_samples)
  np.testing.assert_allclose(got[0, :3], bleed.apply_numpy(src, d2), atol=1e-4)
  np.testing.assert_allclose(got[1, :3], bleed.apply_numpy(src, d2._replace(rirs=None)), atol=1e-5)
  np.testing.assert_array_equal(got[:, 3], 0.0)


def test_settings_from_configs_and_validation():
  for name in ('mr', 'sr', 'quickstart'):
    assert bleed.Settings.from_config(load_config(name).data).backend == 'numpy'
  config = load_config('quickstart')
  config.data.bleed.backend = 'cuda'
  with pytest.raises(ValueError, match='backend'):
    bleed.Settings.from_config(config.data)
