"""Data-parallel sharding over every device of every process, with `jax.sharding` (no pmap).

One mesh axis, 'data': a batch is split along its first dimension across all
devices, parameters and optimiser state are replicated. Each process reads only
its own slice of the global batch (`batch_size // process_count` examples) and
`global_batch` stitches the slices into one global `jax.Array`; jit then runs
the same program on every device and XLA inserts the gradient all-reduce.

    mesh = make_mesh()                    # all devices, axis 'data'
    state = jax.device_put(state, replicated(mesh))
    batch = global_batch(local_numpy_batch, mesh)
"""

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

DATA_AXIS = 'data'


def make_mesh(devices=None) -> Mesh:
  """A 1-D mesh with axis 'data' over `devices` (default: every device of every process)."""
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  """Sharding of a value copied on every device (parameters, optimiser state, scalars)."""
  return NamedSharding(mesh, PartitionSpec())


def data_sharding(mesh: Mesh) -> NamedSharding:
  """Sharding of a batch: the leading (example) dimension split over the 'data' axis."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_batch_size(global_batch_size: int, mesh: Mesh, process_count: int | None = None):
  """Raises ValueError unless the batch splits evenly over processes and devices."""
  process_count = jax.process_count() if process_count is None else process_count
  n = mesh.devices.size
  if global_batch_size % n or global_batch_size % process_count:
    raise ValueError(
        f'config.train.batch_size={global_batch_size} must be a multiple of the number of devices '
        f'({n}) and of processes ({process_count}): set --config.train.batch_size to a multiple '
        f'of {n}.')


def global_batch(local_batch: dict, mesh: Mesh) -> dict:
  """This process's numpy batch slice -> global `jax.Array`s sharded over 'data'.

  Args:
    local_batch: dict of numpy arrays with leading dimension
      `global_batch_size // process_count`; non-array entries (e.g. 'song_id',
      a list of str) stay on the host and are dropped.
    mesh: the data-parallel mesh.
  Returns:
    dict of global arrays with leading dimension `global_batch_size`.
  """
  sharding = data_sharding(mesh)
  out = {}
  for key, value in local_batch.items():
    if isinstance(value, (np.ndarray, jax.Array)):
      out[key] = jax.make_array_from_process_local_data(sharding, np.asarray(value))
  return out


# The batch entries a step reads; the pipeline may add metadata the device never needs.
MODEL_INPUTS = ('audio', 'channel_mask', 'target', 'example_mask', 'ideal_gains',
                'target_stereo', 'ideal_pans')


def model_inputs(local_batch: dict, mesh) -> dict:
  """This process's numpy batch -> the global arrays of the step's inputs (MODEL_INPUTS)."""
  return global_batch({k: local_batch[k] for k in MODEL_INPUTS if k in local_batch}, mesh)
