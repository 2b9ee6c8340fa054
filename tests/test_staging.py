"""The causal staging of staged ALM gains (alm_jax/models/staging.py) against a plain-Python reference."""

import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from alm_jax import frames
from alm_jax.models import staging
from conftest import load_config


def _reference_levels(rms, range_db, slow):
  """The rule written out frame by frame for one channel: level dB after each frame."""
  peak = power = count = 0.0
  out = []
  for r in rms:
    p = float(r) ** 2
    peak = max(peak, p)
    db = lambda x: 10 * np.log10(max(x, 1e-20))  # pylint: disable=unnecessary-lambda-assignment
    if p > 0 and db(p) > db(peak) - range_db:
      count += 1
      power += max(1.0 / count, slow) * (p - power)
    out.append(db(power) if count else staging.NOT_SEEN_DB)
  return np.array(out)


def test_running_level_matches_the_rule_written_out():
  rng = np.random.default_rng(0)
  # Silence first, a loud passage, rests (below the active range: ignored), then quieter playing.
  rms = np.concatenate([np.zeros(5), rng.uniform(0.1, 0.3, 40), np.full(10, 1e-4),
                        rng.uniform(0.02, 0.05, 300)]).astype(np.float32)
  rule = staging.Rule(range_db=40.0, slow=1.0 / 200)
  state, level = staging.running_level(jnp.zeros((1, 1, staging.STATE_SIZE)),
                                       jnp.asarray(rms)[None, None], rule)
  ref = _reference_levels(rms, 40.0, 1.0 / 200)
  np.testing.assert_allclose(np.asarray(level)[0, 0], ref, rtol=0, atol=1e-3)
  assert np.all(np.asarray(level)[0, 0, :5] == staging.NOT_SEEN_DB)
  # The rests did not pull the level down: right after them it is the loud passage's mean.
  assert abs(ref[54] - 10 * np.log10(np.mean(np.square(rms[5:45])))) < 0.01
  # Carried state: two halves give the same levels as the whole.
  s1, l1 = staging.running_level(jnp.zeros((1, 1, staging.STATE_SIZE)), jnp.asarray(rms[:100])[None, None], rule)
  _, l2 = staging.running_level(s1, jnp.asarray(rms[100:])[None, None], rule)
  np.testing.assert_allclose(np.concatenate([l1, l2], -1), level, rtol=0, atol=1e-5)
  assert state.shape == (1, 1, staging.STATE_SIZE)


def test_zero_offset_stages_every_channel_to_the_level():
  config = load_config('mr').model
  config.gain_reference = 'staging'
  level = jnp.asarray([[[-30.0, -12.0, staging.NOT_SEEN_DB]]]).transpose(0, 2, 1)  # [1, 3, 1]
  g = staging.gains(config, jnp.zeros((1, 3, 1)), level)
  np.testing.assert_allclose(20 * np.log10(np.asarray(g))[0, :, 0],
                             [config.staging.level_db + 30.0, config.staging.level_db + 12.0, 0.0],
                             atol=1e-4)
  # An offset of one unit is offset_scale_db; the bounds hold.
  g = staging.gains(config, jnp.full((1, 3, 1), 100.0), level)
  assert np.allclose(20 * np.log10(np.asarray(g)), config.staging.max_gain_db, atol=1e-4)


def test_rule_uses_the_frame_rate_and_refuses_unknown_references():
  config = load_config('mr').model
  spec = frames.FrameSpec.from_config(config)
  rule = staging.rule(config, spec)
  assert rule.slow == pytest.approx(1.0 / (config.staging.time_constant_s * 20))
  bad = ml_collections.ConfigDict({'gain_reference': 'loudness'})
  with pytest.raises(ValueError, match="'none' or 'staging'"):
    staging.enabled(bad)


def test_smoothing_keeps_the_level_and_its_start_but_not_its_jitter():
  rng = np.random.default_rng(1)
  rms = rng.uniform(0.05, 0.2, 400).astype(np.float32)
  x = jnp.asarray(rms)[None, None]
  zeros = jnp.zeros((1, 1, staging.STATE_SIZE))
  _, raw = staging.running_level(zeros, x, staging.Rule(40.0, 1.0 / 200))
  _, smooth = staging.running_level(zeros, x, staging.Rule(40.0, 1.0 / 200, smooth=1.0 / 20))
  raw, smooth = np.asarray(raw)[0, 0], np.asarray(smooth)[0, 0]
  assert smooth[0] == raw[0]  # it starts at the first level, not from silence
  assert abs(smooth[-1] - raw[-1]) < 0.3  # the same level once settled
  jitter = lambda v: np.mean(np.abs(np.diff(v[100:])))  # pylint: disable=unnecessary-lambda-assignment
  assert jitter(smooth) < 0.2 * jitter(raw)
