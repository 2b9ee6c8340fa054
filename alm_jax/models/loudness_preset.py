"""The equal-loudness preset: every active channel brought to the same running loudness, at a house level.

Per channel, a causal running loudness: the K-weighted (BS.1770) power of each
F2 frame, averaged exponentially with `config.model.time_constant_s`, in LUFS.
A channel is active while that loudness is above `config.model.gate_lufs`;
each active channel gets the gain that puts it at `target_lufs - 10 log10(N)`
with N active channels, so N uncorrelated channels sum to about
`target_lufs` (the house level). The gain is bounded to
[min_gain_db, max_gain_db] and a gated channel holds its last gain (it is
neither boosted into noise nor cut when it goes quiet). Zero latency: the
gain of frame t comes from frames up to t - 1. It has no parameters.
"""

import jax.numpy as jnp
import numpy as np

from alm_jax.models import console


class LoudnessPreset(console.FrameRuleMixer):
  """See the module docstring; state: `power` [b, c] (the running K-weighted mean square)."""

  description = 'equal-loudness preset'
  k_weighted = True

  def __init__(self, model_config):
    super().__init__(model_config)
    m = model_config
    if not m.min_gain_db < m.max_gain_db:
      raise ValueError(f'config.model.min_gain_db ({m.min_gain_db}) must be below '
                       f'config.model.max_gain_db ({m.max_gain_db}).')
    self.alpha = console.smoothing(float(m.time_constant_s), self.spec.f2, self.spec.sample_rate)

  def rule_state(self, batch, channels):
    return {'power': jnp.zeros((batch, channels), jnp.float32)}

  def update(self, state, power, mask):
    m = self.config
    p = self.alpha * state['power'] + (1.0 - self.alpha) * power
    loudness = console.LOUDNESS_OFFSET_DB + 10.0 * jnp.log10(jnp.maximum(p, 1e-20))
    active = mask & (loudness > m.gate_lufs)
    count = jnp.maximum(jnp.sum(active, axis=1, keepdims=True), 1).astype(jnp.float32)
    target = m.target_lufs - 10.0 * jnp.log10(count)
    gain_db = jnp.clip(target - loudness, m.min_gain_db, m.max_gain_db)
    gain = jnp.where(active, jnp.power(10.0, gain_db / 20.0), state['gain'])
    return {'power': p, 'gain': gain.astype(jnp.float32)}


def build_mixer(model_config) -> LoudnessPreset:
  return LoudnessPreset(model_config)


def gain_db_for(loudness_lufs: np.ndarray, target_lufs: float, active: int) -> np.ndarray:
  """The preset's steady-state gain (dB) for channels at these loudnesses (for tests and docs)."""
  return target_lufs - 10.0 * np.log10(max(active, 1)) - np.asarray(loudness_lufs)
