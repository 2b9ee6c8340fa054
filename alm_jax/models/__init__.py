"""Mixer models, chosen by `config.model.name`."""

import ml_collections

from alm_jax.models.alm import AiLiveMixer


def build_model(config):
  """The mixer module named by `config.model.name` ('alm' or 'dmc').

  The module computes in `config.train.compute_dtype` (float32 if absent);
  parameters are always float32.
  """
  model_config = ml_collections.ConfigDict(config.model)
  model_config.unlock()  # the copy of a locked config (main.py's --config flag) is locked too
  model_config.dtype = config.get('train', {}).get('compute_dtype', 'float32')
  frozen = ml_collections.FrozenConfigDict(model_config)
  name = frozen.name
  if name == 'alm':
    return AiLiveMixer(frozen)
  if name == 'dmc':
    from alm_jax.models.dmc import DMC  # pylint: disable=g-import-not-at-top
    return DMC(frozen)
  raise ValueError(f"Unknown config.model.name {name!r}: use 'alm' or 'dmc'.")
