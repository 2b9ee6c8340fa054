"""Roles named by their sound: the centroid files, the naming rule, and the ALM's named roles.

One rule names a channel's role, for the role-aware preset and the ALM alike: the nearest role
centroid (cosine after the centroids' common mean is removed, `nearest_role`) to the channel's
mean embedding, the centroids from a file made on `rendered_live`'s train split by
tools/role_centroids.py (`load_centroids`; by default the one shipped for the embedding). With
`config.model.roles.enabled` a staged ALM keeps, per channel, the running mean of its embedding
network's outputs (the F1 embedding in force, before encoder 1) over the F2 frames where the
channel plays (within `roles.gate_db` of its running active level: its rests and its bleed do
not name it), names its role so, and adds a learned level per named role (`role_offsets`, dB,
one per centroid, starting at 0, so a mixer trained without it starts where it was) to the
staging's (docs/model.md, "Named roles").
"""

import os

import jax.numpy as jnp
import numpy as np

# Shipped with the embeddings' weights (setup.py's package data): centroids live in an embedding's space.
_WEIGHTS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'embeddings',
                        'weights')


def enabled(model_config) -> bool:
  return bool(model_config.get('roles', {}).get('enabled', False))


def state_size(model_config) -> int:
  """Per channel: the weighted sum of the embeddings, then its weight."""
  return int(model_config.embedding.dim) + 1


def default_centroids_path(embedding_name: str) -> str:
  """The centroid file shipped for an embedding: alm_jax/embeddings/weights/role_centroids_<name>.npz."""
  return os.path.join(_WEIGHTS, f'role_centroids_{embedding_name}.npz')


def load_centroids(path: str, embedding=None) -> dict:
  """{'roles' [R] str, 'levels_db' float32 [R], 'center' float32 [D], 'centroids' float32 [R, D]}.

  `centroids` are unit vectors of the role means minus `center` (their common mean). Given
  `embedding` (a config.model.embedding), D must be its dim.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f'Role centroid file {path} does not exist: make it with '
                            '`python tools/role_centroids.py` or set the config\'s centroid file (the '
                            'role-aware preset\'s config.model.role_centroids, the ALM\'s '
                            'config.model.roles.centroids).')
  with np.load(path) as f:
    missing = {'roles', 'levels_db', 'center', 'centroids'} - set(f.files)
    if missing:
      raise ValueError(f'Role centroid file {path} lacks {sorted(missing)}: remake it with '
                       '`python tools/role_centroids.py`.')
    c = {k: np.asarray(f[k]) for k in ('roles', 'levels_db', 'center', 'centroids')}
  if embedding is not None and c['centroids'].shape[1] != int(embedding.dim):
    raise ValueError(f'Role centroid file {path} holds {c["centroids"].shape[1]}-dimensional '
                     f'centroids; config.model.embedding ({embedding.name}) gives {embedding.dim}: '
                     'make centroids for it with tools/role_centroids.py or point the config at '
                     'another file.')
  return c


def centroids_for(model_config) -> dict:
  """{'center' [D], 'centroids' [R, D]} float32 of config.model.roles.centroids, checked."""
  path = (model_config.roles.get('centroids', '')
          or default_centroids_path(model_config.embedding.name))
  c = load_centroids(path, model_config.embedding)
  return {k: np.asarray(c[k], np.float32) for k in ('center', 'centroids')}


def uses_similarity(model_config) -> bool:
  """Whether the mixer reads each F1 frame as its similarity to the role centroids instead of
  the embedding itself (config.model.roles.input = 'similarity')."""
  value = model_config.get('roles', {}).get('input', 'embedding')
  if value not in ('embedding', 'similarity'):
    raise ValueError("config.model.roles.input must be 'embedding' or 'similarity', "
                     f'got {value!r}.')
  return enabled(model_config) and value == 'similarity'


def similarity(embedding, center, centroids):
  """Embeddings [..., D] -> cosine to each role centroid [..., R], after `center` is removed."""
  x = embedding.astype(jnp.float32) - center
  x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
  return x @ jnp.asarray(centroids).T


def nearest_role(mean_embedding, center, centroids):
  """Mean embeddings [..., D] -> index [...] of the nearest centroid (cosine after centring)."""
  return jnp.argmax(similarity(mean_embedding, center, centroids), axis=-1)


def running(state, raw, played):
  """The running mean embedding over played frames and the role it names, after each F2 frame.

  Args:
    state: [b, c, D + 1] the sum of the played frames' embeddings and their count (zeros first).
    raw: [b, c, t, D] the embedding network's outputs in force on each F2 frame.
    played: [b, c, t] bool, whether the channel plays in the frame.
  Returns:
    (state after the last frame [b, c, D + 1], mean embeddings [b, c, t, D], named [b, c, t]
    bool: whether any frame has been played yet).
  """
  w = played.astype(jnp.float32)
  total = state[..., None, :-1] + jnp.cumsum(w[..., None] * raw.astype(jnp.float32), axis=-2)
  count = state[..., None, -1] + jnp.cumsum(w, axis=-1)
  mean = total / jnp.maximum(count, 1.0)[..., None]
  last = jnp.concatenate([total[..., -1, :], count[..., -1:]], axis=-1)
  return last, mean, count > 0
