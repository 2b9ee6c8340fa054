r"""Exports a trained mixer as a TensorFlow SavedModel (jax2tf, native serialization).

    python -m alm_jax.export --checkpoint=WORKDIR_OR_STEP_DIR --output=EXPORT_DIR
    python -m alm_jax.export --checkpoint=... --output=EXPORT_DIR --streaming --block_size=441

Offline model (`serving_default`):
  inputs  `audio` float32 [batch, channels, samples] and `channel_mask` bool
          [batch, channels]; batch, channels and samples are all dynamic
          (1 <= channels <= config.model.max_channels, enforced at call time;
          samples >= 1, any value);
  outputs `mix` float32 [batch, samples] and `gains` float32
          [batch, channels, ceil(samples / f2)].
  Inside, the audio is padded with silence to a whole number of F1 hops
  (`stride * f2` samples) and mixed in one chunk by `alm_jax.mix.mix_whole`,
  so the outputs equal `alm_jax.mix.mix_arrays` (and, on the whole F2 frames,
  the model's own call). Padding inside keeps `samples` free: the framing
  needs a whole number of hops, which a symbolic `samples` alone cannot
  promise.

Per-segment models (DMC-OG, `model.dmc_per_frame = False`) export the same
signature with the same shapes, computed by `alm_jax.mix.mix_segments_whole`:
the audio is completed with silence to whole segments (the training segment,
`config.data.segment_seconds`, or `--segment_seconds`, fixed at export time),
every segment is mixed with one gain per channel computed from that whole
segment (non-causal, as published) and the outputs are cut back to `samples`;
`gains` repeats each segment's gain on its F2 frames. They have no streaming
export: a gain that depends on the end of its segment cannot be applied live.

Streaming model (`--streaming`, needs `alm_jax.streaming`): the step function
for a fixed block size with explicit state tensors, dynamic batch and channels;
signatures `init_state(channel_mask)` and `step(block, channel_mask, <state...>)`
(see docs/inference.md).

The parameters are `tf.Variable`s passed to the converted function, not
constants baked into the graph: they live in the SavedModel's variables files
(the graph proto has a 2 GB limit) and can be read or replaced from TF.
"""

import json
import os
import pathlib
import sys
from typing import Sequence

from absl import logging
import jax
import ml_collections

from alm_jax import checkpoints
from alm_jax import mix
from alm_jax import outputs


def _tf():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  return tf


def _jax2tf():
  from jax.experimental import jax2tf  # pylint: disable=g-import-not-at-top
  return jax2tf


def _variables_module(params):
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


def offline_signature(config, params, platforms: Sequence[str] = ('cpu',),
                      segment_seconds: float | None = None):
  """Builds the converted offline mixer.

  Args:
    config: the full config.
    params: the model parameters.
    platforms: platforms the computation is lowered for.
    segment_seconds: per-segment models (DMC-OG) only: the segment length
      (None: the training segment, config.data.segment_seconds).
  Returns:
    (module, tf.function) where the function takes (audio, channel_mask) and
    returns {'mix', 'gains'}; module holds the variables.
  """
  tf = _tf()
  jax2tf = _jax2tf()
  max_channels = int(config.model.max_channels)

  if mix.is_per_segment(config):
    mix.check_per_segment(config)
    segment_frames = mix.frames_per_segment(config, segment_seconds)
    logging.warning('Exporting a %s', mix.describe_per_segment(config, segment_seconds))

    def serve(p, audio, channel_mask):
      return mix.mix_segments_whole(config, p, audio, channel_mask, segment_frames)
  else:
    if segment_seconds is not None:
      raise mix.SettingsError(mix.NOT_PER_SEGMENT.format(name=config.model.name))

    def serve(p, audio, channel_mask):
      return mix.mix_whole(config, p, audio, channel_mask)

  converted = jax2tf.convert(
      serve,
      polymorphic_shapes=[None, '(b, c, n)', '(b, c)'],
      polymorphic_constraints=[f'c <= {max_channels}'],
      native_serialization_platforms=tuple(platforms),
      with_gradient=False)
  module, param_vars = _variables_module(params)

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec([None, None, None], tf.float32, name='audio'),
      tf.TensorSpec([None, None], tf.bool, name='channel_mask')])
  def serving(audio, channel_mask):
    return converted(param_vars, audio, channel_mask)

  module.serving = serving
  return module, serving


def streaming_signatures(config, params, block_size: int, platforms: Sequence[str] = ('cpu',)):
  """Builds the converted streaming step and init_state.

  The state is a dict of arrays (from `alm_jax.streaming.init_state`); in TF
  each array is one tensor named `state_<key>`: `init_state` returns them,
  `step` takes them (next to `block` and `channel_mask`) and returns the new
  ones under the same names, next to `out` and `gains`.

  Returns:
    (module, init_fn, step_fn, state_keys).
  """
  from alm_jax import streaming  # pylint: disable=g-import-not-at-top
  tf = _tf()
  jax2tf = _jax2tf()
  max_channels = int(config.model.max_channels)

  # State shapes for a symbolic batch and channel count: each state array's
  # leading axes are found by evaluating init_state at two sizes (channel
  # counts above the model's limit are fine for this shape-only probe).
  probe_config = ml_collections.ConfigDict(config.to_dict())
  probe_config.model.max_channels = max(7, max_channels)
  probe_a = jax.eval_shape(lambda: streaming.init_state(probe_config, 2, 3))
  probe_b = jax.eval_shape(lambda: streaming.init_state(probe_config, 5, 7))
  keys = sorted(probe_a)

  def poly_dims(key):
    sa, sb = probe_a[key].shape, probe_b[key].shape
    dims = []
    for da, db in zip(sa, sb):
      if da == db:
        dims.append(int(da))
      elif (da, db) == (2, 5):
        dims.append('b')
      elif (da, db) == (3, 7):
        dims.append('c')
      else:
        raise ValueError(f'State {key!r} has a dimension that is neither batch, channels nor '
                         f'constant ({sa} at b=2, c=3; {sb} at b=5, c=7); cannot export it.')
    return dims

  state_dims = {k: poly_dims(k) for k in keys}
  state_poly = {k: '(' + ', '.join(map(str, d)) + ')' for k, d in state_dims.items()}
  step = streaming.make_step(config)

  def init_fn(channel_mask):
    b, c = channel_mask.shape
    return streaming.init_state(config, b, c)

  def step_fn(p, block, channel_mask, state):
    # The streaming step takes the variables dict, as model.apply does.
    new_state, out, gains = step({'params': p}, state, block, channel_mask)
    return {'out': out, 'gains': gains, **{f'state_{k}': new_state[k] for k in keys}}

  common = dict(polymorphic_constraints=[f'c <= {max_channels}'],
                native_serialization_platforms=tuple(platforms), with_gradient=False)
  init_converted = jax2tf.convert(init_fn, polymorphic_shapes=['(b, c)'], **common)
  step_converted = jax2tf.convert(
      step_fn, polymorphic_shapes=[None, f'(b, c, {block_size})', '(b, c)', state_poly], **common)

  module, param_vars = _variables_module(params)

  @tf.function(autograph=False, input_signature=[
      tf.TensorSpec([None, None], tf.bool, name='channel_mask')])
  def init_state(channel_mask):
    state = init_converted(channel_mask)
    return {f'state_{k}': state[k] for k in keys}

  def spec(key):
    shape = [None if isinstance(d, str) else d for d in state_dims[key]]
    return tf.TensorSpec(shape, tf.dtypes.as_dtype(probe_a[key].dtype), name=f'state_{key}')

  signature = ([tf.TensorSpec([None, None, block_size], tf.float32, name='block'),
                tf.TensorSpec([None, None], tf.bool, name='channel_mask')]
               + [spec(k) for k in keys])

  @tf.function(autograph=False, input_signature=signature)
  def step_tf(block, channel_mask, *state):
    return step_converted(param_vars, block, channel_mask, dict(zip(keys, state)))

  module.init_state = init_state
  module.step = step_tf
  return module, init_state, step_tf, keys


EXPORT_MARKER = 'alm_jax_export.json'  # written into every export: what `--overwrite` may replace


def check_output(output, overwrite: bool) -> pathlib.Path:
  """Checks, before any work, that the export may be written to `output`.

  Allowed: a path that does not exist, an empty folder, or (with `overwrite`)
  a previous export of this tool (a folder holding EXPORT_MARKER). Anything
  else, a training workdir above all, is refused: the export replaces the
  whole folder.

  Raises:
    outputs.OutputError: naming the folder and the fix.
  """
  path = outputs.check_writable(output, what='--output')
  for parent in path.parents:
    if parent.name == checkpoints.CHECKPOINT_SUBDIR and (
        parent.parent / checkpoints.CONFIG_FILE).exists():
      raise outputs.OutputError(
          f'--output {path} lies inside the checkpoint folder {parent} of a training workdir, '
          'where the checkpoint manager would take it for a step: choose a folder outside it.')
  if not path.exists() or not any(path.iterdir()):
    return path
  if (path / checkpoints.CONFIG_FILE).exists() or (
      path / checkpoints.CHECKPOINT_SUBDIR).exists():
    raise outputs.OutputError(
        f'--output {path} is a training workdir (it holds config.json or checkpoints/): an export '
        'replaces its whole folder, so it never writes there. Choose a new folder, e.g. '
        f'{path / "export"}.')
  if not (path / EXPORT_MARKER).exists():
    raise outputs.OutputError(
        f'--output {path} is a non-empty folder that is not an export of this tool (no '
        f'{EXPORT_MARKER}): an export replaces its whole folder, so it is left alone. Choose a new '
        'or empty folder.')
  if not overwrite:
    raise outputs.OutputError(f'--output {path} holds a previous export: pass --overwrite to '
                              'replace it, or choose another folder.')
  return path


def _save(module, signatures, output, overwrite: bool, description: dict):
  """Writes the SavedModel beside `output`, then renames it into place (see alm_jax.outputs)."""
  tf = _tf()
  output = check_output(output, overwrite)
  # An empty folder is replaced like a previous export: nothing in it is lost.
  replace = output.exists()
  with outputs.folder_written_aside(output, replace=replace) as tmp:
    tf.saved_model.save(module, os.fspath(tmp), signatures=signatures)
    (tmp / EXPORT_MARKER).write_text(json.dumps(description, indent=2, sort_keys=True))
  return output


def export_offline(config, params, output, platforms: Sequence[str] = ('cpu',),
                   segment_seconds: float | None = None, *, overwrite: bool = False,
                   source: str = ''):
  """Writes the offline mixer SavedModel (signature `serving_default`) to `output`.

  `output` must be new, empty, or (with `overwrite`) a previous export: see `check_output`.
  """
  check_output(output, overwrite)
  module, serving = offline_signature(config, params, platforms, segment_seconds)
  return _save(module, {'serving_default': serving}, output, overwrite,
               {'kind': 'offline', 'model': config.model.name, 'checkpoint': source})


def export_streaming(config, params, output, block_size: int,
                     platforms: Sequence[str] = ('cpu',), *, overwrite: bool = False,
                     source: str = ''):
  """Writes the streaming SavedModel (signatures `init_state` and `step`) to `output`.

  `output` must be new, empty, or (with `overwrite`) a previous export: see `check_output`.
  """
  check_output(output, overwrite)
  if mix.is_per_segment(config):
    raise mix.UnsupportedModelError(
        'This checkpoint is a per-segment DMC (DMC-OG, config.model.dmc_per_frame=False): each '
        'gain depends on the whole segment, future samples included, so there is no streaming '
        '(block by block) mixer to export. Export the offline whole-input function instead '
        '(drop --streaming); see docs/baselines.md.')
  module, init_state, step, _ = streaming_signatures(config, params, block_size, platforms)
  return _save(module, {'init_state': init_state, 'step': step, 'serving_default': step}, output,
               overwrite, {'kind': 'streaming', 'block_size': int(block_size),
                           'model': config.model.name, 'checkpoint': source})


def run(f) -> int:
  """Runs the CLI with parsed flags `f` (see `define_flags`); returns the exit status."""
  if f.streaming and f.block_size < 1:
    print(f'error: --block_size must be >= 1, got {f.block_size}.', file=sys.stderr)
    return 2
  if f.streaming and f.segment_seconds is not None:
    print('error: --segment_seconds applies to the offline export of per-segment models only, '
          'not to --streaming.', file=sys.stderr)
    return 2
  platforms = tuple(f.platforms)
  try:
    check_output(f.output, f.overwrite)  # before any work
    config, params, step = checkpoints.restore_params(f.checkpoint)
    common = dict(overwrite=f.overwrite, source=f'{f.checkpoint} (step {step})')
    if f.streaming:
      path = export_streaming(config, params, f.output, f.block_size, platforms, **common)
    else:
      path = export_offline(config, params, f.output, platforms, f.segment_seconds, **common)
  except (FileNotFoundError, mix.UnsupportedModelError, mix.SettingsError, outputs.OutputError,
          NotImplementedError) as e:
    # NotImplementedError: alm_jax.streaming refuses models it cannot stream.
    print(f'error: {e}', file=sys.stderr)
    return 2
  logging.info('Exported %s (step %d) to %s.', f.checkpoint, step, path)
  print(path)
  return 0


def define_flags(flag_values):
  """Defines the CLI flags on `flag_values` (absl FlagValues)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  kw = dict(flag_values=flag_values)
  checkpoints.define_checkpoint_flag(flag_values)
  flags.DEFINE_string('output', None, 'SavedModel folder to write: a new or empty folder, or a '
                      'previous export with --overwrite (anything else is refused).',
                      required=True, **kw)
  flags.DEFINE_boolean('overwrite', False, 'Replace --output when it holds a previous export of '
                       'this tool.', **kw)
  flags.DEFINE_boolean('streaming', False, 'Export the streaming step function instead of the '
                       'offline mixer.', **kw)
  flags.DEFINE_integer('block_size', 441, 'Samples per block of the streaming step (--streaming).',
                       **kw)
  flags.DEFINE_float('segment_seconds', None, 'Per-segment models (DMC-OG) only: the segment that '
                     'gets one gain per channel, in seconds (rounded down to whole F2 frames), '
                     'fixed in the export. Default: the training segment '
                     '(config.data.segment_seconds).', **kw)
  flags.DEFINE_list('platforms', ['cpu'], "Platforms the serialized computation is lowered for, "
                    "e.g. 'cpu,cuda'.", **kw)


def main(argv):
  del argv
  from absl import flags  # pylint: disable=g-import-not-at-top
  return run(flags.FLAGS)


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags as absl_flags  # pylint: disable=g-import-not-at-top
  define_flags(absl_flags.FLAGS)
  app.run(main)
