"""SavedModel conversion (jax2tf, native serialization) of serve functions; it knows no model.

`convert_offline` turns `serve(params, audio, channel_mask) -> {'mix', 'gains'}`
into a tf.function with dynamic batch, channels and samples;
`convert_streaming` turns a block stream's `init_state`/`step` into two
tf.functions whose state is one named tensor per state key. The parameters
are `tf.Variable`s passed to the converted functions, not constants folded
into the graph: they live in the SavedModel's variables files (the graph
proto has a 2 GB limit) and can be read or replaced from TF. Signatures:
docs/inference.md.
"""

from typing import Callable, Sequence

import jax


def _tf():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf


def _jax2tf():
  from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top
  return jax2tf


def variables_module(params):
  """A tf.Module owning the parameters as variables.

  Returns:
    (module, param_vars): param_vars is the parameter tree of tf.Variables for
    the converted functions to close over. The module tracks them as a flat
    list, because the dict wrapper tf.Module puts around attributes is not a
    pytree jax2tf can flatten.
  """
  tf = _tf()
  param_vars = tf.nest.map_structure(tf.Variable, jax.device_get(params))
  module = tf.Module()
  module.param_list = tf.nest.flatten(param_vars)
  return module, param_vars


def convert_offline(serve: Callable, params, max_channels: int,
                    platforms: Sequence[str] = ('cpu',)):
  """(module, tf.function(audio, channel_mask) -> {'mix', 'gains'}); module holds the variables."""
  tf = _tf()
  converted = _jax2tf().convert(
      serve, polymorphic_shapes=[None, '(b, c, n)', '(b, c)'],
      polymorphic_constraints=[f'c <= {int(max_channels)}'],
      native_serialization_platforms=tuple(platforms), with_gradient=False)
  module, param_vars = variables_module(params)

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec([None, None, None], tf.float32, name='audio'),
      tf.TensorSpec([None, None], tf.bool, name='channel_mask')])
  def serving(audio, channel_mask):
    return converted(param_vars, audio, channel_mask)

  module.serving = serving
  return module, serving


def state_dims(init_state: Callable) -> dict:
  """Each state array's axes as 'b', 'c' or a constant, from `init_state(batch, channels)` at two sizes."""
  probe_a = jax.eval_shape(lambda: init_state(2, 3))
  probe_b = jax.eval_shape(lambda: init_state(5, 7))
  dims = {}
  for key in sorted(probe_a):
    sa, sb = probe_a[key].shape, probe_b[key].shape
    out = []
    for da, db in zip(sa, sb):
      if da == db:
        out.append(int(da))
      elif (da, db) == (2, 5):
        out.append('b')
      elif (da, db) == (3, 7):
        out.append('c')
      else:
        raise ValueError(f'State {key!r} has a dimension that is neither batch, channels nor '
                         f'constant ({sa} at b=2, c=3; {sb} at b=5, c=7); cannot export it.')
    dims[key] = (out, probe_a[key].dtype)
  return dims


def convert_streaming(init_state: Callable, step: Callable, params, block_size: int,
                      max_channels: int, platforms: Sequence[str] = ('cpu',), *,
                      probe_init_state: Callable | None = None):
  """Converts a block stream.

  Args:
    init_state: (batch, channels) -> flat dict of state arrays.
    step: (params, state, block, channel_mask) -> (state, out, gains, faults).
    params: the parameter tree.
    block_size: samples per block, fixed in the export.
    max_channels: the most channels the graph accepts.
    probe_init_state: `init_state` without its channel limit, for the
      shape probe at 7 channels (default: init_state).
  Returns:
    (module, init_fn, step_fn, state_keys): `init_fn(channel_mask)` returns
    `state_<key>` tensors; `step_fn(block, channel_mask, *state)` returns
    `out`, `gains`, `faults` and the new `state_<key>` tensors.
  """
  tf = _tf()
  jax2tf = _jax2tf()
  dims = state_dims(probe_init_state or init_state)
  keys = sorted(dims)
  state_poly = {k: '(' + ', '.join(map(str, d)) + ')' for k, (d, _) in dims.items()}

  def init_fn(channel_mask):
    b, c = channel_mask.shape
    return init_state(b, c)

  def step_fn(p, block, channel_mask, state):
    new_state, out, gains, faults = step(p, state, block, channel_mask)
    return {'out': out, 'gains': gains, 'faults': faults,
            **{f'state_{k}': new_state[k] for k in keys}}

  common = dict(polymorphic_constraints=[f'c <= {int(max_channels)}'],
                native_serialization_platforms=tuple(platforms), with_gradient=False)
  init_converted = jax2tf.convert(init_fn, polymorphic_shapes=['(b, c)'], **common)
  step_converted = jax2tf.convert(
      step_fn, polymorphic_shapes=[None, f'(b, c, {block_size})', '(b, c)', state_poly], **common)
  module, param_vars = variables_module(params)

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec([None, None], tf.bool, name='channel_mask')])
  def init_tf(channel_mask):
    state = init_converted(channel_mask)
    return {f'state_{k}': state[k] for k in keys}

  def spec(key):
    d, dtype = dims[key]
    shape = [None if isinstance(x, str) else x for x in d]
    return tf.TensorSpec(shape, tf.dtypes.as_dtype(dtype), name=f'state_{key}')

  signature = ([tf.TensorSpec([None, None, block_size], tf.float32, name='block'),
                tf.TensorSpec([None, None], tf.bool, name='channel_mask')]
               + [spec(k) for k in keys])

  @tf.function(autograph=False, input_signature=signature)
  def step_tf(block, channel_mask, *state):
    return step_converted(param_vars, block, channel_mask, dict(zip(keys, state)))

  module.init_state = init_tf
  module.step = step_tf
  return module, init_tf, step_tf, keys
