"""Audio embeddings: log-mel patches [n, patch_frames, n_mels] -> embeddings [n, dim], with front ends.

The registry of the embeddings `config.model.embedding.name` may name: one
`base.Embedding` entry each, defined by the embedding's own module. A new
embedding is one module here defining `EMBEDDING` (plus its weights under
`weights/`) and one line in `EMBEDDINGS` below; mixers, training and the exports
ask the entry (`get(name)`, `find(...)` by capability), never the name
(docs/architecture.md).
"""

import jax.numpy as jnp

from alm_jax.embeddings import base
from alm_jax.embeddings import frontend
from alm_jax.embeddings import musicnn
from alm_jax.embeddings import small
from alm_jax.embeddings import student
from alm_jax.embeddings import vggish

Embedding = base.Embedding
Frontend = frontend.Frontend

# One line per embedding.
EMBEDDINGS: dict[str, base.Embedding] = {e.name: e for e in (
    vggish.EMBEDDING,
    small.EMBEDDING,
    musicnn.EMBEDDING,
    student.EMBEDDING,
)}


def available() -> list[str]:
  """The names config.model.embedding.name may take."""
  return sorted(EMBEDDINGS)


def find(**capabilities) -> list[str]:
  """Names of the embeddings whose entry has every given attribute value, e.g. find(row_by_row=True)."""
  return sorted(name for name, e in EMBEDDINGS.items()
                if all(getattr(e, k) == v for k, v in capabilities.items()))


def get(name: str) -> base.Embedding:
  """The entry of `config.model.embedding.name`; ValueError naming the choices if unknown."""
  if name not in EMBEDDINGS:
    raise ValueError(f'Unknown config.model.embedding.name {name!r}: use one of {available()} '
                     '(the entries of alm_jax/embeddings/__init__.py EMBEDDINGS).')
  return EMBEDDINGS[name]


def build_embedding(embedding_config, dtype=jnp.float32, name='embedding'):
  """The flax module of `config.model.embedding`."""
  return get(embedding_config.name).build(embedding_config, dtype, name)


def frontend_for(model_config) -> frontend.Frontend:
  """The front end of `config.model`'s embedding (raw waveform in, log-mel patches out)."""
  return get(model_config.embedding.name).frontend(model_config)


def cpu_compiler_options(embedding_config) -> dict:
  """XLA:CPU compiler options for programs running this embedding ({}: XLA's defaults)."""
  return dict(get(embedding_config.name).cpu_compiler_options)


def load_pretrained(params, embedding_config):
  """`params` with params['embedding'] replaced by the embedding's pretrained weights, if it has any.

  `embedding_config` is config.model.embedding. VGGish: the file at its
  `weights` (none when empty); musicnn: the weights shipped with the package
  unless `weights` names another file, or none with `weights = 'random'`.
  """
  return get(embedding_config.name).load_pretrained(params, embedding_config)
