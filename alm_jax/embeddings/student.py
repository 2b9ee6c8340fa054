"""The 'student' embedding: a small convolutional network distilled from musicnn, on musicnn's front end.

Log-mel patches [n, rows, 96] (musicnn's front end, any rows >= 16) -> four 3 x 3
convolutions with stride 2 and ReLU (`features` channels) -> mean and max over
the map -> a linear layer to 200 values, trained (tools/distill_student.py) to
give musicnn's embedding of the same patch (level-normalised rendered_live
channels with bleed, the teacher's features cached) with the channel's role as
an auxiliary target. About 1/40 of musicnn's operations per 3 s F1 frame
(bench/embeddings.py). Its weights ship in `weights/student_musicnn.npz`; the
recipe and its agreement with the teacher: docs/embeddings.md.
"""

import os
from typing import Any, Sequence

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from alm_jax.embeddings import base
from alm_jax.embeddings import musicnn_frontend

DIM = 200  # musicnn's embedding size: the student's target
FEATURES = (24, 48, 96, 128)
WEIGHTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'weights',
                       'student_musicnn.npz')


class Student(nn.Module):
  """[n, rows, bands] musicnn log-mel -> [n, dim]."""
  dim: int = DIM
  features: Sequence[int] = FEATURES
  dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, patches):
    # musicnn's log10(10000 mel + 1) lies in about [0, 4]: centre and scale it.
    x = ((patches[..., None] - 1.5) * 0.5).astype(self.dtype)
    if x.shape[-3] < 2 ** len(self.features):
      raise ValueError(f'The student embedding needs at least {2 ** len(self.features)} log-mel '
                       f'rows, got patches of shape {patches.shape}: raise config.model.f1_ms.')
    for i, f in enumerate(self.features):
      x = nn.relu(nn.Conv(f, (3, 3), strides=(2, 2), padding='SAME', dtype=self.dtype,
                          name=f'conv{i + 1}')(x))
    pooled = jnp.concatenate([jnp.mean(x, axis=(-3, -2)), jnp.max(x, axis=(-3, -2))], axis=-1)
    return nn.Dense(self.dim, dtype=self.dtype, name='fc')(pooled)


def build(embedding_config, dtype, name='embedding') -> Student:
  if int(embedding_config.dim) != DIM:
    raise ValueError(f'The student embedding has {DIM} dimensions (musicnn\'s): set '
                     f'config.model.embedding.dim = {DIM} (got {embedding_config.dim}).')
  return Student(dtype=dtype, name=name)


def save_params(params, path: str) -> None:
  """Writes the student's parameter tree as a flat .npz ('conv1/kernel', ...)."""
  flat = {f'{layer}/{k}': np.asarray(v) for layer, sub in params.items() for k, v in sub.items()}
  np.savez(path, **flat)


def load_params(path: str):
  """The parameter tree from `save_params`' file."""
  if not os.path.exists(path):
    raise FileNotFoundError(f'Student embedding weights {path} do not exist: train them with '
                            '`python tools/distill_student.py` or set config.model.embedding.weights.')
  tree = {}
  with np.load(path) as f:
    for key in f.files:
      layer, k = key.split('/')
      tree.setdefault(layer, {})[k] = np.asarray(f[key])
  return tree


def pretrained_params(embedding_config):
  """The distilled weights (shipped; or `weights`' file), None for `weights = 'random'`."""
  path = embedding_config.get('weights', '')
  if path == 'random':
    return None
  return load_params(path or WEIGHTS)


EMBEDDING = base.Embedding(
    name='student', build=build, frontend=musicnn_frontend.MusicnnFrontend.from_config,
    pretrained=pretrained_params, dim=DIM, has_weights=True,
    description='small CNN distilled from musicnn on rendered_live channels, 200-d, shipped weights')
