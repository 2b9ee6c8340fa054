"""The VGGish network (tensorflow/models research/audioset/vggish): log-mel patches [n, 96, 64] -> [n, 128].

`VGGish` reproduces the released network layer for layer, with parameter names
that mirror the TF checkpoint (`vggish/conv3/conv3_1/weights` -> `conv3_1/kernel`),
so released weights load without renaming tricks (`alm_jax.embeddings.vggish_weights`).
Registered as the 'vggish' embedding by `alm_jax.embeddings.vggish`.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

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
