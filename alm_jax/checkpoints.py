"""Checkpoints of a training workdir, with orbax.

Workdir layout:

    WORKDIR/config.json                 the full config of the run (written at start)
    WORKDIR/checkpoints/<step>/params   parameters after <step> optimiser updates
    WORKDIR/checkpoints/<step>/opt_state

Saves are asynchronous (the device-to-host copy happens in `save_state`, the
file writes in the background) and only the last `config.train.keep_checkpoints`
are kept. A step directory appears only once completely written, so a crash
mid-save leaves the previous checkpoint as the latest.

Resume order of `alm_jax.train.train_and_evaluate`:
  1. the latest checkpoint in WORKDIR/checkpoints: parameters, optimiser state
     and step; the step is also the input pipeline's position, since the
     pipeline is deterministic in (seed, step);
  2. else a fresh initialisation with the pretrained embedding weights of
     config.model.embedding.weights, when set;
  3. else a fresh initialisation from config.seed.

A restart whose `config.model` differs from the saved run's (other than
`embedding.weights`, which only matters for a fresh start) is refused with an
error, rather than silently training a different model from incompatible
parameters. Other sections (train, data, loss) may change between restarts.

For inference, export and evaluation, `restore_params(path)` returns
(config, params, step) from a workdir (latest step) or a step directory.

Paths: the workdir may be a local folder or a bucket URL (gs://...); every path
here is an `etils.epath.Path` (alm_jax.paths), so config.json and orbax's
checkpoints go to either.
"""

import json

from absl import logging
from etils import epath
import jax
import ml_collections
import orbax.checkpoint as ocp

from alm_jax import models
from alm_jax import paths

CONFIG_FILE = 'config.json'
CHECKPOINT_SUBDIR = 'checkpoints'
ITEMS = ('params', 'opt_state')  # one orbax item each, so inference restores params alone


def checkpoint_dir(workdir) -> epath.Path:
  """WORKDIR/checkpoints (workdir: a local path or a URL, as str or path object)."""
  return paths.as_path(workdir) / CHECKPOINT_SUBDIR


def config_path(workdir) -> epath.Path:
  return paths.as_path(workdir) / CONFIG_FILE


def load_config(workdir) -> ml_collections.ConfigDict:
  """WORKDIR/config.json as a ConfigDict (lists where the config had tuples)."""
  path = config_path(workdir)
  if not path.exists():
    raise FileNotFoundError(f'{path} not found: {workdir} is not a workdir written by '
                            '`python -m alm_jax.main` (it writes config.json at start).')
  return ml_collections.ConfigDict(json.loads(path.read_text()))


def _plain(config_section) -> dict:
  """A config section as plain JSON values, so tuples and lists compare equal."""
  if isinstance(config_section, ml_collections.ConfigDict):
    return json.loads(config_section.to_json_best_effort())
  return json.loads(json.dumps(config_section))


def _flatten(d, prefix=''):
  out = {}
  for k, v in d.items():
    key = f'{prefix}{k}'
    if isinstance(v, dict):
      out.update(_flatten(v, key + '.'))
    else:
      out[key] = v
  return out


def model_differences(saved_model, model) -> list[str]:
  """'key: saved -> new' for every config.model entry that differs (init-only keys ignored)."""
  a, b = _flatten(_plain(saved_model)), _flatten(_plain(model))
  diffs = []
  for key in sorted(set(a) | set(b)):
    if key in models.INIT_ONLY_KEYS:
      continue
    if a.get(key, '<absent>') != b.get(key, '<absent>'):
      diffs.append(f'model.{key}: {a.get(key, "<absent>")!r} -> {b.get(key, "<absent>")!r}')
  return diffs


def check_model_matches(saved_config, config, where: str):
  """Raises ValueError when `config.model` differs from the saved run's."""
  diffs = model_differences(saved_config['model'], config.model)
  if diffs:
    raise ValueError(
        f'The config does not match the model saved in {where}: ' + '; '.join(diffs) +
        '. Use the saved config (config.json there), or a fresh --workdir to train a different model.')


def open_manager(workdir, config, read_only: bool = False) -> ocp.CheckpointManager:
  """The CheckpointManager of WORKDIR/checkpoints; for training, also checks and writes config.json.

  Raises:
    ValueError: checkpoints exist for a different `config.model`.
  """
  ckpt_dir = checkpoint_dir(workdir)
  options = ocp.CheckpointManagerOptions(
      max_to_keep=int(config.train.get('keep_checkpoints', 3)) if config is not None else None,
      enable_async_checkpointing=not read_only, read_only=read_only, create=not read_only)
  manager = ocp.CheckpointManager(
      ckpt_dir, options=options,
      item_handlers={name: ocp.StandardCheckpointHandler() for name in ITEMS})
  if read_only:
    return manager
  if manager.latest_step() is not None and config_path(workdir).exists():
    try:
      check_model_matches(load_config(workdir), config, workdir)
    except ValueError:
      manager.close()
      raise
  if jax.process_index() == 0:
    # Written aside, then renamed: a crash mid-write never leaves a truncated config.json.
    final = config_path(workdir)
    final.parent.mkdir(parents=True, exist_ok=True)
    tmp = final.parent / (CONFIG_FILE + '.tmp')
    tmp.write_text(config.to_json_best_effort(indent=2))
    tmp.replace(final)
  return manager


def save_state(manager: ocp.CheckpointManager, step: int, state):
  """Starts an asynchronous save of `state.params` and `state.opt_state` as checkpoint `step`."""
  manager.save(step, args=ocp.args.Composite(
      params=ocp.args.StandardSave(state.params),
      opt_state=ocp.args.StandardSave(state.opt_state)), force=True)


def _abstract_with(tree, shardings):
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def _check_layout(manager, step: int, item: str, abstract, where: str):
  """Raises ValueError naming the differing arrays when checkpoint `step` does not fit `abstract`."""
  saved = manager.item_metadata(step)[item]
  saved_tree = getattr(saved, 'tree', saved)
  flat_saved = {jax.tree_util.keystr(p): getattr(v, 'shape', None)
                for p, v in jax.tree_util.tree_flatten_with_path(saved_tree)[0] if v is not None}
  flat_want = {jax.tree_util.keystr(p): tuple(v.shape)
               for p, v in jax.tree_util.tree_flatten_with_path(abstract)[0]}
  problems = [f'{k} missing from the checkpoint' for k in sorted(set(flat_want) - set(flat_saved))]
  problems += [f'{k} not in the model' for k in sorted(set(flat_saved) - set(flat_want))]
  problems += [f'{k} has shape {tuple(flat_saved[k])} in the checkpoint, {flat_want[k]} in the model'
               for k in sorted(set(flat_saved) & set(flat_want))
               if tuple(flat_saved[k]) != flat_want[k]]
  if problems:
    shown = '; '.join(problems[:5]) + (f' (and {len(problems) - 5} more)' if len(problems) > 5 else '')
    raise ValueError(f'Checkpoint {where} does not match the model of the config: {shown}. '
                     'Restore it with the config it was trained with (its workdir\'s config.json).')


def restore_state(manager: ocp.CheckpointManager, abstract_state, state_sharding, step: int):
  """The TrainState of checkpoint `step`, placed with `state_sharding`."""
  where = epath.Path(manager.directory) / str(step)
  _check_layout(manager, step, 'params', abstract_state.params, where)
  restored = manager.restore(step, args=ocp.args.Composite(
      params=ocp.args.StandardRestore(_abstract_with(abstract_state.params, state_sharding.params)),
      opt_state=ocp.args.StandardRestore(
          _abstract_with(abstract_state.opt_state, state_sharding.opt_state))))
  step_array = jax.device_put(jax.numpy.asarray(step, jax.numpy.int32), state_sharding.step)
  return abstract_state.replace(step=step_array, params=restored['params'],
                                opt_state=restored['opt_state'])


def _resolve(path):
  """A workdir or one of its checkpoints/<step> dirs -> (workdir, step or None) as epath.Path."""
  path = paths.as_path(path)
  name, parent = path.name, path.parent
  if name.isdigit() and parent.name == CHECKPOINT_SUBDIR:
    return parent.parent, int(name)
  if name == CHECKPOINT_SUBDIR:
    return parent, None
  return path, None


def restore_params(path, config=None):
  """Parameters of a trained model, for inference, export and evaluation.

  Args:
    path: a workdir (its latest checkpoint is used) or a step directory
      WORKDIR/checkpoints/<step>; local or a URL (gs://...), str or path object.
    config: optional config to check against: its `config.model` must equal the
      saved run's.
  Returns:
    (config, params, step): the saved run's full config (from WORKDIR/config.json),
    the parameters (on the first local device) and the checkpoint's step.
  Raises:
    FileNotFoundError: no config.json or no checkpoint at `path`.
    ValueError: `config` or the saved parameters do not match the saved model.
  """
  workdir, _ = _resolve(path)
  _require_checkpoint_dir(path, workdir)
  saved_config = load_config(workdir)
  if config is not None:
    check_model_matches(saved_config, config, workdir)
  params, step = load_params(path, models.abstract_params(saved_config))
  return saved_config, params, step


def _require_checkpoint_dir(path, workdir):
  if not checkpoint_dir(workdir).is_dir():
    raise FileNotFoundError(f'No checkpoint at {path}: expected a training workdir (with '
                            f'{CHECKPOINT_SUBDIR}/ and {CONFIG_FILE}) or one of its '
                            f'{CHECKPOINT_SUBDIR}/<step> directories.')


def load_params(path, abstract):
  """The `params` item of a checkpoint, restored into the layout of `abstract`.

  Args:
    path: a workdir (latest step) or a step directory WORKDIR/checkpoints/<step>.
    abstract: the expected parameter tree (jax.ShapeDtypeStruct leaves), e.g.
      `alm_jax.models.abstract_params(config)`.
  Returns:
    (params, step), the parameters on the first local device.
  Raises:
    FileNotFoundError: no such checkpoint.
    ValueError: the saved parameters do not fit `abstract`.
  """
  workdir, step = _resolve(path)
  _require_checkpoint_dir(path, workdir)
  manager = open_manager(workdir, None, read_only=True)
  try:
    steps = manager.all_steps()
    if step is None:
      step = manager.latest_step()
    if step is None or step not in steps:
      raise FileNotFoundError(
          f'No {"" if step is None else f"step {step} "}checkpoint in {checkpoint_dir(workdir)} '
          f'(available steps: {sorted(steps) or "none"}); train first with `python -m alm_jax.main`.')
    where = checkpoint_dir(workdir) / str(step)
    _check_layout(manager, step, 'params', abstract, where)
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    restored = manager.restore(step, args=ocp.args.Composite(params=ocp.args.StandardRestore(
        _abstract_with(abstract, jax.tree.map(lambda _: device, abstract)))))
  finally:
    manager.close()
  logging.info('Restored parameters of step %d from %s', step, workdir)
  return restored['params'], step


def define_checkpoint_flag(flag_values):
  """`--checkpoint`, as every command that reads a trained mixer takes it (absl FlagValues)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  flags.DEFINE_string('checkpoint', None, 'Training workdir (latest step) or one step directory.',
                      required=True, flag_values=flag_values)
