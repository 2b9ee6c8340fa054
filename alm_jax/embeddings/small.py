"""The 'small' embedding: a patch-merging network with VGGish's interface, cheap enough for CPU.

Runs VGGish's front end (`vggish_frontend.VGGishFrontend`) and is the one embedding
with the row-by-row interface the streaming step spreads over F2 frames
(docs/streaming.md). It has no released weights: `config.model.embedding.weights`
set for it goes to the VGGish loader, which refuses it with the fix (the file holds VGGish's).
"""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp

from alm_jax.embeddings import base
from alm_jax.embeddings import vggish_frontend
from alm_jax.embeddings import vggish_weights


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


def build(embedding_config, dtype=jnp.float32, name='embedding') -> SmallEmbedding:
  return SmallEmbedding(dim=embedding_config.dim, features=tuple(embedding_config.small_features),
                        dtype=dtype, name=name)


def load_pretrained(params, embedding_config):
  """Unchanged `params` unless config.model.embedding.weights is set: then the VGGish loader's refusal."""
  return vggish_weights.load_pretrained_embedding(params, embedding_config)


EMBEDDING = base.Embedding(
    name='small', build=build, frontend=vggish_frontend.VGGishFrontend.from_config,
    merge_pretrained=load_pretrained, row_by_row=True,
    description='patch-merging network on VGGish\'s log-mel, ~2.8 MFLOP per patch')
