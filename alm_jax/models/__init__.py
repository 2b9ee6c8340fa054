"""Mixer models, chosen by `config.model.name` (one module each), and their parameter trees.

`init_params` and `abstract_params` give a model's fresh parameters and their
shapes; `without_init_only` clears the settings that only matter for a fresh
start (pretrained weights), so that checkpoints, training and inference all
build the same model from a config.
"""

import functools
import json
import importlib
import pkgutil

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from alm_jax import embeddings
from alm_jax import frames
from alm_jax import stereo
from alm_jax.models import protocol

# Model settings that only affect a fresh initialisation, not the parameter layout.
INIT_ONLY_KEYS = ('embedding.weights',)


def _model_config(config) -> ml_collections.FrozenConfigDict:
  """`config.model` frozen, with `dtype` = config.train.compute_dtype (float32 if absent)."""
  model_config = ml_collections.ConfigDict(config.model)
  model_config.unlock()  # the copy of a locked config (main.py's --config flag) is locked too
  model_config.dtype = config.get('train', {}).get('compute_dtype', 'float32')
  return ml_collections.FrozenConfigDict(model_config)


def available() -> list[str]:
  """Names `config.model.name` may take: the modules here that define `build_mixer`."""
  return sorted(info.name for info in pkgutil.iter_modules(__path__)
                if hasattr(importlib.import_module(f'{__name__}.{info.name}'), 'build_mixer'))


def _mixer_module(name: str):
  """The module `alm_jax.models.<name>`: a mixer is one file, found by its name."""
  known = {info.name for info in pkgutil.iter_modules(__path__)}
  module = importlib.import_module(f'{__name__}.{name}') if name in known else None
  if module is None or not hasattr(module, 'build_mixer'):
    raise ValueError(f'Unknown config.model.name {name!r}: use one of {available()} (the mixer '
                     'modules in alm_jax/models/, each defining build_mixer).')
  return module


def build_model(config) -> nn.Module:
  """The trainable flax module of `config.model.name` (its `build_module`).

  The module computes in `config.train.compute_dtype` (float32 if absent);
  parameters are always float32.
  Raises:
    ValueError: a mixer without trainable parameters (a console automixer).
  """
  frozen = _model_config(config)
  module = _mixer_module(frozen.name)
  if not hasattr(module, 'build_module'):
    raise ValueError(f"config.model.name={frozen.name!r} has no trainable parameters: there is "
                     'nothing to train. Use it directly wherever a checkpoint is taken, e.g. '
                     f'`python -m alm_jax.mix --checkpoint=configs/{frozen.name}.py ...`.')
  _check_outputs(frozen, module)
  return module.build_module(frozen)


def build_mixer(config) -> protocol.Mixer:
  """The `protocol.Mixer` of `config.model.name`: what inference, export and evaluation drive."""
  frozen = _model_config(config)
  module = _mixer_module(frozen.name)
  _check_outputs(frozen, module)
  return module.build_mixer(frozen)


def _check_outputs(frozen, module) -> None:
  """Refuses pans (config.model.outputs) for a mixer that sets gains only, rather than ignore them."""
  if stereo.has_pans(frozen) and not module.build_mixer(frozen).capabilities.stereo:
    raise ValueError(f"config.model.outputs = {tuple(frozen.outputs)}, but config.model.name="
                     f"{frozen.name!r} sets gains only: use config.model.outputs = ('gain',) "
                     "(its mix is placed at the centre wherever a stereo mix is made).")


def capabilities(config) -> protocol.Capabilities:
  """What the mixer of `config` promises (`build_mixer(config).capabilities`)."""
  return build_mixer(config).capabilities


def load(config, params, *, step: int = 0, source: str = '') -> protocol.LoadedMixer:
  """The mixer of `config` with its parameters: what an entry point builds once and hands down."""
  protocol.check_params_convention(params)
  return protocol.LoadedMixer(build_mixer(config), params, config, int(step), str(source))


def compiler_options(config) -> dict | None:
  """`compiler_options` for `jax.jit` of any program running `config.model` (None: XLA's defaults).

  On the CPU backend, the options its embedding asks for
  (`embeddings.cpu_compiler_options`); nothing elsewhere, and nothing for a
  mixer without an embedding (the console automixers).
  """
  embedding = config.model.get('embedding', None)
  if (embedding is None or jax.default_backend() != 'cpu' or
      not hasattr(_mixer_module(config.model.name), 'build_module')):  # no network: no embedding
    return None
  return embeddings.cpu_compiler_options(embedding) or None


def without_init_only(config):
  """A copy of `config` with the init-only model settings (INIT_ONLY_KEYS) cleared.

  The model is built from it, so that e.g. a run started from pretrained
  weights compiles to the same program as one started without.
  """
  config = ml_collections.ConfigDict(config.to_dict()) if isinstance(
      config, ml_collections.FrozenConfigDict) else config.copy_and_resolve_references()
  config.model.embedding.weights = ''
  return config


def init_params(rng, model: nn.Module):
  """Fresh parameters of `model` (traceable).

  The model is run on the smallest input it accepts, one F1 frame of every
  channel ([1, max_channels, f1]); parameter shapes do not depend on the length.
  """
  spec = frames.FrameSpec.from_config(model.config)
  c = int(model.config.max_channels)
  audio, mask = jnp.zeros((1, c, spec.f1), jnp.float32), jnp.ones((1, c), bool)
  return model.init({'params': rng, 'dropout': rng}, audio, mask, train=False)['params']


def abstract_params(config):
  """Parameter shapes and dtypes (jax.ShapeDtypeStruct tree) of `build_model(config)`, not run.

  Cached by the model settings: tracing the model's init takes seconds, and
  every restore and export asks for the same tree.
  """
  config = without_init_only(config)
  dtype = config.get('train', {}).get('compute_dtype', 'float32')
  return _abstract_params(config.model.to_json_best_effort(sort_keys=True), dtype)


@functools.lru_cache(maxsize=16)
def _abstract_params(model_json: str, dtype: str):
  config = ml_collections.ConfigDict({'model': json.loads(model_json),
                                      'train': {'compute_dtype': dtype}})
  model = build_model(config)
  return jax.eval_shape(functools.partial(init_params, model=model), jax.random.key(0))
