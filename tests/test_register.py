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


def test_a_relation_that_reads_its_own_channel_counts_the_parts_like_it():
  # Channels 0 and 1 alike (feature 0 = 1), channel 2 not; all with the same register.
  y = jnp.asarray([[[[1.0, 0.0]], [[1.0, 0.0]], [[-1.0, 0.0]]]], jnp.float32)
  reg = jnp.zeros((1, 3, 1), jnp.float32)
  mask = jnp.ones((1, 3), bool)
  rel = register.Relation(2, reads_own=True)
  params = rel.init(jax.random.PRNGKey(0), y, reg, mask)['params']
  # Its own projection starts at zero: it is the plain relation until it learns (the output
  # layer made live in both, or both would be 0).
  live = {'kernel': jnp.ones((3, 2)), 'bias': jnp.zeros(2)}
  other = {'kernel': jnp.asarray([[1.0, -2.0], [0.5, 1.0]]), 'bias': jnp.ones(2)}
  params = dict(params, other=other, out=live)
  plain = {k: v for k, v in params.items() if k != 'own'}
  y_var = y.at[0, 2, 0, 1].set(3.0)
  ours = np.asarray(rel.apply({'params': params}, y_var, reg, mask))
  np.testing.assert_allclose(ours, register.Relation(2).apply({'params': plain}, y_var, reg, mask),
                             atol=1e-6)
  assert np.abs(ours).max() > 0.1
  # PReLU(y_j - y_i) + PReLU(y_i - y_j) over the others: small for a part like me.
  params = dict(params,
                other={'kernel': jnp.asarray([[1.0, -1.0], [0.0, 0.0]]), 'bias': jnp.zeros(2)},
                own={'kernel': jnp.asarray([[-1.0, 1.0], [0.0, 0.0]])}, above=jnp.zeros(2),
                PReLU_0={'negative_slope': jnp.asarray(0.0)},
                out={'kernel': jnp.asarray([[1.0, 0.0], [1.0, 0.0], [0.0, 0.0]]),
                     'bias': jnp.zeros(2)})
  term = np.asarray(rel.apply({'params': params}, y, reg, mask))[0, :, 0, 0]
  np.testing.assert_allclose(term, [2.0, 2.0, 4.0], atol=1e-6)  # 0 and 1 each have one like them


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


def _voice(hz, n=2205, partials=(1.0, 0.6, 0.4, 0.3)):
  """A harmonic tone (its second partial close to the first in level, as a voice's)."""
  t = np.arange(n) / SR
  return sum(a * np.sin(2 * np.pi * hz * (k + 1) * t) for k, a in enumerate(partials)).astype(np.float32)


def test_frame_pitch_names_each_channels_own_fundamental_through_bleed():
  # Three voices, each microphone hearing the other two 6 dB down;
  # the fourth channel is padding (silent).
  # The top voice dark, the bottom one bright: the centroid would order them by timbre.
  hz = (415.0, 262.0, 131.0)
  own = [_voice(415.0, partials=(1.0, 0.1, 0.05)), _voice(262.0),
         _voice(131.0, partials=(0.3, 0.5, 0.8, 1.0, 1.0, 0.9, 0.8, 0.8))]
  x = np.stack([own[i] + 0.5 * sum(own[j] for j in range(3) if j != i) for i in range(3)]
               + [np.zeros(2205, np.float32)])
  weight, pitch = register.frame_pitch(jnp.asarray(x)[None, :, None], RULE)
  np.testing.assert_allclose(pitch[0, :3, 0], np.log2(np.asarray(hz) / 1000.0), atol=0.03)
  assert float(pitch[0, 3, 0]) == 0.0 and float(weight[0, 3, 0]) == 0.0  # silence: no weight
  assert np.all(np.asarray(weight[0, :3, 0]) > 0)
  # The spectral centroid of the same channels puts the bottom voice above the top one.
  _, centroid = register.frame_stats(jnp.asarray(x), RULE)
  assert float(centroid[2]) > float(centroid[0])
  # A masked channel holds no share, whatever it carries.
  loud = x.copy()
  loud[3] = 3.0 * _voice(330.0)
  mask = jnp.asarray([[True, True, True, False]])
  w_masked, masked = register.frame_pitch(jnp.asarray(loud)[None, :, None], RULE, mask)
  np.testing.assert_allclose(masked[0, :3], pitch[0, :3], atol=1e-6)
  np.testing.assert_allclose(w_masked[0, :3], weight[0, :3], rtol=1e-5)
  w_unmasked, _ = register.frame_pitch(jnp.asarray(loud)[None, :, None], RULE)
  assert np.abs(np.asarray(w_unmasked[0, :3] / weight[0, :3]) - 1).max() > 0.01  # it would


def _ends(reg, mask, sharpness=8.0):
  """Ends' (top, bottom) per channel: its projection set to read them out as features 0 and 1."""
  reg = jnp.asarray(reg, jnp.float32)[None, :, None]
  y = jnp.zeros(reg.shape + (4,), jnp.float32)
  ends = register.Ends(sharpness=sharpness)
  params = ends.init(jax.random.PRNGKey(0), y, reg, jnp.asarray(mask)[None])['params']
  assert not np.any(np.asarray(ends.apply({'params': params}, y, reg, jnp.asarray(mask)[None])))
  params['out']['kernel'] = jnp.eye(2, 4)
  return np.asarray(ends.apply({'params': params}, y, reg, jnp.asarray(mask)[None]))[0, :, 0, :2]


def test_ends_name_the_top_and_the_bottom_part_a_third_apart():
  # Four parts, the top one a third (0.3 octave) above the next; the starting term is zero.
  out = _ends([0.3, 0.0, -0.5, -1.2], [True] * 4)
  assert out[0, 0] > 0.85 and out[3, 1] > 0.95  # the top; the bottom
  assert out[1:, 0].max() < 0.1 and out[:3, 1].max() < 0.05  # nobody else


def test_ends_leave_out_channels_not_heard_yet():
  # Channel 2 has no running pitch yet (0, i.e. 1 kHz, above the others): not the top.
  reg = jnp.asarray([0.3, 0.0, 0.0, -1.2], jnp.float32)[None, :, None]
  heard = jnp.asarray([True, True, False, True])[None, :, None]
  y = jnp.zeros(reg.shape + (4,), jnp.float32)
  mask = jnp.ones((1, 4), bool)
  ends = register.Ends(sharpness=8.0)
  params = ends.init(jax.random.PRNGKey(0), y, reg, mask, heard)['params']
  params['out']['kernel'] = jnp.eye(2, 4)
  out = np.asarray(ends.apply({'params': params}, y, reg, mask, heard))[0, :, 0, :2]
  assert out[0, 0] > 0.85 and out[3, 1] > 0.95
  np.testing.assert_array_equal(out[2], [0.0, 0.0])


def test_ends_are_blind_to_order_and_to_masked_channels():
  out = _ends([0.0, 2.0, -1.0, 5.0], [True, True, True, False])  # the masked 5.0 is no top
  assert out[1, 0] > 0.99 and out[2, 1] > 0.99
  perm = [2, 0, 3, 1]
  swapped = _ends(np.asarray([0.0, 2.0, -1.0, 5.0])[perm], np.asarray([True, True, True, False])[perm])
  np.testing.assert_allclose(swapped[[0, 1, 3]], out[[2, 0, 1]], atol=1e-6)
  np.testing.assert_allclose(_ends([0.4], [True]), [[1.0, 1.0]], atol=1e-6)  # alone: both


@pytest.mark.parametrize('flag', ['pan_relation', 'pan_layout', 'ends'])
def test_the_pan_heads_register_terms_need_the_register(flag):
  config = ml_collections.ConfigDict({'register': {'enabled': False, flag: True}})
  with pytest.raises(ValueError, match='register.enabled'):
    getattr(register, flag)(config)
  assert not getattr(register, flag)(ml_collections.ConfigDict({}))  # older configs: off


def _layout(spread, reg, mask, width=0.5):
  """Layout's term where feature 0 says which channels are spread parts (1) or not (-1)."""
  y = jnp.asarray(spread, jnp.float32)[None, :, None, None] * jnp.ones((1, 1, 1, 3))
  reg = jnp.asarray(reg, jnp.float32)[None, :, None]
  layout = register.Layout(sharpness=8.0)
  params = layout.init(jax.random.PRNGKey(0), y, reg, jnp.asarray(mask)[None])['params']
  params['spread'] = {'kernel': jnp.asarray([[20.0], [0.0], [0.0]]), 'bias': jnp.zeros(1)}
  params['width']['bias'] = jnp.full(1, width)
  return np.asarray(layout.apply({'params': params}, y, reg, jnp.asarray(mask)[None]))[0, :, 0]


def test_the_layout_sends_spread_parts_to_alternate_sides_in_order_of_register():
  # Spread parts at 0.5, -1 and 1.5 octaves, a centred part (a bass) below them all.
  term = _layout([1, 1, 1, -1], [0.5, -1.0, 1.5, -2.0], [True] * 4)
  np.testing.assert_allclose(term, [0.5, -0.5, -0.5, 0.0], atol=1e-3)  # lowest left, alternating
  # Blind to channel order; a masked channel is not counted, whatever it holds.
  order = [2, 0, 3, 1]
  np.testing.assert_allclose(_layout(np.array([1, 1, 1, -1])[order],
                                     np.array([0.5, -1.0, 1.5, -2.0])[order], [True] * 4),
                             term[order], atol=1e-5)
  masked = _layout([1, 1, 1, 1, 1], [0.5, -1.0, 1.5, -2.0, -3.0], [True, True, True, True, False])
  np.testing.assert_allclose(masked[:4], [-0.5, 0.5, 0.5, -0.5], atol=1e-3)
  # Its width starts at zero: a mixer trained without the term starts where it was.
  y, reg, mask = jnp.ones((1, 3, 2, 4)), jnp.zeros((1, 3, 2)), jnp.ones((1, 3), bool)
  layout = register.Layout()
  params = layout.init(jax.random.PRNGKey(1), y, reg, mask)
  np.testing.assert_array_equal(layout.apply(params, y, reg, mask), 0.0)
