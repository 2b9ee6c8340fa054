"""alm_jax.models.register: the per-frame register, its running mean, and the relation term."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from alm_jax.models import register

SR = 44100
RULE = register.Rule(n_fft=2048, sample_rate=SR, slow=0.01)


def _tone(hz, n=2205, amp=1.0):
  return (amp * np.sin(2 * np.pi * hz * np.arange(n) / SR)).astype(np.float32)


def test_frame_register_is_octaves_from_1_khz():
  x = jnp.asarray(np.stack([_tone(2000.0), _tone(250.0), _tone(1000.0, amp=0.01),
                            np.zeros(2205, np.float32)]))
  power, reg = register.frame_stats(x, RULE)
  np.testing.assert_allclose(reg[:3], [1.0, -2.0, 0.0], atol=0.05)
  assert float(reg[3]) == 0.0 and float(power[3]) == 0.0  # silence: no register, no weight
  assert float(power[0]) == pytest.approx(1e4 * float(power[2]), rel=1e-3)
  # A frame shorter than the spectrum is padded in front, not refused.
  _, short = register.frame_stats(jnp.asarray(_tone(2000.0, n=1000))[None], RULE)
  assert float(short[0]) == pytest.approx(1.0, abs=0.1)


def test_running_register_weighs_frames_by_power_and_ignores_silence():
  power = jnp.asarray([[[0.0, 1.0, 3.0, 0.0]]])
  reg = jnp.asarray([[[5.0, -1.0, 1.0, 7.0]]])
  state, out = register.running(jnp.zeros((1, 1, register.STATE_SIZE)), power, reg, RULE)
  # Before any sound: 0; then the power-weighted mean of the frames heard; silence changes nothing.
  np.testing.assert_allclose(out[0, 0], [0.0, -1.0, 0.5, 0.5], atol=1e-6)
  # In two pieces, through the state: the same.
  st, a = register.running(jnp.zeros((1, 1, register.STATE_SIZE)), power[..., :2], reg[..., :2], RULE)
  _, b = register.running(st, power[..., 2:], reg[..., 2:], RULE)
  np.testing.assert_allclose(np.concatenate([a, b], -1), out, atol=1e-6)
  assert float(state[0, 0, 0]) == 2  # frames heard


def _relation(seed=0, dim=3):
  rel = register.Relation(dim)
  rng = np.random.default_rng(seed)
  y = jnp.asarray(rng.normal(size=(1, 4, 5, 6)), jnp.float32)
  reg = jnp.asarray(rng.normal(size=(1, 4, 5)), jnp.float32)
  params = rel.init(jax.random.PRNGKey(seed), y, reg, jnp.ones((1, 4), bool))['params']
  return rel, params, y, reg


def test_relation_starts_at_zero():
  rel, params, y, reg = _relation()
  out = rel.apply({'params': params}, y, reg, jnp.ones((1, 4), bool))
  assert out.shape == y.shape and not np.asarray(out).any()


def test_relation_is_blind_to_order_and_to_masked_channels():
  rel, params, y, reg = _relation()
  params = jax.tree.map(lambda p: p + 0.3, params)  # the zero-initialised output made live
  mask = jnp.asarray([[True, True, True, False]])
  out = np.asarray(rel.apply({'params': params}, y, reg, mask))
  order = np.array([2, 0, 1, 3])
  permuted = np.asarray(rel.apply({'params': params}, y[:, order], reg[:, order], mask))
  np.testing.assert_allclose(permuted, out[:, order], rtol=1e-5, atol=1e-5)
  # What the masked channel holds changes nothing for the others.
  noisy = np.asarray(rel.apply({'params': params}, y.at[:, 3].set(9.0), reg.at[:, 3].set(-9.0), mask))
  np.testing.assert_allclose(noisy[:, :3], out[:, :3], rtol=1e-5, atol=1e-5)
  # It does depend on who sits above whom.
  swapped = np.asarray(rel.apply({'params': params}, y, reg.at[:, 0].set(reg[:, 0] + 3.0), mask))
  assert np.abs(swapped[:, 1:3] - out[:, 1:3]).max() > 1e-3


def test_a_sharper_relation_tells_close_parts_apart():
  # Two parts a third apart (0.3 octave): the sharper term sees them further apart.
  y = jnp.zeros((1, 2, 1, 6), jnp.float32)
  reg = jnp.asarray([[[0.0], [0.3]]], jnp.float32)
  mask = jnp.ones((1, 2), bool)
  soft, sharp = register.Relation(3), register.Relation(3, sharpness=4.0)
  params = jax.tree.map(lambda p: p + 0.3, soft.init(jax.random.PRNGKey(0), y, reg, mask)['params'])
  a = np.asarray(soft.apply({'params': params}, y, reg, mask))
  b = np.asarray(sharp.apply({'params': params}, y, reg, mask))
  assert np.abs(b[:, 0] - b[:, 1]).max() > np.abs(a[:, 0] - a[:, 1]).max() + 1e-3


def test_pan_relation_needs_the_register():
  config = ml_collections.ConfigDict({'register': {'enabled': False, 'pan_relation': True}})
  with pytest.raises(ValueError, match='register.enabled'):
    register.pan_relation(config)
  assert not register.pan_relation(ml_collections.ConfigDict({}))  # older configs: off
