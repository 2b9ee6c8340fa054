r"""Prepares a config's dataset and RIR bank once, before a multi-process launch.

    python launch/prepare_data.py --config=configs/mr.py --workdir=/shared/runs/mr \
        --config.data.data_dir=/shared/tfds --config.data.manual_dir=/shared/MedleyDB

Takes the same --config / --config.* flags as `python -m alm_jax.main`. Run it
on one host: it generates (synthetic_live) or builds from the manual folder
(medleydb) the tfds dataset in config.data.data_dir and the bleed simulation's
RIR bank in its cache folder (config.data.bleed.cache_dir, or WORKDIR/rir_bank;
either may be a gs:// URL), then draws one training batch as a check.
`python -m alm_jax.main` does the same on process 0 of a multi-process job while
the others wait; running this first keeps the build (MedleyDB: minutes) and its
errors out of the job, and lets MANUAL_DIR live on one host only.
"""

from absl import app
from absl import flags
from ml_collections import config_flags

FLAGS = flags.FLAGS
config_flags.DEFINE_config_file('config', None, 'Config file (configs/*.py).')
flags.DEFINE_string('workdir', None, 'The run\'s workdir, local or gs:// (where the RIR bank goes '
                    'by default).')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  if FLAGS.config is None:
    raise app.UsageError('Give --config=configs/<name>.py.')
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  from alm_jax import optimizer  # pylint: disable=g-import-not-at-top
  from alm_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  config = FLAGS.config
  builder = pipeline.prepare(config, FLAGS.workdir)
  sizes = {name: split.num_examples for name, split in builder.info.splits.items()}
  print(f'{builder.info.full_name} prepared in {builder.data_dir}: {sizes} songs')
  spe = optimizer.steps_per_epoch(config.train, sizes.get('train', 0))
  iterator = pipeline.make_train_iterator(config, steps_per_epoch=spe, workdir=FLAGS.workdir)
  try:
    batch = next(iterator)
  finally:
    if hasattr(iterator, 'close'):
      iterator.close()
  print(f'first training batch: audio {batch["audio"].shape}; RIR bank ready')


if __name__ == '__main__':
  app.run(main)
