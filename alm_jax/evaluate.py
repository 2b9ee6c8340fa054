r"""Objective evaluation of trained mixers and a listening page (see docs/evaluation.md).

    python -m alm_jax.evaluate --checkpoints=ALM-MR=/tmp/alm_mr,DMC-OG=/tmp/dmc_og \
        --split=test --output=/tmp/eval --data_config=configs/mr.py
    python -m alm_jax.evaluate ... --segment_seconds=0          # whole songs
    python -m alm_jax.evaluate ... --listening_test             # and a blind MUSHRA test
    python -m alm_jax.evaluate --listening_results=ANSWERS_DIR --output=/tmp/eval

    python -m alm_jax.evaluate ... --expected_ranking=ALM-MR,ALM-SR,DMC-B-0L,DMC-OG,RAW \
        --results_doc=docs/results.md --notes=NOTES.md    # a generated results document

Every song segment of the split is mixed by each checkpoint, by RAW (the plain
sum of the inputs) and, where the data knows its mixing gains, by IDEAL (those
gains), measured with the metric suite training validation reports
(`alm_jax.metrics.mix_metrics`), and DIR receives metrics.csv, summary.md
(with --expected_ranking: whether each metric reproduces that order),
bleed_robustness.png/.csv, the listening page index.html and the audio/ and
gains/ it links to; with --results_doc also summary.md headed by this command
line and followed by the --notes file; with --listening_test also a blind
listening test (listening_test/index.html, its key kept outside that folder),
whose downloaded answers --listening_results aggregates into
listening_results.md. Where the data has a designed stereo placement, every
system is also scored in stereo (`metrics.stereo_metrics`: a mixer whose
capabilities say it pans with its own pans, every other one centre-panned) and
summary.md gains a Stereo section, pans/ the stereo-image plots. This module is
the command line; the work is done in `alm_jax.evaluation`.
"""

import copy
import shlex
import sys
from typing import Optional, Sequence

from absl import app
from absl import flags
from absl import logging
from ml_collections import config_flags

from alm_jax import cli
from alm_jax import outputs
from alm_jax.evaluation import listening_results
from alm_jax.evaluation import listening_test
from alm_jax.evaluation import run as run_lib
from alm_jax.evaluation import systems as systems_lib


def define_flags(flag_values):
  """Defines the CLI flags on `flag_values` (absl FlagValues)."""
  kw = dict(flag_values=flag_values)
  flags.DEFINE_string('checkpoints', '', 'NAME=PATH[,NAME=PATH...]: training workdirs (latest '
                      'step) or step directories. RAW is always evaluated too, IDEAL where the '
                      'data knows its mixing gains.', **kw)
  flags.DEFINE_string('split', 'test', 'Dataset split to evaluate.', **kw)
  flags.DEFINE_string('output', None, 'Results folder (with --listening_results: the evaluation '
                      'folder holding the test).', required=True, **kw)
  config_flags.DEFINE_config_file('data_config', None, 'Config file whose data section (and seed, '
                                  'max_channels) defines the evaluation data; default: the first '
                                  "checkpoint's saved config.", lock_config=False, **kw)
  flags.DEFINE_string('data_dir', '', 'Overrides config.data.data_dir (the tfds data folder).', **kw)
  flags.DEFINE_float('segment_seconds', None, 'Segment length; 0: whole songs; default: the data '
                     "config's eval_segment_seconds.", **kw)
  flags.DEFINE_integer('segments_per_song', None, "Segments per song; default: the data config's "
                       'eval_segments_per_song.', **kw)
  flags.DEFINE_integer('severity_bins', run_lib.DEFAULT_SEVERITY_BINS, 'Bleed severity bins of the '
                       'robustness plot.', **kw)
  flags.DEFINE_string('rir_workdir', None, 'Folder for the RIR bank when '
                      'config.data.bleed.cache_dir is empty.', **kw)
  flags.DEFINE_boolean('overwrite', False, 'Replace earlier results in --output.', **kw)
  flags.DEFINE_boolean('listening_test', False, 'Also write a blind listening test '
                       '(listening_test/index.html): neutral letters in a random order, a hidden '
                       'reference and an anchor, answers downloaded as JSON.', **kw)
  flags.DEFINE_enum('listening_test_mode', 'mushra', listening_test.MODES, 'mushra: 0-100 '
                    'sliders; ranking: rank the versions.', **kw)
  flags.DEFINE_string('expected_ranking', '', 'NAME,NAME,...: evaluated systems (checkpoints, '
                      'RAW, IDEAL), best first; summary.md then says per metric whether the '
                      'observed order reproduces it and which pairs are inverted.', **kw)
  flags.DEFINE_string('balance_reference', '', 'NAME: the system the "Balance by role" section '
                      "pairs every other one with (each segment's balance error minus its; e.g. "
                      'PRESET); empty: no paired column.', **kw)
  flags.DEFINE_string('results_doc', None, "Also write summary.md's text to this file (e.g. "
                      'docs/results.md), headed by the command line that generated it.', **kw)
  flags.DEFINE_string('notes', None, 'Markdown file appended to --results_doc under "Notes" (the '
                      'analysis of the results), so one command regenerates the document.', **kw)
  flags.DEFINE_string('listening_results', None, 'Folder of answer files (*.json) of the test in '
                      '--output: aggregate them into listening_results.md / .csv and exit.', **kw)


def command_line(argv: Sequence[str]) -> str:
  """The command line that `argv` (sys.argv: program, then arguments) ran, as a shell would take it."""
  return shlex.join(['python', '-m', 'alm_jax.evaluate', *argv[1:]])


def read_notes(f) -> str:
  """The --notes file's text ('' without it).

  Raises:
    EvaluationError: --notes without --results_doc, or a file that cannot be read.
  """
  if not f.notes:
    return ''
  if not f.results_doc:
    raise systems_lib.EvaluationError('--notes is appended to the results document: give '
                                      '--results_doc=PATH too.')
  try:
    with open(f.notes, encoding='utf-8') as notes:
      return notes.read()
  except (OSError, UnicodeDecodeError) as e:
    raise systems_lib.EvaluationError(f'--notes {f.notes}: cannot read it ({e}): give a UTF-8 '
                                      'markdown file.') from e


def run(f, argv: Optional[Sequence[str]] = None) -> int:
  """Runs the CLI with parsed flags `f`; returns the exit status.

  `argv` is the command's arguments, program first (default sys.argv): the
  results document names the command line they make.
  """
  if f.listening_results:
    try:
      written = listening_results.write(f.output, f.listening_results)
    except listening_results.ListeningResultsError as e:
      print(f'error: {e}', file=sys.stderr)
      return 2
    print(written['table'])
    return 0
  try:
    outputs.check_writable(f.output, what='--output')  # before any work
    notes = read_notes(f)
    checkpoint_list = systems_lib.parse_checkpoints(f.checkpoints)
    expected = [n.strip() for n in f.expected_ranking.split(',') if n.strip()]
    if expected:  # before restoring anything (evaluate checks it again, for IDEAL)
      run_lib.check_ranking_names(expected, [name for name, _ in checkpoint_list])
    known = [systems_lib.RAW, systems_lib.IDEAL] + [name for name, _ in checkpoint_list]
    if f.balance_reference and f.balance_reference not in known:
      raise systems_lib.EvaluationError(
          f'--balance_reference={f.balance_reference} is not an evaluated system '
          f'({", ".join(known)}; names are case-sensitive).')
    systems = [systems_lib.load_system(name, path) for name, path in checkpoint_list]
    data_config = f.data_config
    if data_config is None:
      if not systems:
        raise systems_lib.EvaluationError('Give --data_config (there is no checkpoint to take '
                                          'the data settings from).')
      data_config = systems[0].config
      logging.info('Evaluation data as in the config of %s.', systems[0].name)
    if f.data_dir:
      data_config = copy.deepcopy(data_config)
      with data_config.unlocked():
        data_config.data.data_dir = f.data_dir
    paths = run_lib.evaluate(systems, data_config, f.split, f.output,
                             segment_seconds=f.segment_seconds,
                             segments_per_song=f.segments_per_song,
                             severity_bins_count=f.severity_bins, overwrite=f.overwrite,
                             workdir=f.rir_workdir,
                             listening_test=f.listening_test_mode if f.listening_test else None,
                             expected_ranking=expected, results_doc=f.results_doc,
                             balance_reference=f.balance_reference,
                             command=command_line(sys.argv if argv is None else argv),
                             notes=notes)
  except (systems_lib.EvaluationError, outputs.OutputError, FileExistsError,
          FileNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  for key in ('summary', 'metrics', 'bleed_plot', 'index', 'listening_test', 'results_doc'):
    if key in paths:
      print(paths[key])
  return 0


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  # TF only reads the dataset: keep it off the accelerators JAX owns.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  return run(flags.FLAGS)


if __name__ == '__main__':
  cli.run(main, define_flags)
