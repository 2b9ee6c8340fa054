"""VGGish's PCA post-processing (alm_jax/models/vggish_pca.py) against the release's definition."""


import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alm_jax.embeddings import vggish_pca



def test_pca_load_and_postprocess(tmp_path):
  rng = np.random.default_rng(2)
  matrix = rng.standard_normal((128, 128)) * 0.1
  means = rng.standard_normal(128)
  path = str(tmp_path / 'vggish_pca_params.npz')
  np.savez(path, pca_eigen_vectors=matrix, pca_means=means)
  pca = vggish_pca.load_vggish_pca(path)
  np.testing.assert_array_equal(pca[0], matrix)
  np.testing.assert_array_equal(pca[1], means)

  emb = rng.standard_normal((5, 128)).astype(np.float32) * 3
  emb[0] = means  # PCA maps the mean to 0 -> the middle level, 127.5 truncated
  far = np.where(np.arange(128) % 2 == 0, 10.0, -10.0)
  emb[1] = means + np.linalg.solve(matrix, far)  # components +-10: clipped to 255 / 0
  q = vggish_pca.postprocess(emb, pca)
  assert q.dtype == np.uint8 and q.shape == (5, 128)
  assert np.all(q[0] == 127)
  # Written independently: per example, components = sum_j matrix[i, j] (x_j - mean_j).
  comps = np.einsum('ij,nj->ni', matrix, emb.astype(np.float64) - means)
  np.testing.assert_allclose(vggish_pca.postprocess(emb, pca, quantize=False), comps, rtol=1e-12)
  want = np.floor((np.clip(comps, -2, 2) + 2) * 63.75).astype(np.uint8)
  np.testing.assert_array_equal(q, want)
  np.testing.assert_array_equal(q[1], np.where(far > 0, 255, 0))
  # JAX path (float32, jit-able) agrees within one quantisation level.
  qj = jax.jit(lambda e: vggish_pca.postprocess(e, pca))(jnp.asarray(emb))
  assert qj.dtype == jnp.uint8
  assert np.max(np.abs(np.asarray(qj, np.int32) - q.astype(np.int32))) <= 1


def test_pca_bad_files(tmp_path):
  path = str(tmp_path / 'pca.npz')
  np.savez(path, pca_eigen_vectors=np.eye(64), pca_means=np.zeros(64))
  with pytest.raises(ValueError, match=r'expected pca_eigen_vectors of shape \(128, 128\)'):
    vggish_pca.load_vggish_pca(path)
  np.savez(path, eigen=np.eye(128))
  with pytest.raises(ValueError, match="lacks \\['pca_eigen_vectors', 'pca_means'\\]"):
    vggish_pca.load_vggish_pca(path)
  with pytest.raises(FileNotFoundError):
    vggish_pca.load_vggish_pca(str(tmp_path / 'missing.npz'))
  with pytest.raises(ValueError, match='do not match'):
    vggish_pca.postprocess(np.zeros((2, 64), np.float32), (np.eye(128), np.zeros(128)))


def test_pca_from_torchvggish_pth(tmp_path):
  torch = pytest.importorskip('torch', reason='torch is an optional extra (pip install -e .[torch])')
  rng = np.random.default_rng(3)
  matrix, means = rng.standard_normal((128, 128)), rng.standard_normal(128)
  path = str(tmp_path / 'vggish_pca_params-970ea276.pth')
  torch.save({'pca_eigen_vectors': matrix, 'pca_means': means}, path)  # numpy arrays inside
  got = vggish_pca.load_vggish_pca(path)
  np.testing.assert_array_equal(got[0], matrix)
  np.testing.assert_array_equal(got[1], means)
  torch.save({'pca_eigen_vectors': torch.from_numpy(matrix),
              'pca_means': torch.from_numpy(means[:, None])}, path)  # tensors, column means
  got = vggish_pca.load_vggish_pca(path)
  np.testing.assert_array_equal(got[1], means)
