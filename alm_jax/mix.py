r"""Offline mixing of song folders with a trained mixer: the command line.

    python -m alm_jax.mix --checkpoint=WORKDIR_OR_STEP_DIR --input=SONG_DIR --output=OUT_DIR
    python -m alm_jax.mix --checkpoint=... --input=SONG_DIR/*.wav --output=OUT_DIR [--raw]
    python -m alm_jax.mix --checkpoint=... --input=FOLDER_OF_SONG_DIRS --output=OUT_DIR --batch_songs=4

A thin layer over `alm_jax.songio` (finding, checking, reading and writing song
folders), `alm_jax.songs` (mixing them in batches) and `alm_jax.inference.offline`
(the chunked or per-segment engine the checkpoint's mixer calls for); see
docs/inference.md.
"""

import sys
from typing import Sequence

from absl import flags
from absl import logging

from alm_jax import audio_io
from alm_jax import cli
from alm_jax import outputs
from alm_jax import restore
from alm_jax import songio
from alm_jax import songs as songs_lib
from alm_jax.inference import offline
from alm_jax.models import protocol


def run(f, extra_inputs: Sequence[str] = ()) -> int:
  """Runs the CLI with parsed flags `f` (see `define_flags`); returns the exit status."""
  # Shell globs (--input=song/*.wav) put all but the first file after the flags.
  inputs = list(f.input or []) + list(extra_inputs)
  try:
    songs = songio.discover_songs(inputs)
    # Before any work: a writable --output, apart from the inputs, replacing only earlier mixes.
    outputs.check_writable(f.output, what='--output')
    songio.check_output(songs, f.output, f.overwrite, inputs)
    loaded = restore.load_mixer(f.checkpoint)
    step = loaded.step
    logging.info('Restored %s at step %d; mixing %d song(s).', f.checkpoint, step, len(songs))
    written = songs_lib.mix_songs(loaded, songs, f.output, batch_songs=f.batch_songs,
                        chunk_seconds=f.chunk_seconds, raw=f.raw, pad_unequal=f.pad_unequal,
                        overwrite=f.overwrite, segment_seconds=f.segment_seconds,
                                 pad_short=f.pad_short, source=f'{f.checkpoint} (step {step})')
  except (songio.InputError, protocol.UnsupportedModelError, offline.SettingsError,
          audio_io.AudioFileError, outputs.OutputError, FileExistsError, FileNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  except OSError as e:  # a full disk: one line (nothing half-written stays: see alm_jax.outputs)
    full = outputs.disk_full(e)
    if full is None:
      raise
    print('error: ' + outputs.disk_full_message(
        full, f.output, what='--output', after='Songs finished earlier stay; no half-written song '
        'folder is left.', name_file=False), file=sys.stderr)
    return 2
  for path in written:
    print(path)
  return 0


def define_flags(flag_values):
  """Defines the CLI flags on `flag_values` (absl FlagValues)."""
  kw = dict(flag_values=flag_values)
  restore.define_checkpoint_flag(flag_values)
  flags.DEFINE_multi_string('input', None, 'A song folder of per-channel audio files (any format '
                            'libsndfile reads: WAV, FLAC, AIFF, OGG, MP3, ...), audio files of '
                            'one song, or a folder of song folders. Repeatable; extra '
                            'positional arguments are inputs too (shell globs).', **kw)
  flags.DEFINE_string('output', None, 'Output folder; each song goes to OUTPUT/<song name>/.',
                      required=True, **kw)
  flags.DEFINE_boolean('raw', False, 'Also write raw.wav, the plain sum of the channels.', **kw)
  flags.DEFINE_boolean('pad_unequal', True, 'Pad files shorter than their song with silence at the '
                       'end (logged); false: refuse songs with unequal file lengths.', **kw)
  flags.DEFINE_boolean('pad_short', False, 'Pad a file holding fewer samples than its header '
                       'declares (a truncated copy) with silence, with a warning; default: refuse '
                       'it.', **kw)
  flags.DEFINE_integer('batch_songs', 4, 'Songs mixed together in one batch.', **kw)
  flags.DEFINE_float('chunk_seconds', offline.DEFAULT_CHUNK_SECONDS, 'Chunk length in seconds (rounded up '
                     'to whole F1 hops); bounds memory, never changes the result.', **kw)
  flags.DEFINE_float('segment_seconds', None, 'Per-segment models (DMC-OG) only: the segment that '
                     'gets one gain per channel, in seconds, rounded down to whole F2 frames; '
                     'changes the result. Default: the training segment '
                     '(config.data.segment_seconds).', **kw)
  flags.DEFINE_boolean('overwrite', False, 'Replace song output folders an earlier run of this '
                       'command wrote (they hold alm_jax_mix.json); other folders are never '
                       'replaced.', **kw)


def main(argv):
  return run(flags.FLAGS, argv[1:])


if __name__ == '__main__':
  cli.run(main, define_flags)
