"""Loads the released MTT_musicnn weights into `alm_jax.embeddings.musicnn_network.Musicnn`.

The weights ship with the package as `alm_jax/embeddings/weights/musicnn_mtt.npz`
(`DEFAULT_WEIGHTS`, ISC licence notice beside it), written once by
tools/convert_musicnn.py from the PyPI wheel's TF1 checkpoint: the
checkpoint's variable names and values (`conv2d/kernel`,
`batch_normalization_3/moving_mean`, ...) plus the `tags` list. The original
checkpoint directory (the unpacked wheel's `musicnn/MTT_musicnn`) loads too,
through TensorFlow's checkpoint reader. Either way every name and shape is
checked against `RELEASE_NAMES` and the Flax module, and each batch norm is
folded into an affine (`scale = gamma / sqrt(var + 0.001)`,
`bias = beta - mean * scale`), the release's inference mode.

    params = musicnn_weights.load_musicnn_params()     # {'input_bn': ..., 'tags': ...}
    tags = musicnn_weights.load_musicnn_tags()         # 50 MagnaTagATune labels
"""

import functools
import os
import zipfile

import flax
import jax
import jax.numpy as jnp
import numpy as np

from alm_jax.embeddings import musicnn_network as musicnn

DEFAULT_WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'weights',
                               'musicnn_mtt.npz')
BN_EPSILON = 1e-3  # tf.compat.v1.layers.batch_normalization's default
# Flax layer -> the release's TF layer (models.py creates them in this order).
RELEASE_NAMES = {
    'input_bn': 'batch_normalization',
    'timbral_74': 'conv2d', 'timbral_74_bn': 'batch_normalization_1',
    'timbral_77': 'conv2d_1', 'timbral_77_bn': 'batch_normalization_2',
    'temporal_128': 'conv2d_2', 'temporal_128_bn': 'batch_normalization_3',
    'temporal_64': 'conv2d_3', 'temporal_64_bn': 'batch_normalization_4',
    'temporal_32': 'conv2d_4', 'temporal_32_bn': 'batch_normalization_5',
    'midend_1': 'conv2d_5', 'midend_1_bn': 'batch_normalization_6',
    'midend_2': 'conv2d_6', 'midend_2_bn': 'batch_normalization_7',
    'midend_3': 'conv2d_7', 'midend_3_bn': 'batch_normalization_8',
    'pool_bn': 'batch_normalization_9',
    'dense': 'dense', 'dense_bn': 'batch_normalization_10',
    'tags': 'dense_1',
}
BN_LEAVES = ('gamma', 'beta', 'moving_mean', 'moving_variance')
METADATA = ('tags', 'network', 'source')
_FIX = ('reinstall alm_jax (the file ships with it) or rebuild it with tools/convert_musicnn.py '
        'from the musicnn 0.1.0 wheel\'s MTT_musicnn directory')


@functools.lru_cache(maxsize=None)
def musicnn_param_shapes(num_tags: int = len(musicnn.MTT_TAGS)):
  """{('timbral_74', 'kernel'): (7, 38, 1, 204), ...} of `Musicnn`."""
  abstract = jax.eval_shape(musicnn.Musicnn(num_tags=num_tags).init, jax.random.key(0),
                            jax.ShapeDtypeStruct((1, 187, musicnn.N_MELS), jnp.float32))
  return {k: tuple(v.shape) for k, v in flax.traverse_util.flatten_dict(abstract['params']).items()}


def release_shapes(num_tags: int = len(musicnn.MTT_TAGS)) -> dict[str, tuple[int, ...]]:
  """{'conv2d/kernel': (7, 38, 1, 204), ...}: the TF variables a release file must hold."""
  out = {}
  for (layer, leaf), shape in musicnn_param_shapes(num_tags).items():
    tf_name = RELEASE_NAMES[layer]
    if layer.endswith('_bn'):
      if leaf == 'scale':
        out.update({f'{tf_name}/{b}': shape for b in BN_LEAVES})
    elif leaf == 'kernel':
      # The mid-end's 1-D kernels [7, in, 64] are [7, in, 1, 64] 2-D kernels in TF.
      out[f'{tf_name}/kernel'] = shape[:-1] + (1,) + shape[-1:] if len(shape) == 3 else shape
    else:
      out[f'{tf_name}/bias'] = shape
  return out


def read_checkpoint(directory: str) -> dict[str, np.ndarray]:
  """The variables (optimiser slots dropped) of a musicnn TF1 checkpoint directory."""
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from tensorflow.python.training import py_checkpoint_reader  # pylint: disable=g-import-not-at-top
  # The release's prefix is the directory itself (files '.index', '.data-*');
  # its 'checkpoint' file points at the author's machine, so read the prefix.
  prefix = os.path.join(directory, '')
  try:
    reader = py_checkpoint_reader.NewCheckpointReader(prefix)
  except (tf.errors.OpError, ValueError) as e:
    raise ValueError(f'{directory} is not a readable musicnn checkpoint directory ({e}).') from e
  return {name: np.asarray(reader.get_tensor(name), np.float32)
          for name in sorted(reader.get_variable_to_shape_map())
          if not (name.startswith('beta1_power') or name.startswith('beta2_power') or
                  name.endswith(('/Adam', '/Adam_1')))}


def _read(path: str) -> dict[str, np.ndarray]:
  if os.path.isdir(path):
    if not os.path.exists(os.path.join(path, '.index')):
      raise FileNotFoundError(f'{path} holds no musicnn checkpoint (no .index file): pass the '
                              'unpacked wheel\'s musicnn/MTT_musicnn directory or a converted .npz.')
    return read_checkpoint(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f'No musicnn weights at {path}: {_FIX}.')
  try:
    with np.load(path, allow_pickle=False) as data:
      return {k: data[k] for k in data.files}
  except (zipfile.BadZipFile, OSError, ValueError, EOFError, KeyError) as e:
    raise ValueError(f'{path} is not a readable musicnn .npz (truncated or another format: {e}); '
                     f'{_FIX}.') from e


def _check(path: str, variables, num_tags: int):
  expected = release_shapes(num_tags)
  missing = sorted(set(expected) - set(variables))
  unexpected = sorted(set(variables) - set(expected) - set(METADATA))
  wrong = sorted(f'{k}: {tuple(variables[k].shape)}, expected {expected[k]}'
                 for k in set(expected) & set(variables) if tuple(variables[k].shape) != expected[k])
  if missing or unexpected or wrong:
    network = variables.get('network')
    what = f' (it says network {str(network)!r})' if network is not None else ''
    lines = ([f'missing: {", ".join(missing)}'] if missing else []) + \
            ([f'unexpected: {", ".join(unexpected)}'] if unexpected else []) + \
            [f'wrong shape: {w}' for w in wrong]
    raise ValueError(f'{path} does not hold the MTT_musicnn network{what}: {_FIX}.\n  ' +
                     '\n  '.join(lines))


def load_musicnn_variables(path: str | None = None):
  """The release's variables by TF name, checked, and its tags.

  Args:
    path: a converted .npz or the checkpoint directory; None: `DEFAULT_WEIGHTS`.
  Returns:
    ({'conv2d/kernel': float32 [7, 38, 1, 204], ...}, tags tuple of str).
  Raises:
    FileNotFoundError: nothing at `path`.
    ValueError: an unreadable or truncated file, or variables missing,
      unexpected or of the wrong shape (all listed), naming the file.
  """
  path = os.fspath(path or DEFAULT_WEIGHTS)
  variables = _read(path)
  tags = tuple(str(t) for t in variables['tags']) if 'tags' in variables else musicnn.MTT_TAGS
  _check(path, variables, len(tags))
  return {k: np.asarray(v, np.float32) for k, v in variables.items() if k not in METADATA}, tags


def load_musicnn_tags(path: str | None = None) -> tuple[str, ...]:
  return load_musicnn_variables(path)[1]


def to_flax_params(variables) -> dict[str, dict[str, np.ndarray]]:
  """Release variables (by TF name) -> the `Musicnn` param tree, batch norms folded."""
  params = {}
  for layer, tf_name in RELEASE_NAMES.items():
    if layer.endswith('_bn'):
      gamma, beta, mean, var = (variables[f'{tf_name}/{b}'].astype(np.float64) for b in BN_LEAVES)
      scale = gamma / np.sqrt(var + BN_EPSILON)
      params[layer] = {'scale': scale.astype(np.float32),
                       'bias': (beta - mean * scale).astype(np.float32)}
    else:
      kernel = variables[f'{tf_name}/kernel']
      if layer.startswith('midend'):
        kernel = kernel[:, :, 0, :]
      params[layer] = {'kernel': kernel, 'bias': variables[f'{tf_name}/bias']}
  return params


def load_musicnn_params(path: str | None = None) -> dict[str, dict[str, np.ndarray]]:
  """The `Musicnn` param tree of the released weights (host numpy arrays); see `load_musicnn_variables`."""
  return to_flax_params(load_musicnn_variables(path)[0])
