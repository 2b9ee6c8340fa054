"""What an embedding declares: `Embedding`, the one registry entry of each (see `alm_jax.embeddings`).

An embedding module defines `EMBEDDING = Embedding(...)`: how to build the flax
network from `config.model.embedding`, its front end (a `frontend.Frontend`), how
its pretrained weights load, and what it can do (`row_by_row`, `dim`). Nothing
outside the embedding's own files names it: the registry finds it by
`config.model.embedding.name` and callers ask the entry, never branch on names.
"""

import dataclasses
from typing import Any, Callable, Mapping

import jax
import numpy as np

from alm_jax.embeddings import frontend


@dataclasses.dataclass(frozen=True)
class Embedding:
  """One embedding: what `config.model.embedding.name = name` builds.

  Attributes:
    name: the value of config.model.embedding.name.
    build: (embedding_config, dtype, name) -> flax module, patches
      [n, patch_frames, n_mels] -> embeddings [n, dim].
    frontend: model_config -> its `frontend.Frontend`.
    pretrained: embedding_config -> the embedding's param subtree (host arrays),
      or None when it starts from random weights; None: it has no weights.
    merge_pretrained: (model params, embedding_config) -> model params with
      params['embedding'] replaced; None: `merge_embedding` of `pretrained`.
    cpu_compiler_options: XLA:CPU options for every jitted program that runs it.
    dim: the only embedding size it gives (None: config.model.embedding.dim).
    row_by_row: its network has the row-by-row interface (`row_tiles`, ...) the
      streaming step spreads over F2 frames.
    has_weights: released weights load into it.
    description: one line for listings and errors.
  """
  name: str
  build: Callable[..., Any]
  frontend: Callable[[Any], frontend.Frontend]
  pretrained: Callable[[Any], Any] | None = None
  merge_pretrained: Callable[[Any, Any], Any] | None = None
  cpu_compiler_options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
  dim: int | None = None
  row_by_row: bool = False
  has_weights: bool = False
  description: str = ''

  def load_pretrained(self, params, embedding_config):
    """`params` (a model's tree) with params['embedding'] replaced by pretrained weights, if any."""
    if self.merge_pretrained is not None:
      return self.merge_pretrained(params, embedding_config)
    if not self.has_weights and embedding_config.get('weights', ''):
      raise ValueError(f'config.model.embedding.weights = {embedding_config.weights!r}, but the '
                       f'{self.name!r} embedding has no pretrained weights to load: clear '
                       'config.model.embedding.weights, or name an embedding that has them '
                       '(alm_jax.embeddings.find(has_weights=True)).')
    loaded = self.pretrained(embedding_config) if self.pretrained is not None else None
    return params if loaded is None else merge_embedding(params, loaded, self.name)


def merge_embedding(params, loaded, name: str):
  """`params` with params['embedding'] := `loaded` (cast to its dtypes), after a shape check."""
  want = jax.tree.map(np.shape, dict(params['embedding']))
  got = jax.tree.map(np.shape, dict(loaded))
  if want != got:
    raise ValueError(f'The pretrained {name} weights do not fit the model\'s embedding: the model '
                     f'has {want}, the weights {got}.')
  return {**params, 'embedding': jax.tree.map(
      lambda like, w: np.asarray(w, np.asarray(like).dtype), dict(params['embedding']), loaded)}
