"""Tests for alm_jax/embeddings/frontend.py: a patch brought to one level (`Frontend.at_level`)."""

import jax.numpy as jnp
import numpy as np
import pytest

from alm_jax.embeddings import musicnn_frontend
from alm_jax.embeddings import vggish_frontend

FRONTENDS = {
    'vggish': lambda: vggish_frontend.VGGishFrontend(vggish_frontend.FrontendSpec()),
    'musicnn': lambda: musicnn_frontend.MusicnnFrontend(
        musicnn_frontend.MusicnnSpec.for_f1(44100, in_rate=44100)),
}


def _patch(front, x):
  return front.log_mel_frames(jnp.asarray(x, jnp.float32)[None], 1, front.frame_input_samples)[0, 0]


def _level_db(front, patch):
  return 10.0 * np.log10(np.mean(np.asarray(front.mel_power(patch)), dtype=np.float64))


@pytest.mark.parametrize('name', sorted(FRONTENDS))
def test_at_level_is_blind_to_the_input_level(name):
  front = FRONTENDS[name]()
  rng = np.random.default_rng(0)
  t = np.arange(front.frame_input_samples) / 44100
  x = 0.1 * np.sin(2 * np.pi * 220 * t) + 0.01 * rng.standard_normal(t.size)
  loud, quiet = _patch(front, x), _patch(front, 10 ** (-18 / 20) * x)
  assert abs(_level_db(front, loud) - _level_db(front, quiet) - 18.0) < 0.01  # log's inverse
  a, b = front.at_level(loud, -9.0, 30.0), front.at_level(quiet, -9.0, 30.0)
  assert abs(_level_db(front, a) + 9.0) < 0.01
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=2e-3)
  # A patch at the level is left as it is.
  np.testing.assert_allclose(np.asarray(front.at_level(a, -9.0, 30.0)), np.asarray(a), atol=2e-3)


@pytest.mark.parametrize('name', sorted(FRONTENDS))
def test_at_level_raises_near_silence_by_at_most_the_cap(name):
  front = FRONTENDS[name]()
  t = np.arange(front.frame_input_samples) / 44100
  faint = _patch(front, 1e-4 * np.sin(2 * np.pi * 220 * t))
  got = front.at_level(faint, -9.0, 30.0)
  assert abs(_level_db(front, got) - _level_db(front, faint) - 30.0) < 0.01
  silence = _patch(front, np.zeros(front.frame_input_samples))
  np.testing.assert_array_equal(np.asarray(front.at_level(silence, -9.0, 30.0)),
                                np.asarray(silence))
