"""Checkpoints of a training workdir, with orbax: save, resume, restore, and damage checks.

WORKDIR/config.json holds the run's config and WORKDIR/checkpoints/<step> the
state after <step> updates with a checksum of every array, saved asynchronously.
Training resumes from the newest intact step (`restore_latest`); inference reads
one step's parameters with `load_params_from_path(path, abstract_params)`, the
caller giving the abstract tree (maxtext's shape). This module knows paths, not
names: `alm_jax.restore` resolves `--checkpoint` ('pretrained:NAME', a config
file) above it. Damage ends in one `CheckpointError` naming the step and the fix
(docs/checkpoints.md), orbax's and TensorStore's own logging kept quiet meanwhile.
"""

import contextlib
import json
import logging as py_logging

from absl import logging
from etils import epath
import jax
import ml_collections
import orbax.checkpoint as ocp

from alm_jax import config_checks
from alm_jax import integrity
from alm_jax import models
from alm_jax import outputs
from alm_jax import paths

CONFIG_FILE = 'config.json'
CHECKPOINT_SUBDIR = 'checkpoints'
DAMAGED_SUBDIR = 'damaged_checkpoints'  # where training moves damaged steps (never deletes them)
ITEMS = ('params', 'opt_state')  # one orbax item each, so inference restores params alone
CHECKSUMS = 'checksums'  # a JSON item: {item: {array path: checksum}} (alm_jax.integrity)


class CheckpointError(FileNotFoundError):
  """No usable checkpoint at a path (the message names the step or file and the fix).

  A FileNotFoundError, so that every command that reports a missing checkpoint
  reports a damaged or mismatched one the same way.
  """


class DamagedCheckpointError(CheckpointError):
  """A checkpoint step with a missing, unreadable or altered file."""


class ConfigMismatchError(CheckpointError, ValueError):
  """The config's model differs from the one saved in the workdir, or from the saved arrays."""


def checkpoint_dir(workdir) -> epath.Path:
  """WORKDIR/checkpoints (workdir: a local path or a URL, as str or path object)."""
  return paths.as_path(workdir) / CHECKPOINT_SUBDIR


def config_path(workdir) -> epath.Path:
  return paths.as_path(workdir) / CONFIG_FILE


def load_config(workdir) -> ml_collections.ConfigDict:
  """WORKDIR/config.json as a ConfigDict (lists where the config had tuples), its model checked.

  Raises:
    CheckpointError: no config.json; DamagedCheckpointError: it is not JSON, has
      no model section, or holds out-of-range model values (alm_jax.config_checks).
  """
  path = config_path(workdir)
  if not path.exists():
    raise CheckpointError(f'{path} not found: {workdir} is not a workdir written by '
                          '`python -m alm_jax.main` (it writes config.json at start).')
  advice = ('it holds the config the checkpoints were trained with. Restore it from a backup; or, '
            'if you know the training --config, move the damaged file aside (mv '
            f'{path} {path}.damaged) and resume training with that --config, which writes it again.')
  try:
    config = ml_collections.ConfigDict(json.loads(path.read_text()))
    problem = None if isinstance(config.get('model'), ml_collections.ConfigDict) else (
        'no model section')
  except (ValueError, UnicodeDecodeError, AttributeError, TypeError) as e:
    # ValueError covers json.JSONDecodeError; Attribute/TypeError: JSON that is not an object.
    problem = integrity.first_line(e)
  if problem is None:
    problem = ' '.join(config_checks.problems(config, sections=('model',))) or None
  if problem is not None:
    raise DamagedCheckpointError(f'{path} is damaged ({problem}): {advice}')
  return config


def check_model_matches(saved_config, config, where: str):
  """Raises ConfigMismatchError (a ValueError) when `config.model` differs from the saved run's."""
  diffs = config_checks.model_differences(saved_config['model'], config.model,
                                          ignore=models.INIT_ONLY_KEYS)
  if diffs:
    raise ConfigMismatchError(
        f'The config does not match the model saved in {where}: ' + '; '.join(diffs) +
        '. Use the saved config (config.json there), or a fresh --workdir to train a different model.')


def open_manager(workdir, config, read_only: bool = False) -> ocp.CheckpointManager:
  """The CheckpointManager of WORKDIR/checkpoints; for training, also checks and writes config.json.

  Raises:
    ConfigMismatchError: checkpoints exist for a different `config.model`.
    CheckpointError: config.json is damaged.
  """
  ckpt_dir = checkpoint_dir(workdir)
  options = ocp.CheckpointManagerOptions(
      max_to_keep=int(config.train.get('keep_checkpoints', 3)) if config is not None else None,
      enable_async_checkpointing=not read_only, read_only=read_only, create=not read_only)
  handlers = {name: ocp.StandardCheckpointHandler() for name in ITEMS}
  handlers[CHECKSUMS] = ocp.JsonCheckpointHandler()
  manager = ocp.CheckpointManager(ckpt_dir, options=options, item_handlers=handlers)
  if read_only:
    return manager
  if manager.latest_step() is not None and config_path(workdir).exists():
    try:
      check_model_matches(load_config(workdir), config, workdir)
    except (ValueError, CheckpointError):
      manager.close()
      raise
  if jax.process_index() == 0:
    # Written aside, then renamed: a crash mid-write never leaves a truncated config.json.
    final = config_path(workdir)
    final.parent.mkdir(parents=True, exist_ok=True)
    outputs.atomic_write_text(final, config.to_json_best_effort(indent=2))
  return manager


def save_state(manager: ocp.CheckpointManager, step: int, state):
  """Starts an asynchronous save of `state.params` and `state.opt_state` as checkpoint `step`.

  The arrays' checksums are computed first, on the device (one small host sync).
  """
  sums = {item: integrity.tree_checksums(getattr(state, item)) for item in ITEMS}
  manager.save(step, args=ocp.args.Composite(
      params=ocp.args.StandardSave(state.params),
      opt_state=ocp.args.StandardSave(state.opt_state),
      **{CHECKSUMS: ocp.args.JsonSave(sums)}), force=True)


def save_params(workdir, config, step: int, params):
  """Writes a parameters-only checkpoint `step` (with checksums) and config.json into a new `workdir`.

  What a shipped mixer holds (no optimizer state): inference, export, evaluation
  and `train.init_params_from` read it like any step; training cannot resume it.
  Used for mixers made from trained ones without training, e.g. the mean of
  several runs' parameters (tools/average_checkpoints.py).

  Raises:
    CheckpointError: `workdir` already holds checkpoints (never overwritten).
  """
  ckpt_dir = checkpoint_dir(workdir)
  if ckpt_dir.exists() and any(ckpt_dir.iterdir()):
    raise CheckpointError(f'{ckpt_dir} already holds checkpoints: give a new --workdir.')
  options = ocp.CheckpointManagerOptions(enable_async_checkpointing=False, create=True)
  handlers = {'params': ocp.StandardCheckpointHandler(), CHECKSUMS: ocp.JsonCheckpointHandler()}
  manager = ocp.CheckpointManager(ckpt_dir, options=options, item_handlers=handlers)
  try:
    manager.save(step, args=ocp.args.Composite(
        params=ocp.args.StandardSave(params),
        **{CHECKSUMS: ocp.args.JsonSave({'params': integrity.tree_checksums(params)})}))
    manager.wait_until_finished()
  finally:
    manager.close()
  outputs.atomic_write_text(config_path(workdir), config.to_json_best_effort(indent=2))


def _abstract_with(tree, shardings):
  return jax.tree.map(lambda x, s: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=s), tree, shardings)


def _check_layout(saved, abstract, where):
  """Raises ConfigMismatchError naming the arrays where the saved item does not fit `abstract`."""
  problems = integrity.layout_problems(saved, abstract)
  if problems:
    shown = '; '.join(problems[:5]) + (f' (and {len(problems) - 5} more)' if len(problems) > 5 else '')
    raise ConfigMismatchError(
        f'Checkpoint {where} does not match the model of the config: {shown}. Restore it with '
        'the config it was trained with (its workdir\'s config.json).')


# ---- damage checks ---------------------------------------------------------

# Loggers that report a failed read of a damaged step with its whole traceback (orbax logs each
# failed TensorStore read and its asyncio task; 1,900-5,400 lines for one truncated file): while a
# step is read they are kept to CRITICAL, and the failure becomes one CheckpointError instead.
_NOISY_LOGGERS = ('absl', 'orbax', 'asyncio', 'tensorstore', 'jax')


@contextlib.contextmanager
def _quiet_io():
  """Silences orbax, TensorStore and asyncio logging while a checkpoint step is read."""
  # Each logger's own level is put back as it was (NOTSET stays NOTSET, so a logger that
  # inherited its level, absl's included, goes on inheriting it).
  loggers = [py_logging.getLogger(name) for name in _NOISY_LOGGERS]
  levels = [logger.level for logger in loggers]
  try:
    for logger in loggers:
      logger.setLevel(py_logging.CRITICAL)
    yield
  finally:
    for logger, level in zip(loggers, levels):
      logger.setLevel(level)


def _restore_verified(manager, step: int, abstract: dict, shardings: dict) -> dict:
  """Items `abstract` ({item: abstract tree}) of checkpoint `step`, each array read and verified.

  Raises:
    integrity.Damaged: a file is missing, unreadable or altered.
    ConfigMismatchError: the arrays do not fit `abstract` (a different model, not damage).
  """
  step_dir = epath.Path(manager.directory) / str(step)
  sums = integrity.check_files(step_dir, abstract, CHECKSUMS)
  saved = {}
  for item in abstract:  # each item alone: inference needs params, not a readable opt_state
    try:
      with _quiet_io():
        saved[item] = ocp.StandardCheckpointHandler().metadata(step_dir / item)
    except Exception as e:  # pylint: disable=broad-except  (orbax/TensorStore share no error type)
      raise integrity.Damaged(
          f'the array metadata of {item} cannot be read ({integrity.first_line(e)})') from None
  if 'params' in abstract:  # (orbax saves optax's named tuples under other key names)
    _check_layout(saved['params'], abstract['params'], step_dir)
  args = {item: ocp.args.StandardRestore(_abstract_with(tree, shardings[item]))
          for item, tree in abstract.items()}
  try:
    with _quiet_io():
      restored = dict(manager.restore(step, args=ocp.args.Composite(**args)))
      jax.block_until_ready([restored[item] for item in abstract])
  except Exception as e:  # pylint: disable=broad-except  (orbax/TensorStore share no error type)
    # `from None`: the chained asyncio/TensorStore traceback is thousands of lines and says no more.
    raise integrity.Damaged(f'its array files cannot be read ({integrity.first_line(e)})') from None
  if sums is None:
    logging.info('%s has no checksums (saved by an older version): its values are not verified.',
                 step_dir)
    return restored
  for item in abstract:
    bad = integrity.mismatches(sums[item], restored[item])
    if bad:
      raise integrity.Damaged(f'{len(bad)} array(s) of {item} differ from the checksums saved with '
                              f'them (first: {item}{bad[0]}): its files were altered after saving')
  return restored


def restore_state(manager: ocp.CheckpointManager, abstract_state, state_sharding, step: int):
  """The TrainState of checkpoint `step`, placed with `state_sharding`; CheckpointError if damaged."""
  try:
    restored = _restore_verified(manager, step, {i: getattr(abstract_state, i) for i in ITEMS},
                                 {i: getattr(state_sharding, i) for i in ITEMS})
  except integrity.Damaged as e:
    where = epath.Path(manager.directory) / str(step)
    raise DamagedCheckpointError(f'Checkpoint {where} is damaged: {e}.') from e
  step_array = jax.device_put(jax.numpy.asarray(step, jax.numpy.int32), state_sharding.step)
  return abstract_state.replace(step=step_array, params=restored['params'],
                                opt_state=restored['opt_state'])


def restore_latest(manager: ocp.CheckpointManager, workdir, abstract_state, state_sharding):
  """The TrainState of the newest intact checkpoint, or None when there is none.

  A damaged step is moved to WORKDIR/damaged_checkpoints (never deleted), with a
  warning, and the previous one tried.

  Raises:
    CheckpointError: every checkpoint was damaged (all moved aside: the next run
      starts afresh).
  """
  moved = []
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      state = restore_state(manager, abstract_state, state_sharding, step)
    except DamagedCheckpointError as e:
      if jax.process_index() == 0:
        target = integrity.move_aside(checkpoint_dir(workdir) / str(step),
                                      paths.as_path(workdir) / DAMAGED_SUBDIR)
      else:
        target = paths.as_path(workdir) / DAMAGED_SUBDIR / str(step)
      logging.warning('%s Moved it to %s (kept, not deleted); trying the previous step.', e, target)
      moved.append(f'{step} -> {target}')
      continue
    if moved:
      _sync_after_move(manager)
      logging.warning('Resuming from step %d, the newest intact checkpoint in %s.', step,
                      checkpoint_dir(workdir))
    return state
  if moved:
    _sync_after_move(manager)
    raise CheckpointError(
        f'No intact checkpoint in {checkpoint_dir(workdir)}: every step was damaged and moved aside '
        f'({"; ".join(moved)}). Run the same command again to train from the start in this '
        'workdir, or put back copies of the checkpoints from a backup.')
  return None


def _sync_after_move(manager):
  if jax.process_count() > 1:  # the others wait until process 0 has moved the damaged steps
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices('alm_jax:damaged_checkpoints_moved')
  manager.reload()


def locate(path):
  """A workdir or one of its checkpoints/<step> dirs -> (workdir, step or None)."""
  path = paths.as_path(path)
  name, parent = path.name, path.parent
  if name.isdigit() and parent.name == CHECKPOINT_SUBDIR:
    return parent.parent, int(name)
  if name == CHECKPOINT_SUBDIR:
    return parent, None
  return path, None


def require_checkpoint_dir(path, workdir):
  """Raises CheckpointError unless `workdir` (where `path` points) has a checkpoints/ folder."""
  if not checkpoint_dir(workdir).is_dir():
    raise CheckpointError(f'No checkpoint at {path}: expected a training workdir (with '
                          f'{CHECKPOINT_SUBDIR}/ and {CONFIG_FILE}) or one of its '
                          f'{CHECKPOINT_SUBDIR}/<step> directories.')


def load_params_from_path(path, abstract_params):
  """The `params` item of a checkpoint, restored into the layout of `abstract_params` and verified.

  Args:
    path: a workdir (latest step) or a step directory WORKDIR/checkpoints/<step>.
    abstract_params: the expected parameter tree (jax.ShapeDtypeStruct leaves), e.g.
      `alm_jax.models.abstract_params(config)`.
  Returns:
    (params, step), the parameters on the first local device.
  Raises:
    CheckpointError: no such checkpoint, or it is damaged (the message lists the
      intact steps and how to pick one).
    ConfigMismatchError (a ValueError): the saved parameters do not fit `abstract_params`.
  """
  workdir, step = locate(path)
  require_checkpoint_dir(path, workdir)
  ckpt_dir = checkpoint_dir(workdir)
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  want = ({'params': abstract_params}, {'params': jax.tree.map(lambda _: device, abstract_params)})
  with _quiet_io():  # orbax warns that a read-only manager saves nothing: true, and noise here
    manager = open_manager(workdir, None, read_only=True)
  try:
    steps = manager.all_steps()
    if step is None:
      step = manager.latest_step()
    if step is None or step not in steps:
      raise CheckpointError(
          f'No {"" if step is None else f"step {step} "}checkpoint in {ckpt_dir} '
          f'(available steps: {sorted(steps) or "none"}); train first with `python -m alm_jax.main`.')
    try:
      restored = _restore_verified(manager, step, *want)
    except integrity.Damaged as e:
      intact = [s for s in sorted(steps, reverse=True) if s != step and _is_intact(manager, s, want)]
      advice = (f'Intact steps: {", ".join(map(str, intact))}; pick one with '
                f'--checkpoint={ckpt_dir / str(intact[0])}.' if intact else
                f'No other step in {ckpt_dir} is intact: restore it from a backup or train again.')
      raise DamagedCheckpointError(
          f'Checkpoint {ckpt_dir / str(step)} is damaged: {e}; it is not used. {advice}') from e
  finally:
    manager.close()
  logging.info('Restored parameters of step %d from %s', step, workdir)
  return restored['params'], step


def _is_intact(manager, step: int, want) -> bool:
  try:
    _restore_verified(manager, step, *want)
  except (integrity.Damaged, ValueError):
    return False
  return True
