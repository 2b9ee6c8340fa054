"""The causal staging a staged ALM predicts its gains from: each channel's running active level.

With `config.model.gain_reference = 'staging'`, the ALM's MLP gives an offset in dB
(times `staging.offset_scale_db`) and the gain is the one that puts the channel's
running active level at `staging.level_db` plus that offset. The running active
level is the measure `rendered_live` designs its balance with and the role-aware
preset stages by: per F2 frame, the mean power of the frames within
`staging.active_range_db` of the channel's loudest frame so far, averaged over
all such frames at first and then with the time constant `staging.time_constant_s`, and
smoothed in dB with `staging.smooth_s` (the running power moves with every loud frame; the
smoothing keeps that jitter out of the gain).
A network that outputs 0 is therefore an equal-level preset, and what it learns is
what each channel is worth relative to the others (its role), not the level
arithmetic. Causal: the level after frame t uses frames up to t, and its gain
applies to frame t + 1. Why, and the figures: docs/model.md ("Staged gains").
"""

import dataclasses

import jax
import jax.numpy as jnp

from alm_jax import frames

# Per channel: loudest frame power so far, running active power, active frames, smoothed level (dB).
STATE_SIZE = 4
NOT_SEEN_DB = -200.0  # level of a channel with no active frame yet


@dataclasses.dataclass(frozen=True)
class Rule:
  range_db: float  # active: within this of the loudest frame so far
  slow: float  # the running mean's rate once 1 / count falls below it
  smooth: float = 1.0  # the one-pole rate of the level in dB (1: no smoothing)


def enabled(model_config) -> bool:
  ref = model_config.get('gain_reference', 'none')
  if ref not in ('none', 'staging'):
    raise ValueError(f"config.model.gain_reference must be 'none' or 'staging', got {ref!r}.")
  return ref == 'staging'


def rule(model_config, spec) -> Rule:
  """The level rule of `config.model.staging` for F2 frames of `spec` (a frames.FrameSpec)."""
  s = model_config.staging
  frames_per_s = spec.sample_rate / spec.f2
  return Rule(range_db=float(s.active_range_db),
              slow=1.0 / max(1.0, float(s.time_constant_s) * frames_per_s),
              smooth=1.0 / max(1.0, float(s.get('smooth_s', 0.0)) * frames_per_s))


def power_db(power):
  return 10.0 * jnp.log10(jnp.maximum(power, 1e-20))


def running_level(state, rms, level_rule: Rule):
  """Running active level over F2 frames.

  Args:
    state: [b, c, STATE_SIZE] (zeros before the first frame).
    rms: [b, c, t] F2-frame RMS.
    level_rule: `rule(...)`.
  Returns:
    (state after the last frame [b, c, STATE_SIZE], level [b, c, t] in dB after each frame,
    NOT_SEEN_DB before a channel's first active frame).
  """
  def step(st, r):
    peak, power, count, smoothed = st[..., 0], st[..., 1], st[..., 2], st[..., 3]
    p = jnp.square(r.astype(jnp.float32))
    peak = jnp.maximum(peak, p)
    active = (p > 0) & (power_db(p) > power_db(peak) - level_rule.range_db)
    first = (count == 0) & active
    count = count + active
    rate = jnp.where(active, jnp.maximum(1.0 / jnp.maximum(count, 1.0), level_rule.slow), 0.0)
    power = power + rate * (p - power)
    # Every active frame nudges the running power: smoothed in dB, the gain's frame-to-frame
    # jitter goes (the level starts at its first value, not at silence).
    smoothed = jnp.where(first, power_db(power),
                         smoothed + level_rule.smooth * (power_db(power) - smoothed))
    level = jnp.where(count > 0, smoothed, NOT_SEEN_DB)
    return frames.stack([peak, power, count, smoothed], axis=-1), level  # exportable to ONNX

  state, level = jax.lax.scan(step, state.astype(jnp.float32), jnp.moveaxis(rms, -1, 0))
  return state, jnp.moveaxis(level, 0, -1)


def gains(model_config, offset, level_db, target_db=0.0):
  """MLP outputs [b, c, t] and running levels [b, c, t] dB -> linear gains [b, c, t] >= 0.

  gain dB = level_db target (+ target_db [b, c, t]: a named role's level) + offset *
  offset_scale_db - running level, bounded to [min_gain_db, max_gain_db]; before a channel's
  first active frame, the offset alone.
  """
  s = model_config.staging
  offset_db = offset * float(s.offset_scale_db)
  staged = jnp.where(level_db > NOT_SEEN_DB, float(s.level_db) + target_db - level_db, 0.0)
  gain_db = jnp.clip(staged + offset_db, float(s.min_gain_db), float(s.max_gain_db))
  return jnp.power(10.0, gain_db / 20.0)
