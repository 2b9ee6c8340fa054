"""The role-aware preset (alm_jax/models/role_preset.py): causal, chunk-independent, staging by role."""

import os
import runpy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alm_jax import models
from alm_jax.data import rendered
from alm_jax.models import role_preset
from alm_jax.models import roles

F2 = 2205


def make_config(centroids=''):
  cfg = runpy.run_path('configs/role_preset.py')['get_config']()
  cfg.model.f1_ms = 1000.0  # a cheaper musicnn frame than the shipped 3 s, same code
  cfg.model.f1_stride = 10
  cfg.model.role_centroids = centroids
  return cfg


def fake_centroids(tmp_path, dim=200, seed=0):
  rng = np.random.default_rng(seed)
  c = rng.standard_normal((3, dim)).astype(np.float32)
  c /= np.linalg.norm(c, axis=1, keepdims=True)
  path = str(tmp_path / 'cents.npz')
  np.savez(path, roles=np.array(['bass', 'hats', 'lead']),
           levels_db=np.array([-4.0, -12.0, 0.0], np.float32),
           center=rng.standard_normal(dim).astype(np.float32), centroids=c)
  return path


def song(seconds=2.0, seed=0):
  rng = np.random.default_rng(seed)
  n = int(seconds * 44100) // F2 * F2
  t = np.arange(n) / 44100
  x = np.stack([0.05 * rng.standard_normal(n),
                0.2 * np.sin(2 * np.pi * 110 * t) * (1 + np.sin(2 * np.pi * 2 * t)),
                0.01 * np.sign(np.sin(2 * np.pi * 440 * t))]).astype(np.float32)
  return x[None]


def run(mixer, audio, chunk_frames=None):
  b, c, n = audio.shape
  state = mixer.init_state(b, c)
  mask = jnp.ones((b, c), bool)
  step = jax.jit(mixer.step)
  size = (chunk_frames or n // F2) * F2
  gains = []
  for i in range(0, n, size):
    state, g, _ = step({}, state, jnp.asarray(audio[..., i:i + size]), mask)
    gains.append(np.asarray(g))
  return state, np.concatenate(gains, axis=-1)


@pytest.fixture(scope='module')
def mixer_and_run(tmp_path_factory):
  mixer = models.build_mixer(make_config(fake_centroids(tmp_path_factory.mktemp('c'))))
  audio = song()
  state, gains = run(mixer, audio)
  return mixer, audio, state, gains


def test_stages_each_channel_to_its_named_role(mixer_and_run):
  mixer, _, state, gains = mixer_and_run
  m = mixer.config
  role = np.asarray(state['role'])[0]
  assert (role >= 0).all()  # every channel named after its first F1 frames
  level_db = 10 * np.log10(np.asarray(state['power'])[0])
  want = m.lead_db + np.asarray(mixer.centroids['levels_db'])[role] - level_db
  # The gain in force after the last frame is the rule applied to the running level and role.
  np.testing.assert_allclose(20 * np.log10(np.asarray(state['gain'])[0]), want, atol=1e-3)
  # Before its first active frame a channel keeps the initial gain (zero latency).
  np.testing.assert_allclose(gains[0, :, 0], m.initial_gain)


def test_causal_and_zero_latency(mixer_and_run):
  mixer, audio, _, gains = mixer_and_run
  cut = 25
  changed = audio.copy()
  changed[..., cut * F2:] = np.random.default_rng(5).standard_normal(
      changed[..., cut * F2:].shape).astype(np.float32)
  _, other = run(mixer, changed)
  # The gain applied to frame t depends on frames before t only.
  np.testing.assert_array_equal(other[..., :cut + 1], gains[..., :cut + 1])
  assert not np.allclose(other[..., cut + 2:], gains[..., cut + 2:])


def test_chunking_gives_the_same_gains(mixer_and_run):
  mixer, audio, _, gains = mixer_and_run
  _, chunked = run(mixer, audio, chunk_frames=7)
  np.testing.assert_allclose(chunked, gains, rtol=1e-5, atol=1e-6)


def test_a_fader_move_before_the_mixer_is_undone(mixer_and_run):
  mixer, audio, state, gains = mixer_and_run
  louder, louder_gains = run(mixer, audio * np.float32(10 ** (12 / 20)))
  # The role does not hear the level (frames are scaled before embedding); the gain is 12 dB lower.
  np.testing.assert_array_equal(np.asarray(louder['role']), np.asarray(state['role']))
  np.testing.assert_allclose(20 * np.log10(louder_gains[..., 20:] / gains[..., 20:]), -12.0,
                             atol=0.05)


def test_bad_centroid_files_are_refused(tmp_path):
  with pytest.raises(FileNotFoundError, match='tools/role_centroids.py'):
    models.build_mixer(make_config(str(tmp_path / 'missing.npz')))
  with pytest.raises(ValueError, match='200'):
    models.build_mixer(make_config(fake_centroids(tmp_path, dim=16)))
  np.savez(tmp_path / 'partial.npz', roles=np.array(['lead']))
  with pytest.raises(ValueError, match='lacks'):
    models.build_mixer(make_config(str(tmp_path / 'partial.npz')))


def test_shipped_centroids_match_the_designed_role_levels():
  path = roles.default_centroids_path('musicnn')
  c = roles.load_centroids(path)
  for role, level in zip(c['roles'], c['levels_db']):
    assert level == rendered.ROLE_LEVELS_DB[str(role)]
  np.testing.assert_allclose(np.linalg.norm(c['centroids'], axis=1), 1.0, atol=1e-5)
  assert {'kick', 'snare', 'hats', 'bass', 'lead'} <= set(c['roles'].tolist())


def test_nearest_role_is_cosine_after_centring():
  center = np.array([1.0, 1.0], np.float32)
  cents = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
  x = np.array([[3.0, 1.1], [1.2, 5.0], [0.0, 1.0]], np.float32)
  np.testing.assert_array_equal(roles.nearest_role(x, center, cents), [0, 1, 1])


def test_offline_engine_mixes_it(mixer_and_run, tmp_path):
  # The offline engine donates the state between chunks: every state array must be its own buffer.
  from alm_jax.inference import offline  # pylint: disable=import-outside-toplevel
  mixer, audio, _, gains = mixer_and_run
  cfg = make_config(fake_centroids(tmp_path))
  out = offline.mix_arrays(models.load(cfg, {}), audio, np.ones((1, audio.shape[1]), bool),
                           chunk_seconds=0.5)
  np.testing.assert_allclose(out['gains'][..., :gains.shape[-1]], gains, rtol=1e-5, atol=1e-6)
