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
  """A small conv net with VGGish's interface, for tests and CPU training."""
  dim: int = 128
  features: Sequence[int] = (16, 32, 64)
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, patches):
    """[n, frames, bands] -> [n, dim]."""
    x = patches[..., None].astype(self.dtype)
    # Log-mel values sit around [-5, 5]; a fixed affine keeps early training sane.
    x = (x + 2.0) * 0.25
    for i, f in enumerate(self.features):
      x = nn.relu(nn.Conv(f, (3, 3), padding='SAME', dtype=self.dtype, name=f'conv{i + 1}')(x))
      x = nn.max_pool(x, (2, 2), strides=(2, 2), padding='SAME')
    x = jnp.mean(x, axis=(1, 2))
    return nn.Dense(self.dim, dtype=self.dtype, name='fc')(x)


def build_embedding(embedding_config, dtype=jnp.float32, name='embedding'):
  """The embedding module named by `config.model.embedding.name`."""
  kind = embedding_config.name
  if kind == 'vggish':
    return VGGish(dim=embedding_config.dim, fc2_relu=embedding_config.fc2_relu, dtype=dtype, name=name)
  if kind == 'small':
    return SmallEmbedding(dim=embedding_config.dim, features=tuple(embedding_config.small_features),
                          dtype=dtype, name=name)
  raise ValueError(f"Unknown config.model.embedding.name {kind!r}: use 'vggish' or 'small'.")
