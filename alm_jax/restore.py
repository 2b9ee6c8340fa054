"""What `--checkpoint` names, resolved once: a trained mixer ready to run (`LoadedMixer`).

`--checkpoint` takes a training workdir (its newest step), one step directory
WORKDIR/checkpoints/<step>, 'pretrained:NAME' (a mixer shipped in the package,
`alm_jax.pretrained`) or, for a mixer without trained parameters, its config
file (configs/dugan.py). This module turns any of them into the saved config,
the abstract parameter tree of its model and then the parameters, read by
`checkpoints.load_params_from_path` (orbax I/O that knows no names), and builds
the mixer once: `load_mixer` is what every entry point (mix, export, evaluate,
live) calls, and what it hands down.
"""

import os
import runpy

from absl import flags

from alm_jax import checkpoints
from alm_jax import models
from alm_jax import pretrained
from alm_jax.models import protocol

LoadedMixer = protocol.LoadedMixer


def resolve(path):
  """A --checkpoint value other than a config file -> the local path or URL of a workdir or step.

  Raises:
    CheckpointError: 'pretrained:NAME' that is not installed (the message lists those that are).
  """
  if pretrained.is_name(path):
    try:
      return pretrained.workdir(path)
    except FileNotFoundError as e:
      raise checkpoints.CheckpointError(str(e)) from e
  return path


def restore_params(path, config=None):
  """Parameters of a trained model, for inference, export and evaluation.

  Args:
    path: a workdir (its latest checkpoint is used), a step directory
      WORKDIR/checkpoints/<step> (local or a URL such as gs://..., str or path
      object), 'pretrained:NAME', or the config file of a mixer without
      trained parameters.
    config: optional config to check against: its `config.model` must equal the
      saved run's.
  Returns:
    (config, params, step): the saved run's full config (from WORKDIR/config.json),
    the parameters (on the first local device) and the checkpoint's step; a
    config file gives (its config, {}, 0).
  Raises:
    CheckpointError (a FileNotFoundError): no config.json or no checkpoint at
      `path`, or either is damaged.
    ConfigMismatchError (a ValueError): `config` or the saved parameters do not match
      the saved model.
  """
  if _is_config_file(path):
    return load_mixer(path).config, {}, 0
  location = resolve(path)
  workdir, _ = checkpoints.locate(location)
  checkpoints.require_checkpoint_dir(location, workdir)
  saved_config = checkpoints.load_config(workdir)
  if config is not None:
    checkpoints.check_model_matches(saved_config, config, workdir)
  params, step = checkpoints.load_params_from_path(location, models.abstract_params(saved_config))
  return saved_config, params, step


def load_mixer(path, config=None) -> protocol.LoadedMixer:
  """The mixer `--checkpoint=path` names, built once, with its parameters (see `restore_params`).

  Raises:
    CheckpointError: as `restore_params`; also a config file whose mixer has
      trained parameters (give its workdir instead).
  """
  if _is_config_file(path):
    config, params, step = _run_config_file(path), {}, 0
  else:
    config, params, step = restore_params(path, config)
  loaded = models.load(config, params, step=step, source=str(path))
  if _is_config_file(path) and loaded.capabilities.trainable:
    raise checkpoints.CheckpointError(
        f'{path} describes a mixer with trained parameters: give the workdir it was trained in '
        '(python -m alm_jax.main --config=... --workdir=...), not its config file.')
  return loaded


def _is_config_file(path) -> bool:
  """A mixer without trained parameters is given by its config file (configs/dugan.py)."""
  return str(path).endswith('.py')


def _run_config_file(path):
  """The config of a config file's get_config()."""
  if not os.path.isfile(path):
    raise checkpoints.CheckpointError(f'No config file at {path}.')
  try:
    return runpy.run_path(os.fspath(path))['get_config']()
  except Exception as e:  # pylint: disable=broad-except  (whatever a broken config raises)
    raise checkpoints.CheckpointError(
        f'Cannot load the config file {path}: {type(e).__name__}: {e}') from e


def define_checkpoint_flag(flag_values):
  """`--checkpoint`, as every command that reads a trained mixer takes it (absl FlagValues)."""
  flags.DEFINE_string('checkpoint', None,
                      'Training workdir (latest step), one step directory, or a mixer shipped in '
                      'the package: ' + pretrained.listing().replace('\n', '; '),
                      required=True, flag_values=flag_values)
