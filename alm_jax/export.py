r"""Exports a trained mixer as a TensorFlow SavedModel (jax2tf, native serialization).

    python -m alm_jax.export --checkpoint=WORKDIR_OR_STEP_DIR --output=EXPORT_DIR
    python -m alm_jax.export --checkpoint=... --output=EXPORT_DIR --streaming --block_size=441
    python -m alm_jax.export --format=onnx --checkpoint=... --output=DIR [--streaming]

`--format=onnx` writes ONNX graphs of fixed shapes instead (`export_onnx`,
`alm_jax.inference.onnx_export`; signatures and a host loop: docs/deploy.md).

Offline model (`serving_default`):
  inputs  `audio` float32 [batch, channels, samples] and `channel_mask` bool
          [batch, channels]; batch, channels and samples are all dynamic
          (1 <= channels <= config.model.max_channels, enforced at call time;
          samples >= 1, any value);
  outputs `mix` float32 [batch, samples] and `gains` float32
          [batch, channels, ceil(samples / f2)].
  Inside, the audio is padded with silence to a whole number of F1 hops
  (`stride * f2` samples) and mixed in one chunk by `alm_jax.inference.offline.mix_whole`,
  so the outputs equal `alm_jax.inference.offline.mix_arrays` (and, on the whole F2 frames,
  the model's own call). Padding inside keeps `samples` free: the framing
  needs a whole number of hops, which a symbolic `samples` alone cannot
  promise.

Per-segment models (DMC-OG, `model.dmc_per_frame = False`) export the same
signature with the same shapes, computed by `alm_jax.inference.offline.mix_segments_whole`:
the audio is completed with silence to whole segments (the training segment,
`config.data.segment_seconds`, or `--segment_seconds`, fixed at export time),
every segment is mixed with one gain per channel computed from that whole
segment (non-causal, as published) and the outputs are cut back to `samples`;
`gains` repeats each segment's gain on its F2 frames. They have no streaming
export: a gain that depends on the end of its segment cannot be applied live.

Streaming model (`--streaming`): the block stream of `alm_jax.inference.streaming`
for a fixed block size with explicit state tensors, dynamic batch and channels;
signatures `init_state(channel_mask)` and `step(block, channel_mask, <state...>)`,
which returns `out`, `gains`, `faults` (channels muted for non-finite or absurd
samples in this block) and the new state (see docs/inference.md). Conversion
itself is `alm_jax.inference.savedmodel`, which knows no model.
"""

import dataclasses
import functools
import json
import os
import pathlib
import sys
from typing import Callable, Sequence

from absl import flags
from absl import logging
import ml_collections

from alm_jax import checkpoints
from alm_jax import cli
from alm_jax import outputs
from alm_jax import restore
from alm_jax.inference import offline
from alm_jax.inference import savedmodel
from alm_jax.inference import streaming
from alm_jax.models import build_mixer
from alm_jax.models import protocol


def offline_serve(loaded: protocol.LoadedMixer, segment_seconds: float | None = None):
  """(serve(params, audio, channel_mask) -> {'mix', 'gains'}, max_channels) of the offline mixer."""
  mixer = loaded.mixer
  caps = mixer.capabilities
  if caps.per_segment:
    segment_frames = offline.frames_per_segment(loaded, segment_seconds)
    logging.warning('Exporting a %s', offline.describe_per_segment(loaded, segment_seconds))
    serve = functools.partial(offline.mix_segments_whole, mixer, segment_frames=segment_frames)
  else:
    if segment_seconds is not None:
      mixer.refuse('segments')
    serve = functools.partial(offline.mix_whole, mixer)
  return serve, caps.max_channels


def offline_signature(loaded: protocol.LoadedMixer, platforms: Sequence[str] = ('cpu',),
                      segment_seconds: float | None = None):
  """(module, tf.function(audio, channel_mask) -> {'mix', 'gains'}) of the offline mixer."""
  serve, max_channels = offline_serve(loaded, segment_seconds)
  return savedmodel.convert_offline(serve, loaded.params, max_channels, platforms)


def streaming_signatures(loaded: protocol.LoadedMixer, block_size: int,
                         platforms: Sequence[str] = ('cpu',)):
  """(module, init_fn, step_fn, state_keys) of the block stream (`inference.streaming.BlockStream`)."""
  stream = streaming.block_stream(loaded)
  config, params = loaded.config, loaded.params
  # The shape probe evaluates init_state at 7 channels, above a small model's limit: the same
  # model with a higher channel limit (its parameters do not depend on it).
  probe_config = ml_collections.ConfigDict(config.to_dict())
  probe_config.model.max_channels = max(7, int(config.model.max_channels))
  probe = streaming.BlockStream(build_mixer(probe_config))
  return savedmodel.convert_streaming(stream.init_state, stream.step, params, block_size,
                                      stream.capabilities.max_channels, platforms,
                                      probe_init_state=probe.init_state)


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
  # The rule every command that writes folders follows (alm_jax.outputs).
  outputs.check_replaceable(path, EXPORT_MARKER, overwrite=overwrite, tool='alm_jax.export')
  return path


def _save(module, signatures, output, overwrite: bool, description: dict):
  """Writes the SavedModel beside `output`, then renames it into place (see alm_jax.outputs)."""
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  output = check_output(output, overwrite)
  # An empty folder is replaced like a previous export: nothing in it is lost.
  replace = output.exists()
  with outputs.folder_written_aside(output, replace=replace) as tmp:
    tf.saved_model.save(module, os.fspath(tmp), signatures=signatures)
    (tmp / EXPORT_MARKER).write_text(json.dumps(description, indent=2, sort_keys=True))
  return output


def export_offline(loaded: protocol.LoadedMixer, output, platforms: Sequence[str] = ('cpu',),
                   segment_seconds: float | None = None, *, overwrite: bool = False,
                   source: str = ''):
  """Writes the offline mixer SavedModel (signature `serving_default`) to `output`.

  `output` must be new, empty, or (with `overwrite`) a previous export: see `check_output`.
  """
  check_output(output, overwrite)
  module, serving = offline_signature(loaded, platforms, segment_seconds)
  return _save(module, {'serving_default': serving}, output, overwrite,
               {'kind': 'offline', 'model': loaded.config.model.name, 'checkpoint': source})


def export_streaming(loaded: protocol.LoadedMixer, output, block_size: int,
                     platforms: Sequence[str] = ('cpu',), *, overwrite: bool = False,
                     source: str = ''):
  """Writes the streaming SavedModel (signatures `init_state` and `step`) to `output`.

  `output` must be new, empty, or (with `overwrite`) a previous export: see `check_output`.
  """
  check_output(output, overwrite)
  loaded.mixer.refuse('stream')
  module, init_state, step, _ = streaming_signatures(loaded, block_size, platforms)
  return _save(module, {'init_state': init_state, 'step': step, 'serving_default': step}, output,
               overwrite, {'kind': 'streaming', 'block_size': int(block_size),
                           'model': loaded.config.model.name, 'checkpoint': source})


def export_onnx(loaded: protocol.LoadedMixer, output, *, stream: bool,
                block_sizes: Sequence[int] = (441,),
                batch: int = 1, channels: int | None = None, samples: int = 1323000,
                segment_seconds: float | None = None, overwrite: bool = False, source: str = ''):
  """Writes ONNX graphs (`alm_jax.inference.onnx_export`, docs/deploy.md) into the folder `output`.

  Offline: `offline.onnx`, audio [batch, channels, samples]; streaming:
  `init_state.onnx` and `step_<n>.onnx` per block size n. Every shape is fixed;
  `channels` (default: the model's max_channels) is the most channels a
  stream may have (fewer: mask the rest).
  """
  from alm_jax.inference import onnx_export  # pylint: disable=g-import-not-at-top
  output = check_output(output, overwrite)
  mixer, params = loaded.mixer, loaded.params
  if stream:
    mixer.refuse('stream')
  max_channels = int(mixer.capabilities.max_channels)
  channels = max_channels if channels is None else int(channels)
  sizes = {'--onnx_batch': batch, '--onnx_channels': channels, '--onnx_samples': samples,
           **{'--onnx_block_sizes': n for n in block_sizes}}
  for flag, value in sizes.items():
    if value < 1:
      raise offline.SettingsError(f'{flag} must be >= 1, got {value}.')
  if channels > max_channels:
    raise offline.SettingsError(f'--onnx_channels={channels} exceeds the {max_channels} channels '
                                'this model allows (config.model.max_channels).')
  description = {'kind': 'streaming' if stream else 'offline', 'format': 'onnx',
                 'model': loaded.config.model.name, 'checkpoint': source, 'batch': batch,
                 'channels': channels}
  with outputs.folder_written_aside(output, replace=output.exists()) as tmp:
    if stream:
      blocks = streaming.block_stream(loaded)
      onnx_export.export_streaming_onnx(blocks.init_state, blocks.step, params, block_sizes, tmp,
                                        batch=batch, channels=channels)
      description['block_sizes'] = sorted({int(n) for n in block_sizes})
    else:
      serve, _ = offline_serve(loaded, segment_seconds)
      onnx_export.export_offline_onnx(serve, params, tmp / 'offline.onnx', batch=batch,
                                      channels=channels, samples=samples)
      description['samples'] = samples
    (tmp / EXPORT_MARKER).write_text(json.dumps(description, indent=2, sort_keys=True))
  return output


def _write_savedmodel(loaded: protocol.LoadedMixer, f, **common):
  if f.streaming:
    return export_streaming(loaded, f.output, f.block_size, tuple(f.platforms), **common)
  return export_offline(loaded, f.output, tuple(f.platforms), f.segment_seconds, **common)


def _write_onnx(loaded: protocol.LoadedMixer, f, **common):
  return export_onnx(loaded, f.output, stream=f.streaming,
                     block_sizes=[int(n) for n in f.onnx_block_sizes or [f.block_size]],
                     batch=f.onnx_batch, channels=f.onnx_channels, samples=f.onnx_samples,
                     segment_seconds=f.segment_seconds, **common)


@dataclasses.dataclass(frozen=True)
class ExportFormat:
  """One `--format`: its one-line description and its writer.

  write: (loaded mixer, parsed flags, *, overwrite, source) -> the folder written.
  """
  description: str
  write: Callable[..., pathlib.Path]


# The export formats, declared once: --format's choices, its help and what `run` calls.
# A new format is one writer function and one entry here.
FORMATS = {
    'savedmodel': ExportFormat('TF SavedModel (jax2tf)', _write_savedmodel),
    'onnx': ExportFormat('ONNX graphs of fixed shapes for ONNX Runtime (docs/deploy.md)',
                         _write_onnx),
}


def run(f) -> int:
  """Runs the CLI with parsed flags `f` (see `define_flags`); returns the exit status."""
  if f.streaming and f.block_size < 1:
    print(f'error: --block_size must be >= 1, got {f.block_size}.', file=sys.stderr)
    return 2
  if f.streaming and f.segment_seconds is not None:
    print('error: --segment_seconds applies to the offline export of per-segment models only, '
          'not to --streaming.', file=sys.stderr)
    return 2
  try:
    check_output(f.output, f.overwrite)  # before any work
    loaded = restore.load_mixer(f.checkpoint)
    step = loaded.step
    path = FORMATS[f.format].write(loaded, f, overwrite=f.overwrite,
                                   source=f'{f.checkpoint} (step {step})')
  except (FileNotFoundError, protocol.UnsupportedModelError, offline.SettingsError,
          outputs.OutputError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  logging.info('Exported %s (step %d) to %s.', f.checkpoint, step, path)
  print(path)
  return 0


def define_flags(flag_values):
  """Defines the CLI flags on `flag_values` (absl FlagValues)."""
  kw = dict(flag_values=flag_values)
  restore.define_checkpoint_flag(flag_values)
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
  flags.DEFINE_enum('format', 'savedmodel', list(FORMATS),
                    '; '.join(f'{name}: {fmt.description}' for name, fmt in FORMATS.items()) + '.',
                    **kw)
  flags.DEFINE_integer('onnx_batch', 1, '--format=onnx: streams (or songs) per call, fixed.', **kw)
  flags.DEFINE_integer('onnx_channels', None, '--format=onnx: channels per stream, fixed; fewer '
                       'are masked (channel_mask). Default: config.model.max_channels.', **kw)
  flags.DEFINE_integer('onnx_samples', 1323000, '--format=onnx offline: samples per call, fixed '
                       '(default 30 s at 44.1 kHz); pad shorter audio with silence at the end.',
                       **kw)
  flags.DEFINE_list('onnx_block_sizes', None, '--format=onnx --streaming: one step graph per '
                    'block size (default: --block_size).', **kw)
  flags.DEFINE_list('platforms', ['cpu'], "Platforms the serialized computation is lowered for, "
                    "e.g. 'cpu,cuda'.", **kw)


def main(argv):
  del argv
  return run(flags.FLAGS)


if __name__ == '__main__':
  cli.run(main, define_flags)
