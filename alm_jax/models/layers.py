"""Building blocks shared by the mixers: channel-attention encoders, PReLU MLPs, the time GRU."""

from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp


class EncoderLayer(nn.Module):
  """A post-norm Transformer encoder layer (PyTorch's `TransformerEncoderLayer` layout)."""
  num_heads: int
  mlp_dim: int
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, key_mask, deterministic: bool):
    """x [n, tokens, d], key_mask [n, tokens] bool -> [n, tokens, d]."""
    d = x.shape[-1]
    attn_mask = key_mask[:, None, None, :]
    y = nn.MultiHeadDotProductAttention(num_heads=self.num_heads, dtype=self.dtype,
                                        dropout_rate=self.dropout, deterministic=deterministic,
                                        name='attention')(x, x, mask=attn_mask)
    y = nn.Dropout(self.dropout)(y, deterministic=deterministic)
    x = nn.LayerNorm(dtype=self.dtype, name='norm1')(x + y)
    y = nn.relu(nn.Dense(self.mlp_dim, dtype=self.dtype, name='mlp_in')(x))
    y = nn.Dropout(self.dropout)(y, deterministic=deterministic)
    y = nn.Dense(d, dtype=self.dtype, name='mlp_out')(y)
    y = nn.Dropout(self.dropout)(y, deterministic=deterministic)
    return nn.LayerNorm(dtype=self.dtype, name='norm2')(x + y)


class ChannelEncoder(nn.Module):
  """A Transformer encoder whose tokens are the channels: attention across channels.

  No positional encoding, so the encoder is permutation-equivariant over
  channels, and masked channels are never attended to.
  """
  num_layers: int
  num_heads: int
  mlp_dim: int
  dropout: float = 0.0
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, channel_mask, deterministic: bool = True):
    """x [batch, channels, ..., d], channel_mask [batch, channels] -> same shape as x."""
    # Move channels next to the feature axis and fold every other axis into the batch.
    moved = jnp.moveaxis(x, 1, -2)  # [b, ..., c, d]
    lead = moved.shape[:-2]
    tokens = moved.reshape((-1,) + moved.shape[-2:])
    mask = jnp.broadcast_to(channel_mask.reshape((channel_mask.shape[0],) + (1,) * (len(lead) - 1)
                                                 + (channel_mask.shape[1],)), lead + channel_mask.shape[1:])
    mask = mask.reshape(-1, mask.shape[-1])
    for i in range(self.num_layers):
      tokens = EncoderLayer(self.num_heads, self.mlp_dim, self.dropout, self.dtype,
                            name=f'layer{i}')(tokens, mask, deterministic)
    return jnp.moveaxis(tokens.reshape(moved.shape), -2, 1)


class PReLUMLP(nn.Module):
  """Dense layers with PReLU between them; the last layer is linear."""
  features: Sequence[int]
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    for i, f in enumerate(self.features):
      x = nn.Dense(f, dtype=self.dtype, name=f'dense{i}')(x)
      if i < len(self.features) - 1:
        x = nn.PReLU(negative_slope_init=0.25, name=f'prelu{i}')(x)
    return x


class TimeGRU(nn.Module):
  """A GRU over the F2-frame axis, as one `nn.scan` so the recurrence compiles once."""
  hidden: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, carry, x):
    """carry [batch, channels, hidden], x [batch, channels, frames, d] -> (carry, [b, c, frames, hidden])."""
    scan = nn.scan(nn.GRUCell, variable_broadcast='params', split_rngs={'params': False},
                   in_axes=2, out_axes=2)
    return scan(features=self.hidden, dtype=self.dtype, name='cell')(carry, x)

  def initial_carry(self, batch: int, channels: int):
    return jnp.zeros((batch, channels, self.hidden), jnp.float32)
