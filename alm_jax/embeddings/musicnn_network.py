"""musicnn (Pons & Serra, 2019) in Flax: the MTT_musicnn audio-tagging network, log-mel patches in.

The layers follow musicnn/models.py `build_musicnn` (num_filt 1.6, mid-end 64
filters, back end 200 units) in inference mode: every batch normalisation is a
per-channel affine `scale * x + bias` folded from the release's moving
statistics (ε = 0.001) by `alm_jax.embeddings.musicnn_weights`, and stays trainable
for fine-tuning. The embedding is the back end's penultimate layer (200 values,
after its batch norm: musicnn's `penultimate` feature); `tag_logits` also gives
the 50 MagnaTagATune tags (`MTT_TAGS` order, sigmoid for probabilities). The
front end (`MusicnnSpec`, `log_mel_frames`) is `musicnn_frontend`; the 'musicnn'
embedding entry is `alm_jax.embeddings.musicnn`. Notes and figures: docs/embeddings.md.
"""

from typing import Any

import flax.linen as nn
import jax.numpy as jnp

from alm_jax import frames


# musicnn/configuration.py MTT_LABELS: the order of the network's outputs.
MTT_TAGS = (
    'guitar', 'classical', 'slow', 'techno', 'strings', 'drums', 'electronic', 'rock', 'fast',
    'piano', 'ambient', 'beat', 'violin', 'vocal', 'synth', 'female', 'indian', 'opera', 'male',
    'singing', 'vocals', 'no vocals', 'harpsichord', 'loud', 'quiet', 'flute', 'woman',
    'male vocal', 'no vocal', 'pop', 'soft', 'sitar', 'solo', 'man', 'classic', 'choir', 'voice',
    'new age', 'dance', 'male voice', 'female vocal', 'beats', 'harp', 'cello', 'no voice', 'weird',
    'country', 'metal', 'female voice', 'choral')

N_MELS = 96
# (name, filters, kernel [time, mel bands]) of the timbral (vertical) filters:
# 0.4 and 0.7 of the 96 bands, 7 rows, int(1.6 * 128) filters each.
TIMBRAL = (('timbral_74', 204, (7, 38)), ('timbral_77', 204, (7, 67)))
# (name, filters, rows) of the temporal (horizontal) filters: one band wide.
TEMPORAL = (('temporal_128', 51, 128), ('temporal_64', 51, 64), ('temporal_32', 51, 32))
MIDEND = ('midend_1', 'midend_2', 'midend_3')
MIDEND_FILTERS = 64
MIDEND_ROWS = 7
BACKEND_UNITS = 200
EMBEDDING_DIM = BACKEND_UNITS
# 561 front-end features + 3 mid-end layers.
FEATURES = sum(f for _, f, _ in TIMBRAL) + sum(f for _, f, _ in TEMPORAL) + 3 * MIDEND_FILTERS


class Affine(nn.Module):
  """An inference-mode batch norm: `x * scale + bias` over the last axis (or a scalar)."""
  features: int
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x):
    scale = self.param('scale', nn.initializers.ones, (self.features,), jnp.float32)
    bias = self.param('bias', nn.initializers.zeros, (self.features,), jnp.float32)
    return x * scale.astype(self.dtype) + bias.astype(self.dtype)


class Musicnn(nn.Module):
  """MTT_musicnn: log-mel patches [n, rows, 96] -> embeddings [n, 200] (and tag logits [n, 50]).

  Any number of rows >= 1 works (the back end pools over time); the release
  was trained on 187 (3 s). Row order is time; within a patch the temporal
  filters look both ways, zero-padded at the patch's edges, as in the release.
  """
  num_tags: int = len(MTT_TAGS)
  dtype: Any = jnp.float32

  def setup(self):
    dt = self.dtype
    self.input_bn = Affine(1, dtype=dt)
    # Zero-padded in time only: the mel axis is max-pooled whole afterwards.
    self.timbral = [nn.Conv(f, k, padding=((k[0] // 2, k[0] // 2), (0, 0)), dtype=dt, name=n)
                    for n, f, k in TIMBRAL]
    self.timbral_bn = [Affine(f, dtype=dt, name=n + '_bn') for n, f, _ in TIMBRAL]
    # TF's 'SAME' for an even kernel pads one row more after than before.
    self.temporal = [nn.Conv(f, (k, 1), padding=(((k - 1) // 2, k // 2), (0, 0)), dtype=dt, name=n)
                     for n, f, k in TEMPORAL]
    self.temporal_bn = [Affine(f, dtype=dt, name=n + '_bn') for n, f, _ in TEMPORAL]
    self.midend = [nn.Conv(MIDEND_FILTERS, (MIDEND_ROWS,), padding=((MIDEND_ROWS // 2,) * 2,),
                           dtype=dt, name=n) for n in MIDEND]
    self.midend_bn = [Affine(MIDEND_FILTERS, dtype=dt, name=n + '_bn') for n in MIDEND]
    self.pool_bn = Affine(2 * FEATURES, dtype=dt)
    self.dense = nn.Dense(BACKEND_UNITS, dtype=dt)
    self.dense_bn = Affine(BACKEND_UNITS, dtype=dt)
    self.tags = nn.Dense(self.num_tags, dtype=dt)

  def features(self, patches):
    """[n, rows, 96] -> the mid-end's feature map [n, rows, 753] (front end 561 + 3 x 64)."""
    if patches.shape[-1] != N_MELS:
      raise ValueError(f'musicnn takes {N_MELS} mel bands, got patches of shape {patches.shape}: '
                       'use alm_jax.embeddings.musicnn_frontend.log_mel_frames.')
    x = self.input_bn(patches[..., None].astype(self.dtype))  # [n, rows, 96, 1]
    front = []
    for conv, bn in zip(self.timbral + self.temporal, self.timbral_bn + self.temporal_bn):
      # ReLU, batch norm, then the maximum over the mel axis (the release's order).
      front.append(jnp.max(bn(nn.relu(conv(x))), axis=-2))
    h = jnp.concatenate(front, axis=-1)  # [n, rows, 561]
    layers = [h]
    for i, (conv, bn) in enumerate(zip(self.midend, self.midend_bn)):
      y = bn(nn.relu(conv(layers[-1])))
      layers.append(y if i == 0 else y + layers[-1])
    return jnp.concatenate(layers, axis=-1)

  def backend(self, feature_map):
    """[n, rows, 753] -> (embedding [n, 200], tag logits [n, num_tags])."""
    # The release flattens [max, mean] per feature: max_0, mean_0, max_1, ...
    pooled = frames.stack([jnp.max(feature_map, axis=-2), jnp.mean(feature_map, axis=-2)], axis=-1)
    pooled = self.pool_bn(pooled.reshape(pooled.shape[:-2] + (-1,)))
    embedding = self.dense_bn(nn.relu(self.dense(pooled)))
    return embedding, self.tags(embedding)

  def __call__(self, patches):
    """[n, rows, 96] -> embeddings [n, 200]."""
    return self.backend(self.features(patches))[0]

  def tag_logits(self, patches):
    """[n, rows, 96] -> tag logits [n, num_tags] (sigmoid: the release's tag probabilities)."""
    return self.backend(self.features(patches))[1]

  def embed_and_tag(self, patches):
    """[n, rows, 96] -> (embeddings [n, 200], tag logits [n, num_tags])."""
    return self.backend(self.features(patches))
