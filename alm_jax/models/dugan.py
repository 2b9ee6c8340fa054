"""The Dugan gain-sharing automixer: each open mic gets its share of the total smoothed input power.

Per F2 frame, each channel's input power p_i (the frame's mean square,
averaged exponentially with `config.model.time_constant_s`) and its weight
w_i (`config.model.weights_db`, a per-channel dB offset, as on a Dugan unit)
give the power gain g_i = w_i p_i / sum_j w_j p_j over the open channels, so
the gains sum to 1 with unit weights: one talker gets unity, two equal ones
-3 dB each, N equal ones -10 log10 N dB (the NOM attenuation that keeps the
mix's total gain constant; `nom_attenuation=False` multiplies by the number of
open mics instead, so equal inputs stay at unity). The applied amplitude gain
is sqrt(g_i). Controls: a noise-floor gate (a channel below
`noise_floor_dbfs` is closed and shares nothing: its gain falls to
`closed_gain_db`), and last-mic-hold (when every channel is below the floor,
the last open mic stays open, rather than all closing at once). Zero latency
in the ALM's sense: frame t's gains come from frames up to t - 1. No
parameters.
"""

import jax.numpy as jnp
import numpy as np

from alm_jax.models import console


class Dugan(console.FrameRuleMixer):
  """See the module docstring; state: `power` [b, c], `last_open` [b, c] bool."""

  description = 'Dugan automixer'

  def __init__(self, model_config):
    super().__init__(model_config)
    m = model_config
    self.alpha = console.smoothing(float(m.time_constant_s), self.spec.f2, self.spec.sample_rate)
    weights_db = console.per_channel(m.weights_db, self.capabilities.max_channels, 'weights_db')
    self.weights = (10.0 ** (weights_db / 10.0)).astype(np.float32)  # power weights
    self.floor = float(10.0 ** (m.noise_floor_dbfs / 10.0))
    self.closed = float(10.0 ** (m.closed_gain_db / 20.0))

  def rule_state(self, batch, channels):
    return {'power': jnp.zeros((batch, channels), jnp.float32),
            'last_open': jnp.zeros((batch, channels), bool)}

  def shares(self, power, mask, last_open):
    """Power gains [b, c] (sum to 1 over open channels with unit weights) and the open channels."""
    c = power.shape[1]
    w = jnp.take(jnp.asarray(self.weights), jnp.arange(c))  # c may be symbolic (export)
    above = mask & (power > self.floor)
    # Last-mic-hold: with nothing above the floor, the last open mics stay open.
    hold = ~jnp.any(above, axis=1, keepdims=True)
    open_ = jnp.where(hold, last_open & mask, above)
    weighted = jnp.where(open_, w * jnp.maximum(power, self.floor), 0.0)
    total = jnp.sum(weighted, axis=1, keepdims=True)
    share = jnp.where(open_, weighted / jnp.maximum(total, 1e-30), 0.0)
    if not self.config.nom_attenuation:
      share = share * jnp.sum(open_, axis=1, keepdims=True).astype(share.dtype)
    return share, open_

  def update(self, state, power, mask):
    p = self.alpha * state['power'] + (1.0 - self.alpha) * power
    share, open_ = self.shares(p, mask, state['last_open'])
    gain = jnp.where(open_, jnp.sqrt(share), self.closed)
    return {'power': p, 'last_open': open_, 'gain': jnp.where(mask, gain, 0.0).astype(jnp.float32)}


def build_mixer(model_config) -> Dugan:
  return Dugan(model_config)
