"""Tests for alm_jax/evaluation/systems.py: checkpoint lists, RAW, and how per-segment models mix."""

import jax
import numpy as np
import pytest

from alm_jax.evaluation import systems
from conftest import load_config
from conftest import shrink_model


def test_parse_checkpoints():
  assert systems.parse_checkpoints('A=/x, B-2=/y/z') == [('A', '/x'), ('B-2', '/y/z')]
  assert systems.parse_checkpoints('') == []
  for bad, match in (('/just/a/path', 'NAME=PATH'), ('A=', 'NAME=PATH'), ('raw=/x', 'reserved'),
                     ('Target=/x', 'reserved'), ('A b=/x,A_b=/y', 'clashes')):
    with pytest.raises(systems.EvaluationError, match=match):
      systems.parse_checkpoints(bad)


def test_raw_sums_the_active_channels():
  raw = systems.raw_system(load_config('quickstart'))
  f2 = 2205  # 50 ms at 44.1 kHz
  audio = np.random.default_rng(0).standard_normal((3, 2 * f2 + 1)).astype(np.float32)
  mix, gains = raw.mix(audio, np.array([True, True, False]))
  np.testing.assert_allclose(mix, audio[0] + audio[1], rtol=1e-6)
  assert gains.shape == (3, 3) and (gains[:2] == 1).all() and (gains[2] == 0).all()
  assert raw.frame_seconds == pytest.approx(0.05)


@pytest.mark.slow
def test_dmc_og_mixes_whole_segments():
  """DMC-OG as published: one gain per channel per training segment, any input length."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from alm_jax.models import build_model  # pylint: disable=g-import-not-at-top
  cfg = shrink_model(load_config('dmc_og'))
  cfg.data.segment_seconds = 2.0  # two F2 frames of 975 ms per segment
  assert systems.capabilities(cfg).per_segment
  model = build_model(cfg)
  f2 = 42998
  c, n = 3, int(2.5 * f2)  # one whole segment, then half a frame
  params = jax.jit(lambda r: model.init(r, jnp.zeros((1, 8, f2)), jnp.ones((1, 8), bool)))(
      jax.random.key(0, impl='rbg'))['params']
  system = systems.System('DMC-OG', 'per_segment', cfg, params)
  audio = np.random.default_rng(0).standard_normal((c, n)).astype(np.float32) * 0.1
  mix, gains = system.mix(audio, np.ones(c, bool), chunk_seconds=2.0)
  assert mix.shape == (n,) and gains.shape == (c, 3)
  np.testing.assert_allclose(gains[:, 0], gains[:, 1])  # constant within the segment
  assert np.all(gains[:, 2] != gains[:, 0])  # the next segment has its own gains
  applied = np.repeat(gains, f2, axis=-1)[:, :n]
  np.testing.assert_allclose(mix, (applied * audio).sum(0), rtol=1e-4, atol=1e-5)
  assert system.frame_seconds == pytest.approx(f2 / 44100)
