"""Metric writers: training and validation scalars to TensorBoard event files and the console.

    writer = writers.MetricWriter(workdir, enabled=jax.process_index() == 0)
    writer.write(step, {'train/loss': 0.5})
    writer.close()

Written with TF's core summary ops and the scalar plugin's metadata, so the
`tensorboard` package is needed only to view the files, not to write them. TF is
imported when a writer is enabled, so processes that do not write never load it.
"""

import os

from absl import logging


class MetricWriter:
  """Scalars to TensorBoard event files and the console; a no-op when not enabled (process > 0)."""

  def __init__(self, logdir, enabled: bool = True):
    """logdir: a local folder or a URL (gs://...: TF's file systems write it directly)."""
    self._writer = None
    if enabled:
      import tensorflow as tf  # pylint: disable=g-import-not-at-top
      from tensorflow.core.framework import summary_pb2  # pylint: disable=g-import-not-at-top
      self._tf = tf
      self._metadata = summary_pb2.SummaryMetadata(
          plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name='scalars'),
          data_class=summary_pb2.DATA_CLASS_SCALAR).SerializeToString()
      self._writer = tf.summary.create_file_writer(os.fspath(logdir))

  def write(self, step: int, scalars: dict[str, float]):
    if self._writer is None:
      return
    logging.info('step %d: %s', step, ', '.join(f'{k}={v:.5g}' for k, v in sorted(scalars.items())))
    tf = self._tf
    with self._writer.as_default():
      for k, v in scalars.items():
        tf.summary.write(k, tf.constant(v, tf.float32), step=step, metadata=self._metadata)
    self._writer.flush()

  def close(self):
    if self._writer is not None:
      self._writer.close()
