"""The distilled 'student' embedding (alm_jax/embeddings/student.py): a registered, shipped embedding."""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from alm_jax import embeddings
from alm_jax.embeddings import student


def embedding_config(**kw):
  return ml_collections.ConfigDict({'name': 'student', 'dim': 200, 'weights': '', **kw})


def test_registered_with_its_weights_and_musicnns_front_end():
  assert 'student' in embeddings.available()
  entry = embeddings.get('student')
  assert entry.has_weights and entry.dim == 200
  model_config = ml_collections.ConfigDict(dict(sample_rate=44100, f1_ms=3000.0, f2_ms=50.0,
                                                f1_stride=20, embedding=embedding_config()))
  front = embeddings.frontend_for(model_config)
  assert (front.spec.patch_frames, front.spec.n_mels) == (186, 96)


def test_shipped_weights_load_and_embed_any_patch_length():
  net = embeddings.build_embedding(embedding_config())
  fresh = net.init(jax.random.key(0), jnp.zeros((1, 187, 96)))['params']
  params = embeddings.load_pretrained({'embedding': fresh}, embedding_config())['embedding']
  assert jax.tree.map(np.shape, params) == jax.tree.map(np.shape, fresh)
  x = np.random.default_rng(0).uniform(0, 3, (2, 187, 96)).astype(np.float32)
  for rows in (187, 61, 16):
    e = net.apply({'params': params}, x[:, :rows])
    assert e.shape == (2, 200) and np.isfinite(np.asarray(e)).all()


def test_save_load_round_trip(tmp_path):
  net = student.Student()
  params = net.init(jax.random.key(1), jnp.zeros((1, 32, 96)))['params']
  student.save_params(jax.device_get(params), str(tmp_path / 'w.npz'))
  back = student.load_params(str(tmp_path / 'w.npz'))
  jax.tree.map(np.testing.assert_array_equal, back, jax.device_get(params))


def test_bad_inputs_are_refused(tmp_path):
  with pytest.raises(ValueError, match='dim = 200'):
    embeddings.build_embedding(ml_collections.ConfigDict(dict(name='student', dim=32, weights='')))
  net = student.Student()
  with pytest.raises(ValueError, match='f1_ms'):
    net.init(jax.random.key(0), jnp.zeros((1, 8, 96)))
  with pytest.raises(FileNotFoundError, match='distill_student'):
    student.pretrained_params(embedding_config(weights=str(tmp_path / 'none.npz')))
