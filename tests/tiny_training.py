"""Tiny training configs and fake data shared by the training tests.

Every test that trains uses `tiny_train_config`: the same tiny model, optimiser
and batch shape, so jit reuses one compiled training step across tests in the
same process (compilation dominates their run time on CPU).
"""

import fcntl
import glob
import os

import numpy as np
import pytest

from conftest import load_config, shrink_model

# Tests that train the tiny ALM-MR share one compiled step when they run in the same
# process; under `pytest -n 2 --dist loadgroup` this mark keeps them on one worker.
SAME_WORKER = pytest.mark.xdist_group('alm_tiny_mr')

SEGMENT_SECONDS = 2.0
CHANNELS = 6  # synthetic_live has 3-6 channels per song
BATCH = 2


def tiny_train_config(name: str, data_dir: str, bank_dir: str):
  """configs/<name>.py with a tiny model on synthetic_live/tiny; one step per epoch."""
  c = shrink_model(load_config(name))
  c.model.max_channels = CHANNELS
  d = c.data
  d.name = 'synthetic_live/tiny'
  d.data_dir = data_dir
  d.segment_seconds = d.eval_segment_seconds = SEGMENT_SECONDS
  d.bleed.cache_dir = bank_dir
  d.bleed.bank_size = 4
  d.bleed.rir_seconds = 0.02
  d.bleed.max_order = 2
  d.bleed.room_max = (6.0, 6.0, 3.0)
  t = c.train
  t.batch_size = BATCH
  t.steps_per_epoch = 1
  t.num_epochs = 4
  t.learning_rate = 1e-2  # large, so that a few steps visibly fit one batch
  t.lr_boundaries_epochs = (1000,)
  t.freeze_embedding_epochs = 1  # the frozen phase runs, and ends
  t.grad_clip_norm = 0.0
  t.log_every_steps = 1
  t.eval_every_steps = 100  # and at the last step
  t.checkpoint_every_steps = 1
  t.keep_checkpoints = 2
  return c


def fake_batch(config, seed: int) -> dict:
  """A batch of the pipeline's interface: noise with moving levels, target = a fixed mix of it."""
  rng = np.random.default_rng(seed)
  b, c = int(config.train.batch_size), int(config.model.max_channels)
  s = int(round(config.data.segment_seconds * 44100))
  hop = 4410
  env = np.repeat(rng.uniform(0.02, 0.3, (b, c, s // hop + 1)), hop, axis=-1)[..., :s]
  audio = (rng.standard_normal((b, c, s)) * env).astype(np.float32)
  mask = np.ones((b, c), bool)
  mask[:, c // 2:] = False  # some padded channels
  audio[~mask] = 0.0
  gains = np.linspace(0.2, 1.5, c)[None, :, None]
  target = (audio * gains).sum(axis=1).astype(np.float32)
  ideal = np.where(mask, np.broadcast_to(gains[..., 0], (b, c)), np.nan).astype(np.float32)
  return {'audio': audio, 'channel_mask': mask, 'target': target,
          'bleed_severity': np.full((b,), -20.0, np.float32), 'ideal_gains': ideal}


class FakeData:
  """make_train_iterator / make_eval_batches stand-ins; `poison` = iterator positions given NaN audio."""

  def __init__(self, same_batch: bool = False, poison=()):
    self.same_batch = same_batch
    self.poison = set(poison)

  def make_train_iterator(self, config, *, start_step=0, process_index=0, process_count=1,
                          workdir=None, steps_per_epoch=None):
    del process_index, process_count, workdir, steps_per_epoch
    step = start_step
    while True:
      batch = fake_batch(config, 0 if self.same_batch else step)
      if step in self.poison:
        batch['audio'][0, 0, :100] = np.nan
      yield batch
      step += 1

  def make_eval_batches(self, config, split, *, process_index=0, process_count=1, workdir=None):
    del split, process_index, process_count, workdir
    batch = fake_batch(config, 10_000)
    batch['example_mask'] = np.arange(len(batch['audio'])) < len(batch['audio']) - 1
    batch['song_id'] = ['a'] * (len(batch['audio']) - 1) + ['']
    return [batch]


def shared_data_dirs(tmp_path_factory):
  """(tfds data_dir, RIR bank dir) with synthetic_live/tiny and the bank prepared.

  Shared by every training test of a session, xdist workers included (their
  common temp folder, with a lock so that one worker builds and the others wait).
  """
  root = tmp_path_factory.getbasetemp()
  if os.environ.get('PYTEST_XDIST_WORKER'):
    root = root.parent
  root = root / 'alm_train_data'
  root.mkdir(parents=True, exist_ok=True)
  dirs = (str(root / 'tfds'), str(root / 'rir_bank'))
  from alm_jax.data import rooms  # pylint: disable=g-import-not-at-top
  from alm_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  with open(root / 'lock', 'w') as lock:
    fcntl.flock(lock, fcntl.LOCK_EX)
    config = tiny_train_config('mr', *dirs)
    pipeline.prepared_builder(config)
    rooms.bank_for_config(config, dirs[1])
  return dirs


def read_scalars(workdir):
  """{tag: {step: value}} from the TensorBoard event files in `workdir`."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  out = {}
  for path in sorted(glob.glob(os.path.join(workdir, 'events.out.tfevents.*'))):
    for event in tf.compat.v1.train.summary_iterator(path):
      for v in event.summary.value:
        out.setdefault(v.tag, {})[event.step] = float(tf.make_ndarray(v.tensor))
  return out
