"""Tests for alm_jax/data/placement.py: the designed stereo placement by role."""

import numpy as np
import pytest

from alm_jax.data import placement
from alm_jax.data import rendered

BAND = ['kick:Standard', 'snare:Standard', 'hats:Standard', 'bass:Fingered', 'comp:Piano',
        'comp:Clean Guitar', 'pad:Warm', 'lead:Violin']


def test_centre_roles_and_spread_roles():
  for i in range(50):
    pans = placement.designed_pans(f'rendered_train_{i:03d}', BAND)
    assert pans.dtype == np.float32 and pans.shape == (8,)
    np.testing.assert_array_equal(pans[[0, 1, 3, 7]], 0.0)  # kick, snare, bass, lead
    assert 0.25 <= abs(pans[2]) <= 0.5  # hats
    assert 0.3 <= abs(pans[4]) <= 0.7 and 0.3 <= abs(pans[5]) <= 0.7
    assert np.sign(pans[4]) == -np.sign(pans[5])  # two comping parts: one each side
    assert np.sign(pans[6]) == np.sign(pans[4]) and 0.2 <= abs(pans[6]) <= 0.6


def test_deterministic_per_song_and_varied_between_songs():
  a = placement.designed_pans('rendered_test_003', BAND)
  np.testing.assert_array_equal(a, placement.designed_pans('rendered_test_003', BAND))
  many = np.array([placement.designed_pans(f'rendered_test_{i:03d}', BAND) for i in range(40)])
  assert 10 < np.sum(many[:, 2] > 0) < 30  # the hats' side varies by song
  assert np.unique(np.round(many[:, 4], 3)).size > 30  # and every width


def test_corpus_voices_and_every_rendered_role_has_a_place():
  voices = ['melody:Flute', 'inner:Oboe', 'inner:Clarinet', 'inner:Horn', 'bass_voice:Bassoon']
  pans = placement.designed_pans('rendered_train_010', voices)
  assert pans[0] == 0 and pans[4] == 0
  assert list(np.sign(pans[1:4])) in ([1, -1, 1], [-1, 1, -1])  # inner voices alternate
  assert set(rendered.ROLE_LEVELS_DB) <= set(placement.ROLE_WIDTH)
  synthetic = ['kick', 'snare', 'hihat', 'bass', 'keys', 'lead']
  assert placement.known(synthetic)
  assert placement.designed_pans('synthetic_train_000', synthetic)[[0, 1, 3, 5]].tolist() == [0] * 4


def test_unknown_role_is_named():
  assert not placement.known(['kick', 'theremin:Sine'])
  with pytest.raises(ValueError, match=r"\['theremin'\].*ROLE_WIDTH"):
    placement.designed_pans('x', ['kick', 'theremin:Sine'])
