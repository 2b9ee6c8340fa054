"""Audio embedding models: log-mel patches [n, 96, 64] -> embeddings [n, dim].

`VGGish` reproduces the released VGGish network layer for layer, with parameter
names that mirror the TF checkpoint (`vggish/conv3/conv3_1/weights` ->
`conv3_1/kernel`), so released weights load without renaming tricks
(see `alm_jax.models.vggish_weights`). `SmallEmbedding` has the same interface
and is cheap enough for tests and CPU runs.
"""

import dataclasses
import importlib
import os
import pkgutil
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from alm_jax import frontend

# (name, features) of VGGish's conv layers; 'pool' is a 2x2 max-pool, stride 2.
VGGISH_LAYERS = (('conv1', 64), 'pool', ('conv2', 128), 'pool', ('conv3_1', 256), ('conv3_2', 256),
                 'pool', ('conv4_1', 512), ('conv4_2', 512), 'pool')
VGGISH_FC = (('fc1_1', 4096), ('fc1_2', 4096))


class VGGish(nn.Module):
  """The VGGish network (tensorflow/models research/audioset/vggish).

  Its fully connected layers need the whole map, so it has no row-by-row
  interface (`row_tiles` is empty): a streaming step runs it whole.

  Attributes:
    dim: embedding size (the release: 128).
    fc2_relu: apply ReLU after the last layer (torchvggish does; the TF release
      does not, and that is the default).
  """
  dim: int = 128
  fc2_relu: bool = False
  dtype: Any = jnp.float32
  row_tiles = ()

  @nn.compact
  def __call__(self, patches):
    """[n, frames, bands] -> [n, dim]."""
    x = patches[..., None].astype(self.dtype)
    for layer in VGGISH_LAYERS:
      if layer == 'pool':
        x = nn.max_pool(x, (2, 2), strides=(2, 2), padding='SAME')
      else:
        name, features = layer
        x = nn.relu(nn.Conv(features, (3, 3), padding='SAME', dtype=self.dtype, name=name)(x))
    # Flatten in NHWC order, as the TF graph does.
    x = x.reshape(x.shape[0], -1)
    for name, features in VGGISH_FC:
      x = nn.relu(nn.Dense(features, dtype=self.dtype, name=name)(x))
    x = nn.Dense(self.dim, dtype=self.dtype, name='fc2')(x)
    return nn.relu(x) if self.fc2_relu else x


class SmallEmbedding(nn.Module):
  """A small patch-merging network with VGGish's interface, for tests, CPU training and live use.

  Layer i cuts its input map into non-overlapping tiles (4 x 4 log-mel cells
  for the first layer, 2 x 2 cells after) and maps each tile to `features[i]`
  channels with ReLU (a convolution whose kernel equals its stride: one matrix
  product), then the mean over the map and a linear projection to `dim`.
  About 2.8 MFLOP per patch with features (32, 64, 64), against ~1.7 GFLOP for
  VGGish (docs/inference.md). Each output row of a layer depends only on the
  rows of its tiles, so the network can be computed a few rows at a time as a
  frame's log-mel rows arrive: `row_tiles`, `first_map`, `layer` and `pool` are
  that row-by-row interface (the streaming step uses it to spread a frame's
  work over the F2 frames before it), and `__call__` is their composition.
  """
  dim: int = 128
  features: Sequence[int] = (32, 64, 64)
  dtype: Any = jnp.float32

  def setup(self):
    for i, f in enumerate(self.features):
      setattr(self, f'conv{i + 1}', nn.Dense(f, dtype=self.dtype))
    self.fc = nn.Dense(self.dim, dtype=self.dtype)

  @property
  def row_tiles(self) -> tuple:
    """(rows, bands) of each layer's tiles: the row-by-row interface's static plan."""
    return tuple(small_tile(i) for i in range(len(self.features)))

  def first_map(self, patches):
    """Log-mel rows [..., rows, bands] -> the first layer's input map [..., rows, bands, 1]."""
    return small_input(patches, self.dtype)

  def layer(self, x, i: int):
    """Layer i on whole tiles: map [..., rows, w, f] -> [..., rows / a, w / b, features[i]]."""
    return nn.relu(getattr(self, f'conv{i + 1}')(tiles(x.astype(self.dtype), small_tile(i))))

  def pool(self, x):
    """The last layer's map [..., h, w, f] -> the embedding [..., dim]."""
    return self.fc(jnp.mean(x.astype(self.dtype), axis=(-3, -2)))

  def __call__(self, patches):
    """[n, frames, bands] -> [n, dim]."""
    x = self.first_map(patches)
    for i in range(len(self.features)):
      x = self.layer(x, i)
    return self.pool(x)


def small_tile(i: int):
  """(rows, bands) of SmallEmbedding layer i's tiles."""
  return (4, 4) if i == 0 else (2, 2)


def small_input(patches, dtype):
  """Log-mel [..., rows, bands] -> SmallEmbedding's first map [..., rows, bands, 1]."""
  # Log-mel values sit around [-5, 5]; a fixed affine keeps early training sane.
  return (patches[..., None].astype(dtype) + 2.0) * 0.25


def tiles(x, tile):
  """A map [..., h, w, f] cut into tiles (a, b) -> [..., h / a, w / b, a * b * f]."""
  a, b = tile
  *lead, h, w, f = x.shape
  if h % a or w % b:
    raise ValueError(f'SmallEmbedding tiles a {h} x {w} map by {a} x {b}: the log-mel patch '
                     '(config.model.frontend.patch_frames x n_mels) must divide by the product of '
                     'the tiles; use fewer config.model.embedding.small_features.')
  x = x.reshape(tuple(lead) + (h // a, a, w // b, b, f))
  return jnp.moveaxis(x, -4, -3).reshape(tuple(lead) + (h // a, w // b, a * b * f))


@dataclasses.dataclass(frozen=True)
class Frontend:
  """An embedding's log-mel front end: its spec and the module whose functions compute it.

  `module` is `alm_jax.frontend` (VGGish's front end, for 'vggish' and
  'small') or an embedding's own front-end module with the same functions
  (`log_mel_frames`, `log_mel_rows`, `frame_input`, `check_frame`,
  `shares_rows`); `spec` has `frame_input_samples`, `patch_frames`,
  `n_mels`, `hop`, `window` and `ratio`.
  """
  spec: Any
  module: Any

  @property
  def frame_input_samples(self) -> int:
    return self.spec.frame_input_samples

  @property
  def resampler(self) -> frontend.FrontendSpec:
    """The spec `frontend.resample` takes for this front end's resampling."""
    return getattr(self.spec, 'resampler', self.spec)

  def log_mel_frames(self, x, num_frames, hop: int):
    return self.module.log_mel_frames(x, num_frames, hop, self.spec)

  def log_mel_rows(self, x16, num_rows):
    return self.module.log_mel_rows(x16, num_rows, self.spec)

  def frame_input(self, audio, frame_spec):
    return self.module.frame_input(audio, frame_spec, self.spec)

  def check_frame(self, f1: int):
    self.module.check_frame(f1, self.spec)

  def shares_rows(self, hop: int) -> bool:
    return self.module.shares_rows(hop, self.spec)


def _vggish_frontend(model_config) -> Frontend:
  return Frontend(frontend.FrontendSpec.from_config(model_config), frontend)


# The embeddings defined in this file; any other is the module alm_jax.models.<name>,
# which defines build_embedding(embedding_config, dtype, name) and frontend(model_config).
_BUILT_IN = {
    'vggish': (lambda c, dtype, name: VGGish(dim=c.dim, fc2_relu=c.fc2_relu, dtype=dtype, name=name),
               _vggish_frontend),
    'small': (lambda c, dtype, name: SmallEmbedding(dim=c.dim, features=tuple(c.small_features),
                                                    dtype=dtype, name=name), _vggish_frontend),
}


def _kind(name: str):
  if name in _BUILT_IN:
    return _BUILT_IN[name]
  known = {info.name for info in pkgutil.iter_modules([os.path.dirname(__file__)])}
  module = importlib.import_module(f'alm_jax.models.{name}') if name in known else None
  if module is None or not hasattr(module, 'build_embedding'):
    raise ValueError(f'Unknown config.model.embedding.name {name!r}: use {sorted(_BUILT_IN)} or the '
                     'name of a module in alm_jax/models/ that defines build_embedding and frontend.')
  return module.build_embedding, module.frontend


# XLA:CPU compiler options per embedding, for every jitted program that runs it
# (`alm_jax.models.compiler_options`). This jaxlib hands convolutions to YNNPACK
# by default; for VGGish's 3x3 convolutions Eigen's are faster: the forward at
# batch 64 went from 0.95x to 0.65x torchvggish's time, offline mixing with
# VGGish from 3.9x to 5.4x real time, while the small embedding's convolutions
# are faster in YNNPACK (124x vs 112x real time), so it keeps the default.
# bench/vggish_vs_torch.py (variant 'ynn') and bench/README.md have the figures.
# A module embedding may define CPU_COMPILER_OPTIONS likewise.
_CPU_COMPILER_OPTIONS = {
    'vggish': {'xla_cpu_experimental_ynn_fusion_type': 'LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT'},
}


def cpu_compiler_options(embedding_config) -> dict:
  """XLA:CPU compiler options for programs running this embedding ({}: XLA's defaults)."""
  name = embedding_config.name
  if name in _BUILT_IN:
    return dict(_CPU_COMPILER_OPTIONS.get(name, {}))
  _kind(name)  # the module exists, or a clear error
  return dict(getattr(importlib.import_module(f'alm_jax.models.{name}'), 'CPU_COMPILER_OPTIONS',
                      {}))


def build_embedding(embedding_config, dtype=jnp.float32, name='embedding'):
  """The embedding module named by `config.model.embedding.name`."""
  return _kind(embedding_config.name)[0](embedding_config, dtype, name)


def frontend_for(model_config) -> Frontend:
  """The front end of `config.model`'s embedding (raw waveform in, log-mel patches out)."""
  return _kind(model_config.embedding.name)[1](model_config)


def load_pretrained(params, embedding_config):
  """`params` with params['embedding'] replaced by the embedding's pretrained weights, if it has any.

  `embedding_config` is config.model.embedding. VGGish: the file at its
  `weights` (none when empty). Other
  embeddings: their module's `pretrained_params(embedding_config)` (musicnn:
  the weights shipped with the package unless `weights` names another file,
  or none with `weights = 'random'`).
  """
  name = embedding_config.name
  if name in _BUILT_IN:
    # vggish_weights imports this module, so it is imported here, when used.
    from alm_jax.models import vggish_weights  # pylint: disable=g-import-not-at-top
    return vggish_weights.load_pretrained_embedding(params, embedding_config)
  module = importlib.import_module(f'alm_jax.models.{name}')
  loaded = module.pretrained_params(embedding_config) if hasattr(
      module, 'pretrained_params') else None
  if loaded is None:
    return params
  want = jax.tree.map(np.shape, dict(params['embedding']))
  got = jax.tree.map(np.shape, dict(loaded))
  if want != got:
    raise ValueError(f'The pretrained {name} weights do not fit the model\'s embedding: the model '
                     f'has {want}, the weights {got}.')
  return {**params, 'embedding': jax.tree.map(
      lambda like, w: np.asarray(w, np.asarray(like).dtype), dict(params['embedding']), loaded)}
