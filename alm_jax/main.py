r"""Trains or evaluates a mixer.

    python -m alm_jax.main --config=configs/mr.py --workdir=/tmp/alm_mr
    python -m alm_jax.main --config=configs/quickstart.py --workdir=/tmp/qs \
        --config.train.batch_size=8
    python -m alm_jax.main --config=configs/mr.py --workdir=/tmp/alm_mr --mode=eval

`--mode=train` resumes from the latest checkpoint in the workdir (see
`alm_jax.checkpoints` for the resume order); `--mode=eval` evaluates the latest
checkpoint on the validation split.

Multi-process runs (TPU pods, GPU clusters, several CPU processes):
`jax.distributed.initialize()` is called when `--multiprocess` or
`--coordinator_address` is given, or when the environment says the job has
several processes: JAX_COORDINATOR_ADDRESS is set, SLURM runs more than one
task (SLURM_NTASKS > 1), Open MPI more than one rank (OMPI_COMM_WORLD_SIZE > 1),
or a Cloud TPU slice has several hosts (TPU_WORKER_HOSTNAMES lists more than
one). The coordinator address, process count and process index come from
--coordinator_address / --num_processes / --process_id, else from
JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID, else from JAX's
cluster auto-detection. On a single machine none of these is set and JAX runs
as one process over all local devices. Every process runs the same command;
each reads its own shard of the data, process 0 alone writes logs and
config.json, and all take part in checkpoint saves.

With several processes, process 0 alone prepares the dataset (tfds build) and
the RIR bank while the others wait at a barrier, then all read them; after
training or evaluation all processes meet at a second barrier before exiting,
so none tears down the job while another is still writing.

--workdir may be a local folder or a bucket URL (gs://bucket/run): config.json,
checkpoints and TensorBoard events are written through etils.epath / TF's file
systems (see alm_jax.paths).
"""

import os
import sys

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from alm_jax import allocator
from alm_jax import cli
from alm_jax import config_checks
from alm_jax import outputs

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file (configs/*.py).', lock_config=True)
flags.DEFINE_string('workdir', None, 'Folder (or gs:// URL) for config.json, checkpoints and '
                    'TensorBoard events.')
flags.DEFINE_enum('mode', 'train', ['train', 'eval'], 'train (resumes if possible) or eval.')
flags.DEFINE_bool('multiprocess', False,
                  'Call jax.distributed.initialize() (auto-detected for SLURM, Open MPI, TPU pods and '
                  'JAX_COORDINATOR_ADDRESS).')
flags.DEFINE_string('coordinator_address', None, 'host:port of process 0 (multi-process only).')
flags.DEFINE_integer('num_processes', None, 'Number of processes (multi-process only).')
flags.DEFINE_integer('process_id', None, 'This process\'s index (multi-process only).')


def multiprocess_requested(environ=None) -> bool:
  """Whether this process is one of several (see the module doc for the signals)."""
  env = os.environ if environ is None else environ

  def more_than_one(key):
    try:
      return int(env.get(key, '1')) > 1
    except ValueError:
      return False

  tpu_hosts = [h for h in env.get('TPU_WORKER_HOSTNAMES', '').split(',') if h]
  return bool(env.get('JAX_COORDINATOR_ADDRESS') or more_than_one('SLURM_NTASKS')
              or more_than_one('OMPI_COMM_WORLD_SIZE') or len(tpu_hosts) > 1)


def _initialize_distributed():
  import jax  # pylint: disable=g-import-not-at-top
  kwargs = {}
  if FLAGS.coordinator_address:
    kwargs['coordinator_address'] = FLAGS.coordinator_address
  # Flags first, then the environment; whatever is unset, JAX detects from the
  # cluster (SLURM, Open MPI, Cloud TPU, ...).
  for key, flag in (('num_processes', FLAGS.num_processes), ('process_id', FLAGS.process_id)):
    value = flag if flag is not None else os.environ.get(f'JAX_{key.upper()}')
    if value is not None:
      kwargs[key] = int(value)
  jax.distributed.initialize(**kwargs)
  logging.info('Process %d of %d', jax.process_index(), jax.process_count())


def prepare_data_once(config, workdir):
  """Builds the dataset and RIR bank on process 0 only; the other processes wait for it.

  Without this every process would generate the same tfds folder at once. One
  process: nothing to do, the pipeline prepares what it needs on first use.
  Raises RuntimeError on processes 1.. when process 0 failed (its own error is
  raised there), rather than leaving them blocked at the barrier.
  """
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_count() == 1:
    return
  import numpy as np  # pylint: disable=g-import-not-at-top
  from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
  from alm_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  error = None
  if jax.process_index() == 0:
    try:
      pipeline.prepare(config, workdir)
    except Exception as e:  # pylint: disable=broad-except  (re-raised below, after the barrier)
      error = e
  # The barrier: a collective every process must join, so processes 1.. wait
  # here until process 0 is done; it also tells them whether it succeeded.
  failed = int(multihost_utils.broadcast_one_to_all(np.int32(error is not None)))
  if error is not None:
    raise error
  if failed:
    raise RuntimeError('Process 0 failed to prepare the dataset or the RIR bank (see its log); '
                       'this process stops too.')


def _barrier(name: str):
  """Waits until every process reaches the barrier `name` (no-op with one process)."""
  import jax  # pylint: disable=g-import-not-at-top
  if jax.process_count() > 1:
    from jax.experimental import multihost_utils  # pylint: disable=g-import-not-at-top
    multihost_utils.sync_global_devices(name)


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if FLAGS.config is None or FLAGS.workdir is None:
    raise app.UsageError('Give --config=configs/<name>.py and --workdir=<folder>.')
  # Before JAX's and the input pipeline's threads start: XLA's step temporaries and the batches
  # are reused from malloc's heap instead of mapped and zero-filled anew every step
  # (alm_jax.allocator; ALM_JAX_MALLOC_TUNING=0 turns it off).
  allocator.tune_for_training()
  quiet = cli.quiet_console()
  try:  # every value in range before any work (a bad override names its key)
    config_checks.check(FLAGS.config)
    outputs.check_workdir(FLAGS.workdir)  # under a file, in /proc, read-only: one line, no work
  except (config_checks.ConfigError, outputs.OutputError) as e:
    raise SystemExit(f'error: {e}') from e

  # TF only feeds the input pipeline: keep it off the accelerators JAX owns.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')

  if FLAGS.multiprocess or FLAGS.coordinator_address or multiprocess_requested():
    _initialize_distributed()

  import jax  # pylint: disable=g-import-not-at-top
  from alm_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from alm_jax import train  # pylint: disable=g-import-not-at-top
  from alm_jax import validation  # pylint: disable=g-import-not-at-top
  logging.info('JAX devices: %s', jax.devices())
  from alm_jax.data import datasets  # pylint: disable=g-import-not-at-top
  if quiet:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
    tfds.disable_progress_bar()  # the dataset build logs one line of its own (data/pipeline.py)
  config = FLAGS.config
  # A full disk: the checkpoint library's threads log a traceback per array; one error: line instead.
  disk_log = outputs.DiskFullLogFilter().install()
  try:
    prepare_data_once(config, FLAGS.workdir)
    if FLAGS.mode == 'train':
      train.train_and_evaluate(config, FLAGS.workdir)
  # Bad input the user fixes (a missing or broken dataset such as MedleyDB, a diverged run, a
  # damaged or mismatched checkpoint): the message, not a traceback.
  except (train.NonFiniteLossError, *datasets.USER_ERRORS, checkpoints.CheckpointError) as e:
    raise SystemExit(f'error: {e}') from e
  except train.TrainingInterrupted as e:  # Ctrl-C: one line, not a traceback
    print(e, file=sys.stderr)
    raise SystemExit(130) from None
  except KeyboardInterrupt:
    print('stopped before training began; rerun the same command to go on', file=sys.stderr)
    raise SystemExit(130) from None
  except Exception as e:  # pylint: disable=broad-except  (a full disk: one line; others re-raised)
    full = outputs.disk_full(e) or disk_log.seen
    if full is None:
      raise
    raise SystemExit(
        f'error: {outputs.disk_full_message(full, FLAGS.workdir, name_file=False)}') from e
  if disk_log.seen is not None:  # a background checkpoint write failed, training went on
    raise SystemExit(
        f'error: {outputs.disk_full_message(disk_log.seen, FLAGS.workdir, name_file=False)}')
  if FLAGS.mode != 'train':
    try:
      results = validation.evaluate_checkpoint(config, FLAGS.workdir)
    except FileNotFoundError as e:  # no checkpoint yet, or a damaged one: not a crash
      raise SystemExit(f'error: {e}') from e
    if jax.process_index() == 0:
      print('validation at step {step}: '.format(**results) + ', '.join(
          f'{k}={v:.5g}' for k, v in sorted(results.items()) if k != 'step'))
  _barrier('alm_jax:end')


if __name__ == '__main__':
  flags.mark_flags_as_required(['config', 'workdir'])
  # A misspelled --config.<key> override: one line with the closest key, not the parser's traceback.
  _problem = config_checks.override_problem(sys.argv[1:])
  if _problem:
    sys.exit(f'error: {_problem}')
  app.run(main)
