"""Tests for alm_jax/data/bleed.py: RIR bank, randomisation, FFT convolution."""

import dataclasses
import os

import numpy as np
import pytest
import scipy.signal

from alm_jax.data import bleed
from conftest import load_config

# Small rooms and a low image-source order keep the simulation to ~0.1 s a room.
SPEC = bleed.BankSpec(size=4, channels=4, rir_samples=1024, seed=3, room_min=(4.0, 4.0, 2.5),
                      room_max=(6.0, 6.0, 3.0), max_order=2)


@pytest.fixture(scope='module')
def bank():
  return bleed.build_bank(SPEC)


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


def test_bank_shapes_alignment_and_determinism(bank):
  k, c, L = SPEC.size, SPEC.channels, SPEC.rir_samples
  assert bank.rirs.shape == (k, c, c, L) and bank.rirs.dtype == np.float16
  assert bank.energy.shape == (k, c, c)
  # Each mic's own source arrives at sample 0 with unit gain, and is its loudest path.
  np.testing.assert_array_equal(bank.rirs[:, np.arange(c), np.arange(c), 0], 1.0)
  diag = bank.energy[:, np.arange(c), np.arange(c)]
  assert np.all(bank.energy.max(axis=2) == diag)
  # Bleed arrives later than the own source: nothing before the alignment point is lost.
  off = ~np.eye(c, dtype=bool)
  assert np.all(np.abs(bank.rirs[:, off, 0].astype(np.float32)) < 0.2)
  again = bleed.simulate_room(SPEC, 2)
  np.testing.assert_array_equal(again.astype(np.float16), bank.rirs[2])
  other = bleed.simulate_room(dataclasses.replace(SPEC, seed=4), 2)
  assert not np.allclose(other, bank.rirs[2].astype(np.float32))
  assert not np.allclose(bank.rirs[0], bank.rirs[1])


def test_bank_cache_is_reused_and_keyed_by_spec(tmp_path, monkeypatch, bank):
  calls = []
  monkeypatch.setattr(bleed, 'build_bank', lambda spec: calls.append(spec) or bank)
  first = bleed.load_or_build_bank(SPEC, str(tmp_path))
  assert len(calls) == 1 and os.listdir(tmp_path) == [f'rir_bank_{SPEC.key()}.npz']
  second = bleed.load_or_build_bank(SPEC, str(tmp_path))
  assert len(calls) == 1  # read from disk
  np.testing.assert_array_equal(first.rirs, second.rirs)
  bleed.load_or_build_bank(dataclasses.replace(SPEC, seed=9), str(tmp_path))
  assert len(calls) == 2 and len(os.listdir(tmp_path)) == 2
  (tmp_path / f'rir_bank_{SPEC.key()}.npz').write_bytes(b'corrupt')
  bleed.load_or_build_bank(SPEC, str(tmp_path))
  assert len(calls) == 3  # an unreadable cache is rebuilt, not trusted
  # The cache folder may be a path object (epath, as for a gs:// workdir): same file, same bank.
  from etils import epath  # pylint: disable=g-import-not-at-top
  third = bleed.load_or_build_bank(SPEC, epath.Path(tmp_path))
  assert len(calls) == 3 and sorted(os.listdir(tmp_path)) == sorted(
      [f'rir_bank_{SPEC.key()}.npz', f'rir_bank_{dataclasses.replace(SPEC, seed=9).key()}.npz'])
  np.testing.assert_array_equal(third.rirs, first.rirs)


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


def test_spec_from_configs_and_validation():
  for name in ('mr', 'sr', 'quickstart'):
    config = load_config(name)
    spec = bleed.BankSpec.from_config(config)
    spec.validate()
    assert spec.channels == config.model.max_channels and spec.rir_samples > 1000
    assert bleed.Settings.from_config(config.data).backend == 'numpy'
  with pytest.raises(ValueError, match='mic_distance'):
    dataclasses.replace(SPEC, mic_distance=(0.1, 0.6)).validate()
  with pytest.raises(ValueError, match='room_min'):
    dataclasses.replace(SPEC, room_min=(7.0, 4.0, 2.5)).validate()
  config = load_config('quickstart')
  config.data.bleed.backend = 'cuda'
  with pytest.raises(ValueError, match='backend'):
    bleed.Settings.from_config(config.data)
