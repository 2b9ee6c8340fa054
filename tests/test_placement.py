"""Tests for alm_jax/data/placement.py: the designed stereo placement by role."""

import numpy as np
import pytest

from alm_jax.data import placement
from alm_jax.data import rendered

BAND = ['kick:Standard', 'snare:Standard', 'hats:Standard', 'bass:Fingered', 'comp:Piano',
        'comp:Clean Guitar', 'pad:Warm', 'lead:Violin']
SR = 44100


def _tones(freqs, seconds=1.0, seed=0):
  """[len(freqs), n] a harmonic tone per channel at these fundamentals, with a little noise."""
  t = np.arange(int(seconds * SR)) / SR
  rng = np.random.default_rng(seed)
  return np.stack([sum(np.sin(2 * np.pi * f * k * t) / k for k in (1, 2, 3))
                   + 0.01 * rng.normal(size=t.size) for f in freqs]).astype(np.float32)


# kick, snare, hats, bass, piano comp (low), guitar comp (high), pad (middle), lead
BAND_TRACKS = _tones([60, 200, 6000, 80, 150, 600, 300, 800])


def test_register_orders_pitch():
  regs = [placement.register(x) for x in _tones([100, 200, 400, 800, 1600])]
  assert np.all(np.diff(regs) > 0.5)
  assert placement.register(np.zeros(100)) == 0.0  # silence and short tracks: no error


def test_centre_roles_and_spread_roles_by_register():
  for i in range(50):
    pans = placement.designed_pans(f'rendered_train_{i:03d}', BAND, BAND_TRACKS)
    assert pans.dtype == np.float32 and pans.shape == (8,)
    np.testing.assert_array_equal(pans[[0, 1, 3, 7]], 0.0)  # kick, snare, bass, lead
    assert 0.25 <= pans[2] <= 0.5  # hats: the audience's right, every song
    # Spread parts by register: piano (lowest) left, pad right, guitar (highest) left again.
    assert -0.7 <= pans[4] <= -0.3 and 0.2 <= pans[6] <= 0.6 and -0.7 <= pans[5] <= -0.3


def test_sides_follow_the_audio_and_widths_the_song():
  a = placement.designed_pans('rendered_test_003', BAND, BAND_TRACKS)
  np.testing.assert_array_equal(a, placement.designed_pans('rendered_test_003', BAND, BAND_TRACKS))
  many = np.array([placement.designed_pans(f'rendered_test_{i:03d}', BAND, BAND_TRACKS)
                   for i in range(40)])
  assert np.all(np.sign(many) == np.sign(many[0]))  # the same sounds: the same sides
  assert np.unique(np.round(many[:, 4], 3)).size > 30  # every width varies by song
  # Swap the two comping parts' sounds: they swap sides.
  swapped = BAND_TRACKS[[0, 1, 2, 3, 5, 4, 6, 7]]
  b = placement.designed_pans('rendered_test_003', BAND, swapped)
  assert np.sign(b[4]) == np.sign(a[5]) and np.sign(b[5]) == np.sign(a[4])


def test_corpus_voices_and_every_rendered_role_has_a_place():
  voices = ['melody:Flute', 'inner:Oboe', 'inner:Clarinet', 'inner:Horn', 'bass_voice:Bassoon']
  pans = placement.designed_pans('rendered_train_010', voices, _tones([700, 500, 300, 200, 100]))
  assert pans[0] == 0 and pans[4] == 0
  assert list(np.sign(pans[1:4])) == [-1, 1, -1]  # Horn (lowest) left, Clarinet right, Oboe left
  assert set(rendered.ROLE_LEVELS_DB) <= set(placement.ROLE_WIDTH)
  synthetic = ['kick', 'snare', 'hihat', 'bass', 'keys', 'lead']
  assert placement.known(synthetic)
  pans = placement.designed_pans('synthetic_train_000', synthetic, _tones([60, 200, 6000, 80, 400, 800]))
  assert pans[[0, 1, 3, 5]].tolist() == [0] * 4


def test_unknown_role_is_named():
  assert not placement.known(['kick', 'theremin:Sine'])
  with pytest.raises(ValueError, match=r"\['theremin'\].*ROLE_WIDTH"):
    placement.designed_pans('x', ['kick', 'theremin:Sine'], _tones([60, 400]))
  with pytest.raises(ValueError, match='1 tracks for 2 instruments'):
    placement.designed_pans('x', ['kick', 'bass'], _tones([60]))
