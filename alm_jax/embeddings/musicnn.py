"""The 'musicnn' embedding: MTT_musicnn's 200-d penultimate layer on musicnn's own front end.

Its pieces: the network (`musicnn_network`), the front end (`musicnn_frontend`,
its patch the most rows an F1 frame holds) and the release's weights, shipped in
`weights/musicnn_mtt.npz` (`musicnn_weights`). Notes: docs/embeddings.md.
"""

from alm_jax.embeddings import base
from alm_jax.embeddings import musicnn_frontend
from alm_jax.embeddings import musicnn_network
from alm_jax.embeddings import musicnn_weights


def build(embedding_config, dtype, name='embedding') -> musicnn_network.Musicnn:
  """The MTT network, 200-dimensional embeddings."""
  if int(embedding_config.dim) != musicnn_network.EMBEDDING_DIM:
    raise ValueError(f'musicnn embeddings have {musicnn_network.EMBEDDING_DIM} dimensions: set '
                     f'config.model.embedding.dim = {musicnn_network.EMBEDDING_DIM} '
                     f'(got {embedding_config.dim}).')
  return musicnn_network.Musicnn(dtype=dtype, name=name)


def pretrained_params(embedding_config):
  """The released MTT_musicnn weights (shipped; or `weights`' file), None for `weights = 'random'`."""
  path = embedding_config.get('weights', '')
  if path == 'random':
    return None
  return musicnn_weights.load_musicnn_params(path or None)


EMBEDDING = base.Embedding(
    name='musicnn', build=build, frontend=musicnn_frontend.MusicnnFrontend.from_config,
    pretrained=pretrained_params, dim=musicnn_network.EMBEDDING_DIM, has_weights=True,
    description='MTT_musicnn (MagnaTagATune release), 200-d, shipped weights')
