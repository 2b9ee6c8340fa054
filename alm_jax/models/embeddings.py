"""Audio embedding models: log-mel patches [n, 96, 64] -> embeddings [n, dim].

`VGGish` reproduces the released VGGish network layer for layer, with parameter
names that mirror the TF checkpoint (`vggish/conv3/conv3_1/weights` ->
`conv3_1/kernel`), so released weights load without renaming tricks
(see `alm_jax.models.vggish_weights`). `SmallEmbedding` has the same interface
and is cheap enough for tests and CPU runs.
"""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

# (name, features) of VGGish's conv layers; 'pool' is a 2x2 max-pool, stride 2.
VGGISH_LAYERS = (('conv1', 64), 'pool', ('conv2', 128), 'pool', ('conv3_1', 256), ('conv3_2', 256),
                 'pool', ('conv4_1', 512), ('conv4_2', 512), 'pool')
VGGISH_FC = (('fc1_1', 4096), ('fc1_2', 4096))


class VGGish(nn.Module):
  """The VGGish network (tensorflow/models research/audioset/vggish).

  Attributes:
    dim: embedding size (the release: 128).
    fc2_relu: apply ReLU after the last layer (torchvggish does; the TF release
      does not, and that is the default).
  """
  dim: int = 128
  fc2_relu: bool = False
  dtype: Any = jnp.float32

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
  VGGish and ~30 MFLOP for a 3x3-convolution net of (16, 32, 64) features at
  full resolution; that budget is what lets a CPU mix many channels in real
  time (docs/inference.md). Each output row depends only on the rows of its
  tiles, which the streaming mixer uses to start a frame's network before
  the frame is complete.
  """
  dim: int = 128
  features: Sequence[int] = (32, 64, 64)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, patches):
    """[n, frames, bands] -> [n, dim]."""
    x = small_input(patches, self.dtype)
    for i, f in enumerate(self.features):
      x = nn.relu(nn.Dense(f, dtype=self.dtype, name=f'conv{i + 1}')(tiles(x, small_tile(i))))
    return nn.Dense(self.dim, dtype=self.dtype, name='fc')(jnp.mean(x, axis=(-3, -2)))


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


def build_embedding(embedding_config, dtype=jnp.float32, name='embedding'):
  """The embedding module named by `config.model.embedding.name`."""
  kind = embedding_config.name
  if kind == 'vggish':
    return VGGish(dim=embedding_config.dim, fc2_relu=embedding_config.fc2_relu, dtype=dtype, name=name)
  if kind == 'small':
    return SmallEmbedding(dim=embedding_config.dim, features=tuple(embedding_config.small_features),
                          dtype=dtype, name=name)
  raise ValueError(f"Unknown config.model.embedding.name {kind!r}: use 'vggish' or 'small'.")
