"""Loads the released VGGish weights into `alm_jax.embeddings.vggish_network.VGGish`.

Reads either published format of the same network, the TensorFlow release's
`vggish_model.ckpt` or torchvggish's `vggish-10086976.pth` (`load_vggish_params`), checks every
name and shape, and puts it in the `embedding` subtree of a param tree
(`merge_into_model_params`); after `params = model.init(...)`, typically
`params = load_pretrained_embedding(params, config.model.embedding)`. The fc2 ReLU stays
`config.model.embedding.fc2_relu` (warned on, never changed); PCA is `alm_jax.embeddings.vggish_pca`.
Layouts of both formats and the fc2 ReLU: docs/vggish.md ("Layouts", "The fc2 ReLU").
"""

import functools
import os
import pickle
from typing import Any, Mapping

from absl import logging
import flax
import jax
import jax.numpy as jnp
import numpy as np

from alm_jax.embeddings import vggish_network

# Flax layer name -> variable scope in the TF checkpoint.
TF_SCOPES = {
    'conv1': 'vggish/conv1',
    'conv2': 'vggish/conv2',
    'conv3_1': 'vggish/conv3/conv3_1',
    'conv3_2': 'vggish/conv3/conv3_2',
    'conv4_1': 'vggish/conv4/conv4_1',
    'conv4_2': 'vggish/conv4/conv4_2',
    'fc1_1': 'vggish/fc1/fc1_1',
    'fc1_2': 'vggish/fc1/fc1_2',
    'fc2': 'vggish/fc2',
}
TF_LEAVES = {'kernel': 'weights', 'bias': 'biases'}

# Flax layer name -> torchvggish module path. The indices count the ReLU and
# MaxPool modules of its nn.Sequential containers.
TORCH_MODULES = {
    'conv1': 'features.0',
    'conv2': 'features.3',
    'conv3_1': 'features.6',
    'conv3_2': 'features.8',
    'conv4_1': 'features.11',
    'conv4_2': 'features.13',
    'fc1_1': 'embeddings.0',
    'fc1_2': 'embeddings.2',
    'fc2': 'embeddings.4',
}
TORCH_LEAVES = {'kernel': 'weight', 'bias': 'bias'}
# Keys a saved torchvggish `VGGish` module carries besides the network: its PCA
# postprocessor (load those with `load_vggish_pca`).
TORCH_IGNORED_PREFIXES = ('pproc.',)

TORCH_SUFFIXES = ('.pth', '.pt')
RELEASE_DIM = 128
PCA_EIGEN_VECTORS = 'pca_eigen_vectors'
PCA_MEANS = 'pca_means'
QUANTIZE_MIN, QUANTIZE_MAX = -2.0, 2.0

_CONFIG_HINT = 'config.model.embedding.weights'


@functools.lru_cache(maxsize=None)
def _param_shapes(dim: int):
  abstract = jax.eval_shape(vggish_network.VGGish(dim=dim).init, jax.random.key(0),
                            jax.ShapeDtypeStruct((1, 96, 64), jnp.float32))
  return flax.traverse_util.flatten_dict(abstract['params'])


def vggish_param_shapes(dim: int = RELEASE_DIM) -> dict[str, dict[str, tuple[int, ...]]]:
  """{'conv1': {'kernel': (3, 3, 1, 64), 'bias': (64,)}, ...} of `VGGish(dim)`."""
  return flax.traverse_util.unflatten_dict({k: tuple(v.shape) for k, v in _param_shapes(dim).items()})


# ---------------------------------------------------------------------------
# Loading the network weights.


def load_vggish_params(path: str, *, fc2_relu: bool | None = None) -> dict[str, dict[str, np.ndarray]]:
  """Reads released VGGish weights as the Flax param tree of `VGGish`.

  Args:
    path: the TF checkpoint (`.../vggish_model.ckpt`: the single-file release,
      or a prefix with `.index`/`.data-*` files, or a directory holding one) or
      a torchvggish state dict (`.pth`/`.pt`, needs `pip install -e .[torch]`).
    fc2_relu: `config.model.embedding.fc2_relu`, only compared with the file's
      origin to warn about a mismatch (None: no check). It never changes what
      is loaded: the weights are the same either way.
  Returns:
    {'conv1': {'kernel': float32 [3, 3, 1, 64], 'bias': [64]}, ..., 'fc2':
    {'kernel': [4096, dim], 'bias': [dim]}} as host numpy arrays (dim = the
    file's fc2 size, 128 for the release).
  Raises:
    FileNotFoundError: nothing at `path`.
    ValueError: an unreadable file, or variables missing, unexpected or of the
      wrong shape (all of them are listed).
    ImportError: a `.pth` file without torch installed.
  """
  path = os.fspath(path)
  if path.lower().endswith(TORCH_SUFFIXES):
    params = _load_torch(path)
    if fc2_relu is False:
      logging.warning(
          '%s is a torchvggish state dict: torchvggish applies a ReLU after fc2, but '
          'config.model.embedding.fc2_relu = False keeps the TF release\'s linear fc2. '
          'Set config.model.embedding.fc2_relu = True to reproduce torchvggish\'s embeddings.', path)
  else:
    params = _load_tf(path)
    if fc2_relu:
      logging.warning(
          '%s is a TensorFlow VGGish checkpoint, whose fc2 is linear, but '
          'config.model.embedding.fc2_relu = True adds a ReLU after it (torchvggish\'s '
          'behaviour). Set config.model.embedding.fc2_relu = False to reproduce the TF release.',
          path)
  return params


def _fc2_dim(shapes: Mapping[str, tuple[int, ...]], bias_key: str) -> int:
  """The file's embedding size (fc2's output count), the release's if absent."""
  shape = shapes.get(bias_key)
  return shape[0] if shape is not None and len(shape) == 1 and shape[0] > 0 else RELEASE_DIM


def _convert(path: str, file_shapes: Mapping[str, tuple[int, ...]], file_key, file_shape,
             read, ignored: set[str], fix: str) -> dict[str, dict[str, np.ndarray]]:
  """Checks a file's variables against VGGish and converts them to Flax.

  Args:
    path: for messages.
    file_shapes: every variable in the file -> its shape.
    file_key: (layer, leaf) -> the file's name for that variable.
    file_shape: (leaf, flax shape) -> the shape the file must have.
    read: (file name, leaf) -> the array, converted to the Flax layout.
    ignored: file names that are not part of the network.
    fix: what to do about a mismatch.
  """
  expected = vggish_param_shapes(_fc2_dim(file_shapes, file_key('fc2', 'bias')))
  missing, misshaped, wanted = [], [], set()
  for layer, leaves in expected.items():
    for leaf, shape in leaves.items():
      key = file_key(layer, leaf)
      want = tuple(file_shape(leaf, shape))
      wanted.add(key)
      if key not in file_shapes:
        missing.append(f'  missing: {key} (expected shape {want})')
      elif tuple(file_shapes[key]) != want:
        misshaped.append(f'  wrong shape: {key}: expected {want}, got {tuple(file_shapes[key])}')
  unexpected = [f'  unexpected: {k} (shape {tuple(file_shapes[k])})'
                for k in sorted(file_shapes) if k not in wanted and k not in ignored]
  problems = missing + misshaped + unexpected
  if problems:
    raise ValueError(
        f'{path} does not hold the VGGish network ({len(problems)} problem(s)):\n'
        + '\n'.join(problems) + f'\n{fix}')
  return {layer: {leaf: np.ascontiguousarray(read(file_key(layer, leaf), leaf), dtype=np.float32)
                  for leaf in leaves}
          for layer, leaves in expected.items()}


def _resolve_tf_path(path: str) -> str:
  """The checkpoint prefix for a prefix, an `.index`/`.data-*` file or a directory."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top  (heavy; only needed here)
  if os.path.isdir(path):
    prefix = tf.train.latest_checkpoint(path)
    if prefix is None:
      raise FileNotFoundError(
          f'{path} is a directory without a TensorFlow checkpoint in it: point {_CONFIG_HINT} at '
          'the checkpoint file itself (e.g. /path/to/vggish_model.ckpt).')
    return prefix
  if path.endswith('.index'):
    path = path[:-len('.index')]
  elif '.data-' in os.path.basename(path):
    path = path[:path.rindex('.data-')]
  # The release is a single file (TF's V1 format); V2 checkpoints are a prefix
  # with an .index file next to it.
  if not (os.path.isfile(path) or os.path.isfile(path + '.index')):
    raise FileNotFoundError(
        f'No VGGish checkpoint at {path} (neither a file nor {path}.index exists): set '
        f'{_CONFIG_HINT} to the downloaded vggish_model.ckpt (see docs/vggish.md).')
  return path


def _load_tf(path: str) -> dict[str, dict[str, np.ndarray]]:
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  prefix = _resolve_tf_path(path)
  try:
    reader = tf.train.load_checkpoint(prefix)
    shapes = {k: tuple(v) for k, v in reader.get_variable_to_shape_map().items()}
  except (tf.errors.OpError, ValueError) as e:
    hint = ''
    with open(prefix if os.path.isfile(prefix) else prefix + '.index', 'rb') as f:
      if f.read(2) == b'PK':  # torch.save's zip container
        hint = ' It looks like a PyTorch file: give it a .pth suffix.'
    raise ValueError(f'{prefix} is not a readable TensorFlow checkpoint ({e}).{hint}') from e
  # Anything outside the `vggish/` scope (e.g. global_step) is not the network.
  ignored = {k for k in shapes if not k.startswith('vggish/')}
  if ignored:
    logging.info('%s: ignoring variables outside vggish/: %s', prefix, sorted(ignored))
  return _convert(
      prefix, shapes,
      file_key=lambda layer, leaf: f'{TF_SCOPES[layer]}/{TF_LEAVES[leaf]}',
      file_shape=lambda leaf, shape: shape,  # TF-slim stores Flax's layout
      read=lambda key, leaf: reader.get_tensor(key),
      ignored=ignored,
      fix=f'Point {_CONFIG_HINT} at the released vggish_model.ckpt (see docs/vggish.md).')


def _import_torch():
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError as e:
    raise ImportError('Reading a .pth file needs PyTorch, an optional extra: run '
                      '`pip install -e .[torch]`, or use the TF checkpoint vggish_model.ckpt '
                      'instead (see docs/vggish.md).') from e
  return torch


def torch_load(path: str) -> Any:
  """torch.load without executing arbitrary pickles (numpy arrays allowed)."""
  torch = _import_torch()
  if not os.path.isfile(path):
    raise FileNotFoundError(f'No file at {path}: set {_CONFIG_HINT} to the downloaded '
                            'vggish-*.pth (see docs/vggish.md).')
  # Some published .pth files (e.g. PCA parameters) pickle numpy arrays.
  numpy_globals = [np.ndarray, np.dtype, np.dtypes.Float32DType, np.dtypes.Float64DType]
  reconstruct = np._core.multiarray._reconstruct  # pylint: disable=protected-access
  try:
    with torch.serialization.safe_globals(numpy_globals + [reconstruct]):
      return torch.load(path, map_location='cpu', weights_only=True)
  except (pickle.UnpicklingError, RuntimeError, EOFError) as e:
    raise ValueError(
        f'{path} could not be read as a PyTorch state dict ({type(e).__name__}: '
        f'{str(e).splitlines()[0] if str(e) else ""}). It must be a dict of tensors as saved by '
        'torch.save(model.state_dict(), path), e.g. torchvggish\'s vggish-10086976.pth.') from e


def to_numpy(value) -> np.ndarray:
  return value.detach().cpu().numpy() if hasattr(value, 'detach') else np.asarray(value)


def _load_torch(path: str) -> dict[str, dict[str, np.ndarray]]:
  state = torch_load(path)
  if not isinstance(state, Mapping):
    raise ValueError(f'{path} holds a {type(state).__name__}, not a state dict: save '
                     'model.state_dict() (torchvggish\'s vggish-*.pth is one).')
  state = {k: to_numpy(v) for k, v in state.items()}
  shapes = {k: tuple(v.shape) for k, v in state.items()}
  ignored = {k for k in shapes if k.startswith(TORCH_IGNORED_PREFIXES)}

  def file_shape(leaf, shape):
    if leaf == 'bias':
      return shape
    if len(shape) == 4:  # conv HWIO -> OIHW
      return (shape[3], shape[2], shape[0], shape[1])
    return shape[::-1]  # dense [in, out] -> [out, in]

  def read(key, leaf):
    x = state[key]
    if leaf == 'bias':
      return x
    return x.transpose(2, 3, 1, 0) if x.ndim == 4 else x.T

  return _convert(
      path, shapes,
      file_key=lambda layer, leaf: f'{TORCH_MODULES[layer]}.{TORCH_LEAVES[leaf]}',
      file_shape=file_shape, read=read, ignored=ignored,
      fix=f'Point {_CONFIG_HINT} at torchvggish\'s vggish-10086976.pth (see docs/vggish.md).')


# ---------------------------------------------------------------------------
# Putting the weights into a mixer's parameters.


def _embedding_hint(model_flat: Mapping[str, Any], loaded_flat: Mapping[str, Any]) -> str:
  """Which config line explains a mismatch between the model and the file."""
  if 'conv3_1/kernel' not in model_flat:
    return ("The model's embedding is not VGGish (config.model.embedding.name is probably "
            "'small'): set config.model.embedding.name = 'vggish' to use VGGish weights.")
  model_fc2, loaded_fc2 = model_flat.get('fc2/kernel'), loaded_flat.get('fc2/kernel')
  if (model_fc2 is not None and loaded_fc2 is not None
      and np.shape(model_fc2)[-1] != np.shape(loaded_fc2)[-1]):
    return (f'The weights give {np.shape(loaded_fc2)[-1]}-d embeddings but the model makes '
            f'{np.shape(model_fc2)[-1]}-d ones: set config.model.embedding.dim = '
            f'{np.shape(loaded_fc2)[-1]}.')
  return ('Check config.model.embedding (name must be \'vggish\', dim the file\'s embedding size) '
          'and config.model.embedding.weights.')


def _place_like(value: np.ndarray, like: Any):
  """`value` with `like`'s dtype, and on `like`'s devices when it is a jax.Array."""
  value = np.asarray(value, dtype=like.dtype)
  if isinstance(like, jax.Array):
    return jax.device_put(value, like.sharding)
  return value


def merge_into_model_params(model_params, vggish_params):
  """Replaces the mixer's embedding parameters by loaded VGGish weights.

  Args:
    model_params: the params of an AiLiveMixer or DMC (the tree with a top-level
      'embedding' subtree), or the variables dict {'params': that tree, ...}.
    vggish_params: from `load_vggish_params`.
  Returns:
    A new tree of the same structure; every other subtree is the same object.
    Loaded arrays take the dtype (and sharding) of the ones they replace.
  Raises:
    ValueError: listing each missing, unexpected or mis-shaped variable, and
      the config line to change.
  """
  frozen = isinstance(model_params, flax.core.FrozenDict)
  tree = flax.core.unfreeze(model_params) if frozen else dict(model_params)
  if 'embedding' not in tree and 'embedding' in tree.get('params', {}):
    out = dict(tree)
    out['params'] = merge_into_model_params(tree['params'], vggish_params)
    return flax.core.freeze(out) if frozen else out
  if 'embedding' not in tree:
    raise ValueError(
        f'These parameters have no \'embedding\' subtree (top level: {sorted(tree)}): pass the '
        'params of an AiLiveMixer or DMC built with config.model.embedding.name = \'vggish\'.')

  model_flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(tree['embedding']), sep='/')
  loaded_flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(vggish_params), sep='/')
  problems = []
  for name, leaf in model_flat.items():
    if name not in loaded_flat:
      problems.append(f'  missing from the weights: embedding/{name} (model shape {np.shape(leaf)})')
    elif np.shape(loaded_flat[name]) != np.shape(leaf):
      problems.append(f'  wrong shape: embedding/{name}: model expects {np.shape(leaf)}, '
                      f'weights have {np.shape(loaded_flat[name])}')
  problems += [f'  unexpected in the weights: embedding/{name} (shape {np.shape(v)})'
               for name, v in loaded_flat.items() if name not in model_flat]
  if problems:
    # The hint first: a wrong embedding name lists every layer.
    hint = _embedding_hint(model_flat, loaded_flat)
    raise ValueError(f'The VGGish weights do not fit the model\'s embedding. {hint}\n'
                     f'{len(problems)} problem(s):\n' + '\n'.join(problems))

  merged = {name: _place_like(loaded_flat[name], leaf) for name, leaf in model_flat.items()}
  tree['embedding'] = flax.traverse_util.unflatten_dict(merged, sep='/')
  return flax.core.freeze(tree) if frozen else tree


def load_pretrained_embedding(model_params, embedding_config):
  """`model_params` with the weights at `embedding_config.weights`, if set.

  Args:
    model_params: as for `merge_into_model_params`.
    embedding_config: config.model.embedding (name, weights, fc2_relu).
  Returns:
    The merged params, or `model_params` unchanged when no weights are set.
  """
  emb = embedding_config
  if not emb.get('weights', ''):
    return model_params
  if emb.name != 'vggish':
    raise ValueError(
        f'{_CONFIG_HINT} = {emb.weights!r} holds VGGish weights but config.model.embedding.name = '
        f"{emb.name!r}: set config.model.embedding.name = 'vggish', or clear {_CONFIG_HINT}.")
  params = load_vggish_params(emb.weights, fc2_relu=emb.get('fc2_relu', False))
  logging.info('Loaded VGGish weights from %s.', emb.weights)
  return merge_into_model_params(model_params, params)
