"""Tests for alm_jax/data/rooms.py: the RIR bank, its alignment, determinism and cache."""

import dataclasses
import os

import numpy as np
import pytest

from alm_jax.data import rooms
from conftest import load_config

# Small rooms and a low image-source order keep the simulation to ~0.1 s a room.
SPEC = rooms.BankSpec(size=4, channels=4, rir_samples=1024, seed=3, room_min=(4.0, 4.0, 2.5),
                      room_max=(6.0, 6.0, 3.0), max_order=2)


@pytest.fixture(scope='module')
def bank():
  return rooms.build_bank(SPEC)


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
  again = rooms.simulate_room(SPEC, 2)
  np.testing.assert_array_equal(again.astype(np.float16), bank.rirs[2])
  other = rooms.simulate_room(dataclasses.replace(SPEC, seed=4), 2)
  assert not np.allclose(other, bank.rirs[2].astype(np.float32))
  assert not np.allclose(bank.rirs[0], bank.rirs[1])


def test_bank_cache_is_reused_and_keyed_by_spec(tmp_path, monkeypatch, bank):
  calls = []
  monkeypatch.setattr(rooms, 'build_bank', lambda spec: calls.append(spec) or bank)
  first = rooms.load_or_build_bank(SPEC, str(tmp_path))
  assert len(calls) == 1 and os.listdir(tmp_path) == [f'rir_bank_{SPEC.key()}.npz']
  second = rooms.load_or_build_bank(SPEC, str(tmp_path))
  assert len(calls) == 1  # read from disk
  np.testing.assert_array_equal(first.rirs, second.rirs)
  rooms.load_or_build_bank(dataclasses.replace(SPEC, seed=9), str(tmp_path))
  assert len(calls) == 2 and len(os.listdir(tmp_path)) == 2
  (tmp_path / f'rir_bank_{SPEC.key()}.npz').write_bytes(b'corrupt')
  rooms.load_or_build_bank(SPEC, str(tmp_path))
  assert len(calls) == 3  # an unreadable cache is rebuilt, not trusted
  # The cache folder may be a path object (epath, as for a gs:// workdir): same file, same bank.
  from etils import epath  # pylint: disable=g-import-not-at-top
  third = rooms.load_or_build_bank(SPEC, epath.Path(tmp_path))
  assert len(calls) == 3 and sorted(os.listdir(tmp_path)) == sorted(
      [f'rir_bank_{SPEC.key()}.npz', f'rir_bank_{dataclasses.replace(SPEC, seed=9).key()}.npz'])
  np.testing.assert_array_equal(third.rirs, first.rirs)


def test_spec_from_configs_and_validation():
  for name in ('mr', 'sr', 'quickstart'):
    config = load_config(name)
    spec = rooms.BankSpec.from_config(config)
    spec.validate()
    assert spec.channels == config.model.max_channels and spec.rir_samples > 1000
  with pytest.raises(ValueError, match='mic_distance'):
    dataclasses.replace(SPEC, mic_distance=(0.1, 0.6)).validate()
  with pytest.raises(ValueError, match='room_min'):
    dataclasses.replace(SPEC, room_min=(7.0, 4.0, 2.5)).validate()
