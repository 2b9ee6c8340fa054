"""Tests for alm_jax/models/roles.py: the ALM's named roles and their learned levels."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alm_jax import frames
from alm_jax.models import build_model
from alm_jax.models import roles
from conftest import load_config, shrink_model, write_role_centroids


def test_running_mean_is_over_played_frames_and_carries_across_calls():
  rng = np.random.default_rng(1)
  raw = jnp.asarray(rng.normal(size=(1, 2, 10, 4)), jnp.float32)
  played = jnp.asarray(rng.random((1, 2, 10)) > 0.4).at[1:, 0, :3].set(False)
  played = played.at[0, 0, :3].set(False)
  state = jnp.zeros((1, 2, 5))
  last, mean, named = roles.running(state, raw, played)
  p = np.asarray(played, np.float64)
  for t in range(10):
    w = p[..., :t + 1]
    expect = (w[..., None] * np.asarray(raw)[..., :t + 1, :]).sum(-2) / np.maximum(w.sum(-1), 1)[..., None]
    np.testing.assert_allclose(mean[..., t, :], expect, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(named[0, 0, :3], False)
  # Split in two, the second call from the first's state: the same means.
  first, _, _ = roles.running(state, raw[..., :6, :], played[..., :6])
  _, tail, _ = roles.running(first, raw[..., 6:, :], played[..., 6:])
  np.testing.assert_allclose(tail, mean[..., 6:, :], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(last, jnp.concatenate(
      [jnp.sum(played[..., None] * raw, axis=-2), jnp.sum(played, -1)[..., None]], -1), rtol=1e-5)


def _model(tmp_path, **overrides):
  config = shrink_model(load_config('mr'))
  config.model.update_from_flattened_dict(dict({
      'gain_reference': 'staging', 'roles.enabled': True,
      'roles.centroids': write_role_centroids(tmp_path / 'c.npz', config.model.embedding.dim)},
      **overrides))
  return config, build_model(config)


def test_a_named_roles_level_moves_the_staged_gain_by_that_level(tmp_path):
  config, model = _model(tmp_path)
  spec = frames.FrameSpec.from_config(config.model)
  audio = 0.1 * jax.random.normal(jax.random.PRNGKey(0), (1, 3, spec.f1 + 12 * spec.f2))
  mask = jnp.ones((1, 3), bool)
  params = jax.jit(model.init)(jax.random.PRNGKey(1), audio, mask)
  assert params['params']['role_offsets'].shape == (3,)  # one per centroid, from 0
  apply = jax.jit(model.apply)
  base = np.asarray(apply(params, audio, mask)['pred_gains'])
  moved = jax.tree.map(lambda x: x, params)
  moved['params']['role_offsets'] = jnp.full((3,), 6.0)
  got = np.asarray(apply(moved, audio, mask)['pred_gains'])
  # Every channel plays from its first frame, so every frame's gain is 6 dB up.
  np.testing.assert_allclose(20 * np.log10(got / base), 6.0, atol=1e-3)


def test_roles_refuse_what_they_cannot_read(tmp_path):
  _, model = _model(tmp_path, gain_reference='none')
  x, mask = jnp.zeros((1, 1, 200000)), jnp.ones((1, 1), bool)
  with pytest.raises(ValueError, match="gain_reference = 'staging'"):
    jax.eval_shape(model.init, jax.random.PRNGKey(0), x, mask)
  config = shrink_model(load_config('mr'))
  config.model.update_from_flattened_dict({
      'gain_reference': 'staging', 'roles.enabled': True,
      'roles.centroids': write_role_centroids(tmp_path / 'wide.npz', 7)})
  with pytest.raises(ValueError, match='tools/role_centroids.py'):
    jax.eval_shape(build_model(config).init, jax.random.PRNGKey(0), x, mask)
  config.model.roles.centroids = str(tmp_path / 'missing.npz')
  with pytest.raises(FileNotFoundError, match='missing.npz'):
    jax.eval_shape(build_model(config).init, jax.random.PRNGKey(0), x, mask)


def test_similarity_input_reads_only_the_frames_likeness_to_each_role(tmp_path):
  config, model = _model(tmp_path, **{'roles.input': 'similarity'})
  spec = frames.FrameSpec.from_config(config.model)
  audio = 0.1 * jax.random.normal(jax.random.PRNGKey(2), (1, 2, spec.f1 + 6 * spec.f2))
  mask = jnp.ones((1, 2), bool)
  params = jax.jit(model.init)(jax.random.PRNGKey(1), audio, mask)
  assert params['params']['embed_proj']['kernel'].shape == (3, config.model.d_model)
  raw = jax.random.normal(jax.random.PRNGKey(3), (4, config.model.embedding.dim))
  c = roles.centroids_for(config.model)
  sims = np.asarray(roles.similarity(raw, c['center'], c['centroids']))
  assert sims.shape == (4, 3) and np.all(np.abs(sims) <= 1.0 + 1e-6)
  # The networks see the frame through its similarities only: a scaled embedding reads the same.
  ctx = lambda p, e: model.apply(p, e[None, None], mask[:, :1],  # pylint: disable=unnecessary-lambda-assignment
                                 method=model.contextualize)
  d = config.model.d_model
  np.testing.assert_allclose(np.asarray(ctx(params, raw))[..., :d],
                             np.asarray(ctx(params, 3.0 * raw))[..., :d], rtol=1e-4, atol=1e-5)
  with pytest.raises(ValueError, match="'embedding' or 'similarity'"):
    jax.eval_shape(_model(tmp_path, **{'roles.input': 'names'})[1].init, jax.random.PRNGKey(0),
                   audio, mask)
