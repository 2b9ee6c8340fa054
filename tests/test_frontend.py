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


@pytest.mark.parametrize('name', sorted(FRONTENDS))
def test_at_level_by_a_measured_level_keeps_a_rest_below_the_playing(name):
  # The running reference (config.model.embed_level.reference = 'running'): a patch is scaled
  # by the channel's level, not its own, so a patch of bleed 30 dB under the channel's level
  # stays 30 dB under where its own mean power would raise it to the level.
  front = FRONTENDS[name]()
  t = np.arange(front.frame_input_samples) / 44100
  x = 0.1 * np.sin(2 * np.pi * 220 * t)
  playing, rest = _patch(front, x), _patch(front, 10 ** (-30 / 20) * x)
  channel_db = 20.0 * np.log10(0.1 / np.sqrt(2.0))  # the channel's active level, dBFS RMS
  a = front.at_level(playing, -20.0, 30.0, measured_db=channel_db)
  b = front.at_level(rest, -20.0, 30.0, measured_db=channel_db)
  gain_db = -20.0 - channel_db
  assert abs(_level_db(front, a) - _level_db(front, playing) - gain_db) < 0.01
  assert abs(_level_db(front, a) - _level_db(front, b) - 30.0) < 0.01
  own = front.at_level(rest, -9.0, 30.0)  # the 'patch' reference raises the rest to the level
  assert _level_db(front, own) > _level_db(front, b) + 10.0
  # One level per patch: a batch of patches each takes its own.
  both = front.at_level(jnp.stack([playing, playing]), -20.0, 30.0,
                        measured_db=jnp.array([channel_db, channel_db - 6.0]))
  assert abs(_level_db(front, both[1]) - _level_db(front, both[0]) - 6.0) < 0.01
