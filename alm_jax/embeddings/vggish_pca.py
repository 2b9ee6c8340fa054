"""VGGish's PCA post-processing: the whitening and 8-bit quantisation of the AudioSet release's embeddings.

`load_vggish_pca` reads the released PCA parameters (`vggish_pca_params.npz`
of the TF release, or torchvggish's `.pth`); `postprocess` applies them as the
release's Postprocessor does (NumPy bit-for-bit, or JAX under jit). The mixer
does not need them; they reproduce the released AudioSet features.
"""

import os
from typing import Mapping

import jax.numpy as jnp
import numpy as np

from alm_jax.embeddings import vggish_weights



def load_vggish_pca(path: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads VGGish's PCA parameters.

  Args:
    path: `vggish_pca_params.npz` (TF release) or torchvggish's
      `vggish_pca_params-*.pth`; both hold `pca_eigen_vectors` and `pca_means`.
  Returns:
    (pca_matrix [128, 128] with rows the output components, pca_means [128]),
    float64 as released.
  """
  path = os.fspath(path)
  if path.lower().endswith(vggish_weights.TORCH_SUFFIXES):
    data = vggish_weights.torch_load(path)
    if not isinstance(data, Mapping):
      raise ValueError(f'{path} holds a {type(data).__name__}, not a dict with keys '
                       f'{vggish_weights.PCA_EIGEN_VECTORS!r} and {vggish_weights.PCA_MEANS!r}.')
    data = {k: vggish_weights.to_numpy(v) for k, v in data.items()}
  else:
    if not os.path.isfile(path):
      raise FileNotFoundError(f'No PCA parameters at {path}: download vggish_pca_params.npz '
                              '(see docs/vggish.md).')
    try:
      with np.load(path, allow_pickle=False) as npz:
        data = {k: npz[k] for k in npz.files}
    except (OSError, ValueError) as e:
      raise ValueError(f'{path} is not a readable .npz file ({e}).') from e
  absent = [k for k in (vggish_weights.PCA_EIGEN_VECTORS, vggish_weights.PCA_MEANS) if k not in data]
  if absent:
    raise ValueError(f'{path} lacks {absent} (it has {sorted(data)}): is it vggish_pca_params.npz?')
  matrix = np.asarray(data[vggish_weights.PCA_EIGEN_VECTORS], np.float64)
  means = np.asarray(data[vggish_weights.PCA_MEANS], np.float64)
  # torchvggish keeps the means as a column vector.
  if means.ndim == 2 and means.shape[1] == 1:
    means = means[:, 0]
  dim = vggish_weights.RELEASE_DIM
  if matrix.shape != (dim, dim) or means.shape != (dim,):
    raise ValueError(f'{path}: expected {vggish_weights.PCA_EIGEN_VECTORS} of shape {(dim, dim)} and {vggish_weights.PCA_MEANS} '
                     f'of shape {(dim,)}, got {matrix.shape} and {means.shape}.')
  return matrix, means


def postprocess(embeddings_, pca, quantize: bool = True):
  """The AudioSet release's Postprocessor: PCA (with whitening), clip, 8-bit.

  NumPy input computes in NumPy (bit-for-bit the TF release, which truncates to
  uint8; torchvggish rounds instead); JAX input stays in JAX (jit-able).

  Args:
    embeddings_: [..., 128] raw VGGish embeddings.
    pca: (pca_matrix [128, 128], pca_means [128]) from `load_vggish_pca`.
    quantize: if False, return the PCA-transformed float embeddings without
      clipping or quantising (differentiable).
  Returns:
    uint8 [..., 128] in [0, 255] (quantize=True), else float [..., 128].
  """
  matrix, means = pca
  if np.shape(embeddings_)[-1:] != np.shape(means):
    raise ValueError(f'postprocess: embeddings of shape {np.shape(embeddings_)} do not match the '
                     f'PCA parameters for {np.shape(means)[0]}-d embeddings.')
  xp = np if isinstance(embeddings_, np.ndarray) else jnp
  x = (embeddings_ - xp.asarray(means)) @ xp.asarray(matrix).T
  if not quantize:
    return x
  x = xp.clip(x, vggish_weights.QUANTIZE_MIN, vggish_weights.QUANTIZE_MAX)
  x = (x - vggish_weights.QUANTIZE_MIN) * (255.0 / (vggish_weights.QUANTIZE_MAX - vggish_weights.QUANTIZE_MIN))
  return x.astype(xp.uint8)
