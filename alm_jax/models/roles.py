"""Which role each channel plays, named as the role-aware preset names it, for the ALM's staged gains.

With `config.model.roles.enabled` a staged ALM keeps, per channel, the running mean of its
embedding network's outputs (the F1 embedding in force, before encoder 1) over the F2 frames
where the channel plays (within `roles.gate_db` of its running active level: its rests and its
bleed do not name it), names the nearest role centroid (`role_preset.nearest_role`: the centroids
of `roles.centroids`, by default the file shipped for the embedding, made on `rendered_live`'s
train split) and adds a learned level per named role (`role_offsets`, dB, one per centroid,
starting at 0, so a mixer trained without it starts where it was) to the staging's. The network
hears its embedding every frame; what this adds is a steady, causal name for the channel and
one level for each name, the part of the balance the role-aware preset gets right and the
network's own offsets did not (docs/model.md, "Named roles").
"""

import jax.numpy as jnp
import numpy as np

from alm_jax.models import role_preset


def enabled(model_config) -> bool:
  return bool(model_config.get('roles', {}).get('enabled', False))


def state_size(model_config) -> int:
  """Per channel: the weighted sum of the embeddings, then its weight."""
  return int(model_config.embedding.dim) + 1


def load_centroids(model_config) -> dict:
  """{'center' [D], 'centroids' [R, D]} float32 of config.model.roles.centroids, checked."""
  path = (model_config.roles.get('centroids', '')
          or role_preset.default_centroids_path(model_config.embedding.name))
  c = role_preset.load_centroids(path)
  dim = int(model_config.embedding.dim)
  if c['centroids'].shape[1] != dim:
    raise ValueError(f'Role centroid file {path} holds {c["centroids"].shape[1]}-dimensional '
                     f'centroids; config.model.embedding ({model_config.embedding.name}) gives '
                     f'{dim}: make centroids for it with tools/role_centroids.py or set '
                     'config.model.roles.centroids.')
  return {k: np.asarray(c[k], np.float32) for k in ('center', 'centroids')}


def uses_similarity(model_config) -> bool:
  """Whether the mixer reads each F1 frame as its similarity to the role centroids instead of
  the embedding itself (config.model.roles.input = 'similarity')."""
  value = model_config.get('roles', {}).get('input', 'embedding')
  if value not in ('embedding', 'similarity'):
    raise ValueError("config.model.roles.input must be 'embedding' or 'similarity', "
                     f'got {value!r}.')
  return enabled(model_config) and value == 'similarity'


def similarity(raw, centroids: dict):
  """Embedding-network outputs [..., D] -> cosine to each role centroid [..., R] (after centring,
  as `role_preset.nearest_role` compares them)."""
  x = raw.astype(jnp.float32) - centroids['center']
  x = x / jnp.maximum(jnp.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
  return x @ jnp.asarray(centroids['centroids']).T


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
