"""Tests for the AiLive Mixer model: shapes, masks, permutations, causality, gradients, tracing."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alm_jax import checks
from alm_jax import frames
from alm_jax.embeddings import vggish_network
from alm_jax.models import build_model

NUM_SAMPLES = 97020  # 2.2 s: 44 MR frames, 2 SR frames


TRACES = {'mr': [], 'sr': []}


@functools.lru_cache(maxsize=None)
def _setup(name):
  """(config, model, params, forward); every test uses [2, 3, NUM_SAMPLES] so forward compiles once."""
  from conftest import load_config, shrink_model  # pylint: disable=g-import-not-at-top
  config = shrink_model(load_config(name))
  model = build_model(config)
  # Parameters do not depend on the input length: init on the shortest valid input.
  f1 = frames.FrameSpec.from_config(config.model).f1
  params = jax.jit(model.init)(jax.random.PRNGKey(1), jnp.zeros((1, 1, f1)), jnp.ones((1, 1), bool))

  @jax.jit
  def forward(p, audio, mask):
    TRACES[name].append(audio.shape)
    return model.apply(p, audio, mask)

  return config, model, params, forward


@pytest.fixture(params=['mr', 'sr'])
def setup(request):
  return _setup(request.param)


def _audio(seed, channels, n=NUM_SAMPLES, batch=2):
  return jax.random.normal(jax.random.PRNGKey(seed), (batch, channels, n)) * 0.1


def test_shapes(setup):
  config, _, params, apply = setup
  spec = frames.FrameSpec.from_config(config.model)
  out = apply(params, _audio(2, 3), jnp.ones((2, 3), bool))
  t = NUM_SAMPLES // spec.f2
  assert out['gains'].shape == out['pred_gains'].shape == (2, 3, t)
  assert out['mix'].shape == (2, t * spec.f2)
  assert bool(jnp.all(out['pred_gains'] >= 0))
  # Zero-latency: frame t applies the gain predicted on frame t - 1.
  np.testing.assert_allclose(out['gains'][..., 1:], out['pred_gains'][..., :-1])
  np.testing.assert_allclose(out['gains'][..., 0], config.model.initial_gain)


def test_padded_channel_changes_nothing(setup):
  _, _, params, apply = setup
  mask = jnp.array([[True, True, False]] * 2)
  audio = _audio(3, 3).at[:, 2].set(0.0)
  base = apply(params, audio, mask)
  noisy = audio.at[:, 2].set(_audio(4, 1)[:, 0] * 10.0)
  padded = apply(params, noisy, mask)
  np.testing.assert_allclose(padded['mix'], base['mix'], atol=1e-5)
  np.testing.assert_allclose(padded['gains'], base['gains'], atol=1e-5)
  np.testing.assert_array_equal(padded['gains'][:, 2], 0.0)


def test_channel_permutation_equivariance(setup):
  _, _, params, apply = setup
  audio = _audio(5, 3)
  mask = jnp.array([[True, True, True], [True, False, True]])
  perm = jnp.array([2, 0, 1])
  base = apply(params, audio, mask)
  permuted = apply(params, audio[:, perm], mask[:, perm])
  np.testing.assert_allclose(permuted['gains'], base['gains'][:, perm], atol=1e-5)
  np.testing.assert_allclose(permuted['mix'], base['mix'], atol=1e-5)


def test_causality(setup):
  config, _, params, apply = setup
  spec = frames.FrameSpec.from_config(config.model)
  audio = _audio(6, 3)
  mask = jnp.ones((2, 3), bool)
  base = np.asarray(apply(params, audio, mask)['mix'])
  # Cuts inside a frame, on the last sample of a frame, and (MR) after a new F1 frame starts.
  cuts = [spec.f2 // 3, spec.f2 - 1] + ([7 * spec.f2 + 100] if spec.stride > 1 else [])
  for n in cuts:
    changed = audio.at[..., n + 1:].set(_audio(7, 3, NUM_SAMPLES - n - 1) * 5)
    out = np.asarray(apply(params, changed, mask)['mix'])
    np.testing.assert_array_equal(out[:, :n + 1], base[:, :n + 1])
    assert not np.allclose(out[:, n + 1:], base[:, n + 1:])


def spec_len(model):
  # Three F1 groups (MR) / frames (SR): with the zero-latency shift the last
  # frame's prediction is unused, so the GRU's recurrent weights need >= 3 frames.
  spec = frames.FrameSpec.from_config(model.config)
  return spec.f1 + 2 * spec.stride * spec.f2


def test_gradients_finite_and_nonzero(setup):
  _, model, params, _ = setup
  audio = _audio(8, 3, n=spec_len(model))
  mask = jnp.array([[True, True, True], [True, True, False]])
  target = jnp.sum(audio, axis=1) * 0.5

  def loss(p):
    mix = model.apply(p, audio, mask)['mix']
    return jnp.mean(jnp.square(mix - target[:, :mix.shape[-1]]))

  grads = jax.jit(jax.grad(loss))(params)
  for path, g in jax.tree_util.tree_leaves_with_path(grads):
    name = jax.tree_util.keystr(path)
    assert bool(jnp.all(jnp.isfinite(g))), name
    assert float(jnp.max(jnp.abs(g))) > 0.0, name


def test_traces_once_for_a_fixed_shape():
  _, _, params, forward = _setup('mr')
  for seed in range(3):
    mask = jnp.array([[True, seed > 0, True], [True, True, seed < 2]])
    forward(params, _audio(seed, 3), mask)['mix'].block_until_ready()
  # Every test in this module shares the compiled forward pass.
  assert TRACES['mr'] == [(2, 3, NUM_SAMPLES)]


@pytest.mark.parametrize('shape,mask_shape,match', [
    ((3, NUM_SAMPLES), (3,), 'batch, channels, samples'),
    ((1, 0, NUM_SAMPLES), (1, 0), 'zero channels'),
    ((1, 2, 40000), (1, 2), 'shorter than one F1 frame'),
    ((1, 2, NUM_SAMPLES), (1, 3), 'channel_mask'),
])
def test_bad_shapes_fail_before_compiling(shape, mask_shape, match):
  _, model, params, _ = _setup('mr')
  with pytest.raises(ValueError, match=match):
    # eval_shape traces without compiling: the error comes from the shape check.
    jax.eval_shape(model.apply, params, jnp.zeros(shape), jnp.ones(mask_shape, bool))


def test_bad_values_are_rejected():
  audio = np.zeros((2, 2, 10), np.float32)
  mask = np.ones((2, 2), bool)
  checks.check_values(audio, mask)
  with pytest.raises(ValueError, match='NaN or Inf .*batch 1, channel 0'):
    checks.check_values(np.where(np.arange(2)[:, None, None] == 1, np.nan, audio), mask)
  with pytest.raises(ValueError, match=r'batch elements \[1\] have every channel masked'):
    checks.check_values(audio, np.array([[True, False], [False, False]]))
  with pytest.raises(ValueError, match='more than the 8'):
    checks.check_shapes((1, 9, 50000), (1, 9), 42998, max_channels=8)


def test_vggish_architecture_and_names():
  vggish = vggish_network.VGGish()
  shapes = jax.eval_shape(vggish.init, jax.random.PRNGKey(0), jnp.zeros((1, 96, 64)))['params']
  assert shapes['conv1']['kernel'].shape == (3, 3, 1, 64)
  assert shapes['conv4_2']['kernel'].shape == (3, 3, 512, 512)
  assert shapes['fc1_1']['kernel'].shape == (6 * 4 * 512, 4096)
  assert shapes['fc2']['kernel'].shape == (4096, 128)
  total = sum(np.prod(x.shape) for x in jax.tree.leaves(shapes))
  assert 72e6 < total < 73e6
  out = jax.eval_shape(vggish.apply, {'params': shapes}, jnp.zeros((5, 96, 64)))
  assert out.shape == (5, 128)


@functools.lru_cache(maxsize=None)
def _running_level_setup():
  """A staged MR model whose patches are levelled by the channel's running level."""
  from conftest import load_config, shrink_model  # pylint: disable=g-import-not-at-top
  config = shrink_model(load_config('mr'))
  config.model.update_from_flattened_dict({
      'gain_reference': 'staging', 'embed_level.enabled': True,
      'embed_level.reference': 'running'})
  model = build_model(config)
  f1 = frames.FrameSpec.from_config(config.model).f1
  params = jax.jit(model.init)(jax.random.PRNGKey(1), jnp.zeros((1, 1, f1)), jnp.ones((1, 1), bool))
  return config, model, params, jax.jit(model.apply)


def test_running_level_embedding_is_causal_and_blind_to_a_channels_input_level():
  config, model, params, apply = _running_level_setup()
  spec = frames.FrameSpec.from_config(config.model)
  audio, mask = _audio(9, 3), jnp.ones((2, 3), bool)
  base = apply(params, audio, mask)
  # Causal: the level an F1 frame is brought to uses no audio after the frame's end.
  n = 7 * spec.f2 + 100
  changed = audio.at[..., n + 1:].set(_audio(10, 3, NUM_SAMPLES - n - 1) * 5)
  np.testing.assert_array_equal(np.asarray(apply(params, changed, mask)['mix'])[:, :n + 1],
                                np.asarray(base['mix'])[:, :n + 1])

  def embeddings(a):
    def run(mod, a):
      signal, g = mod.front.frame_input(a, spec)
      level = mod.f1_levels(mod.initial_carry(*a.shape[:2]), frames.f2_frames(a, spec), g)
      patches = mod.front.log_mel_frames(signal, g, spec.stride * spec.f2)
      return mod.embedding_of(patches.reshape((-1,) + patches.shape[-2:]), level.reshape(-1))
    return np.asarray(model.apply(params, a, method=run))

  # A channel 12 dB hotter: its running level moves with it, so the embedding reads the same.
  louder = audio.at[:, 1].multiply(10 ** (12 / 20))
  np.testing.assert_allclose(embeddings(louder), embeddings(audio), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize('overrides,match', [
    ({'embed_level.reference': 'running'}, "gain_reference = 'staging'"),
    ({'embed_level.reference': 'own'}, "'patch' or 'running'"),
])
def test_running_level_embedding_refuses_what_it_cannot_read(overrides, match):
  from conftest import load_config, shrink_model  # pylint: disable=g-import-not-at-top
  config = shrink_model(load_config('mr'))
  config.model.update_from_flattened_dict(dict(overrides, **{'embed_level.enabled': True}))
  model = build_model(config)
  with pytest.raises(ValueError, match=match):
    jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 1, NUM_SAMPLES)),
                   jnp.ones((1, 1), bool))


def test_embed_dropout_drops_whole_channels_in_training_only():
  from conftest import load_config, shrink_model  # pylint: disable=g-import-not-at-top
  config = shrink_model(load_config('mr'))
  config.model.embed_dropout = 0.5
  model = build_model(config)
  # One channel per batch element, so encoder 1's attention mixes none of them.
  e = jax.random.normal(jax.random.PRNGKey(0), (16, 1, 3, config.model.embedding.dim)) + 1.0
  mask = jnp.ones((16, 1), bool)
  params = model.init(jax.random.PRNGKey(1), e, mask, method=model.contextualize)
  run = lambda x, train: np.asarray(model.apply(  # pylint: disable=unnecessary-lambda-assignment
      params, x, mask, not train, method=model.contextualize, rngs={'dropout': jax.random.PRNGKey(2)}))
  plain = run(e, False)
  np.testing.assert_array_equal(plain, np.asarray(model.apply(params, e, mask,
                                                              method=model.contextualize)))
  # In training each channel keeps its embedding or reads as all zeros, over the whole segment.
  seen, zeros = run(e, True), run(jnp.zeros_like(e), False)
  dropped = np.all(np.isclose(seen, zeros, atol=1e-5), axis=(1, 2, 3))
  kept = np.all(np.isclose(seen, plain, atol=1e-5), axis=(1, 2, 3))
  assert np.all(dropped ^ kept) and 0 < dropped.sum() < 16
