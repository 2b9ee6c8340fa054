"""The evaluation loop: every example mixed by the references and each system, measured, written out.

The references are RAW and, where the data knows its mixing gains, IDEAL
(`systems.reference_systems`). Per example it writes the target, each system's
mix (16-bit WAV, as a desk output would clip) and gain plot, and measures each
mix with `alm_jax.metrics.mix_metrics` and, where the data has a designed
placement, `metrics.stereo_metrics` (a stereo system with its pans, also its
stereo WAV and stereo-image plot; every other one centre-panned); at the end it
writes the tables (`evaluation.report`), optionally a results document, the
bleed-robustness figure and the listening page.
"""

import os
import shutil
from typing import Optional, Sequence

from absl import logging
import numpy as np
from tqdm import tqdm

from alm_jax import metrics
from alm_jax import outputs
from alm_jax import stereo
from alm_jax.data import bleed
from alm_jax.data import common
from alm_jax.evaluation import examples as examples_lib
from alm_jax.evaluation import listening_page
from alm_jax.evaluation import listening_results
from alm_jax.evaluation import listening_test as listening_test_lib
from alm_jax.evaluation import plots
from alm_jax.evaluation import report
from alm_jax.evaluation import systems as systems_lib
from alm_jax.inference import offline

OUTPUT_FILES = ('metrics.csv', 'summary.md', 'bleed_robustness.png', 'bleed_robustness.csv',
                'index.html')
OUTPUT_DIRS = ('audio', 'gains', 'pans')
# Written into --output: the results there that `--overwrite` may replace (alm_jax.outputs).
EVALUATE_MARKER = 'alm_jax_evaluate.json'
# Written with --listening_test (and by aggregating its answers): replaced with the rest.
LISTENING_OUTPUTS = (listening_test_lib.FOLDER, listening_test_lib.KEY_FILE,
                     *listening_results.RESULT_FILES)
DEFAULT_SEVERITY_BINS = 4


def earlier_results(output: str, overwrite: bool,
                    ours: Sequence[str] = OUTPUT_FILES + OUTPUT_DIRS + LISTENING_OUTPUTS) -> list:
  """The earlier results named in `ours` that `output` holds (checked before any work).

  Raises:
    FileExistsError: there are some and overwrite is False.
  """
  found = [p for p in ours if os.path.exists(os.path.join(output, p))]
  if found and not overwrite:
    raise FileExistsError(f'{output} already holds evaluation results ({", ".join(found)}); pass '
                          '--overwrite or choose another --output.')
  if found and not os.path.isfile(os.path.join(output, EVALUATE_MARKER)):
    # The rule of alm_jax.outputs: never delete what this tool did not write.
    raise outputs.OutputError(
        f'{output} holds {", ".join(found)} but no {EVALUATE_MARKER}: they were not written by '
        'alm_jax.evaluate, so they are never replaced, even with --overwrite. Choose another '
        '--output, or move them away.')
  return found


def prepare_output(output: str, overwrite: bool,
                   ours: Sequence[str] = OUTPUT_FILES + OUTPUT_DIRS + LISTENING_OUTPUTS):
  """Creates `output`; removes earlier results named in `ours` only with `overwrite`.

  Raises:
    FileExistsError: `output` holds some of `ours` and overwrite is False.
  """
  found = earlier_results(output, overwrite, ours)
  os.makedirs(output, exist_ok=True)
  outputs.write_marker(output, EVALUATE_MARKER, {'tool': 'alm_jax.evaluate'})
  for p in found:
    full = os.path.join(output, p)
    if os.path.isdir(full):
      shutil.rmtree(full)
    else:
      os.remove(full)


def check_ranking_names(expected: Sequence[str], names: Sequence[str]):
  """Checks an expected ranking against the names that can be evaluated.

  Args:
    expected: system names, best first.
    names: the checkpoints' names.
  Raises:
    EvaluationError: fewer than two names, a name twice, or one that is neither
      a checkpoint's nor a reference's (RAW, IDEAL).
  """
  known = [systems_lib.RAW, systems_lib.IDEAL] + list(names)
  unknown = [n for n in expected if n not in known]
  if unknown or len(set(expected)) != len(expected) or len(expected) < 2:
    raise systems_lib.EvaluationError(
        f'--expected_ranking {",".join(expected)!r} must name two or more evaluated systems, each '
        f'once, best first; {"unknown: " + ", ".join(unknown) if unknown else "repeated or too few"}'
        f' (evaluated: {", ".join(known)}; names are case-sensitive).')


def check_results_doc(path: str):
  """Checks, before any work, that the results document `path` can be written.

  Raises:
    EvaluationError: `path` is a folder, or its folder cannot be created or written.
  """
  if os.path.isdir(path):
    raise systems_lib.EvaluationError(f'--results_doc {path} is a folder: give a file path '
                                      '(e.g. docs/results.md).')
  try:
    outputs.check_writable(os.path.dirname(os.path.abspath(path)), what='--results_doc folder')
  except outputs.OutputError as e:
    raise systems_lib.EvaluationError(str(e)) from e


def measure(system: systems_lib.System, ex: examples_lib.Example, mix, gains, loss_config, *,
            pans=None, stereo_mix=None) -> dict:
  """The metrics of one system's mix of one example, as floats.

  `metrics.mix_metrics` of the mono mix, and `metrics.stereo_metrics` (NaN where the
  example has no designed placement) of the stereo mix: `pans` [channels, frames] and
  `stereo_mix` [2, samples] (`System.mix_stereo`); without them the system is placed at
  the centre (pans 0, `stereo.centred(mix)`), as every mono mixer is.
  """
  values = metrics.mix_metrics(mix, ex.target, gains, rate=common.SAMPLE_RATE,
                               frame_seconds=system.frame_seconds, ideal_gains=ex.target_gains,
                               loss_config=loss_config)
  if ex.has_placement:
    if pans is None:
      pans, stereo_mix = np.zeros_like(gains), stereo.centred(np.asarray(mix, np.float32))
    values.update(metrics.stereo_metrics(stereo_mix, ex.target_stereo, pans, ex.ideal_pans,
                                         loss_config=loss_config))
  else:
    values.update({k: np.nan for k in metrics.STEREO_METRICS})
  return {k: float(v) for k, v in values.items()}


def chunk_seconds_of(cfg) -> float:
  """The chunk a causal system is mixed in: at most one evaluation segment (`eval_data_config`)."""
  return min(offline.DEFAULT_CHUNK_SECONDS, float(cfg.data.eval_segment_seconds))


def plot_stereo_image(pans, ex: examples_lib.Example, frame_seconds: float, path: str, title: str):
  """A segment's stereo-image plot: each channel's pan over time [channels, frames], its designed
  pan (where the data has a placement) dashed in the same colour and named in the legend."""
  names = ex.channel_names
  if ex.ideal_pans is not None:
    names = [f'{n} (designed {p:+.2f})' for n, p in zip(names, ex.ideal_pans)]
  plots.plot_gains(pans, frame_seconds, names, path, scale='pan', reference=ex.ideal_pans,
                   title=f'{title}: stereo image')


def evaluate(systems: Sequence[systems_lib.System], data_config, split: str, output: str, *,
             segment_seconds: Optional[float] = None, segments_per_song: Optional[int] = None,
             severity_bins_count: int = DEFAULT_SEVERITY_BINS, overwrite: bool = False,
             progress: bool = True, workdir: Optional[str] = None,
             listening_test: Optional[str] = None, expected_ranking: Sequence[str] = (),
             results_doc: Optional[str] = None, command: str = '', notes: str = '',
             balance_reference: str = '') -> dict:
  """Mixes every example of `split` with the references and `systems`, writes the results to `output`.

  Args:
    systems: from `systems.load_system` (the references, RAW and where the data
      knows its gains IDEAL, are added here, first).
    data_config: the full config whose data, seed and model.max_channels define
      the evaluation examples (with bleed as configured there).
    split: 'train', 'validation' or 'test'.
    output: the results folder (docs/evaluation.md).
    segment_seconds, segments_per_song: see `examples.eval_data_config` (None: the config's).
    severity_bins_count: equal-width bins over config.data.bleed.severity_db.
    overwrite: replace earlier results in `output`.
    progress: show a tqdm bar over the examples.
    workdir: where the pipeline keeps its RIR bank when config.data.bleed.cache_dir is ''.
    listening_test: 'mushra' or 'ranking': also write the blind listening test
      (`evaluation.listening_test`); None: don't.
    expected_ranking: system names, best first: summary.md says per metric
      whether the observed order reproduces it (`report.ranking_lines`).
    balance_reference: a system name: the "Balance by role" section pairs every other
      system's balance error with it (`report.role_lines`); '': no paired column.
    results_doc: also write summary.md's text there, headed by `command` (the
      command line that generated it) and followed by `notes` (markdown) under
      "Notes" (`report.results_doc_text`).
  Returns:
    dict of the written paths ('metrics', 'summary', 'bleed_plot', 'bleed_csv', 'index',
    with a listening test 'listening_test', 'listening_key', with `results_doc`
    'results_doc'), 'rows', the metric rows, and 'examples'.
  Raises:
    EvaluationError: names clash, a bad expected ranking (before any mixing), no
      examples, or a system cannot mix an example.
  """
  target = systems_lib.TARGET
  names = [s.name for s in systems]
  if set(names) & set(systems_lib.RESERVED) or len(set(names)) != len(names):
    raise systems_lib.EvaluationError(f'System names must be unique and not '
                                      f'{"/".join(systems_lib.RESERVED)}: {names}.')
  expected_ranking = list(expected_ranking)
  if expected_ranking:
    check_ranking_names(expected_ranking, names)
  if results_doc:
    check_results_doc(results_doc)
  if listening_test and (listening_test not in listening_test_lib.MODES
                         or listening_test_lib.ANCHOR in names):
    raise systems_lib.EvaluationError(
        f'A listening test needs a mode in {listening_test_lib.MODES} (got {listening_test!r}) and '
        f'no system named {listening_test_lib.ANCHOR} (the anchor): rename that checkpoint.')
  earlier_results(output, overwrite)  # before loading anything: a refusal costs nothing
  cfg = examples_lib.eval_data_config(data_config, split, segment_seconds=segment_seconds,
                                      segments_per_song=segments_per_song)
  examples = examples_lib.load_examples(cfg, split, workdir=workdir)
  rate = common.SAMPLE_RATE
  references, skipped = systems_lib.reference_systems(cfg, [e.target_gains for e in examples])
  all_systems = references + list(systems)
  if skipped and systems_lib.IDEAL in expected_ranking:
    raise systems_lib.EvaluationError(f'--expected_ranking names {systems_lib.IDEAL}, but {skipped} '
                                      f'Leave {systems_lib.IDEAL} out of the ranking.')
  # Only now, with every check passed: --overwrite must not delete results for a run that stops.
  prepare_output(output, overwrite)
  chunk_seconds = chunk_seconds_of(cfg)

  # A stereo mixer's page cell plays its stereo mix, beside the stereo target (TARGET stays the
  # mono target every system's mono mix is measured against).
  stereo_page = any(s.stereo for s in all_systems) and any(e.has_placement for e in examples)
  columns = [target] + ([systems_lib.TARGET_STEREO] if stereo_page else []) + [
      s.name for s in all_systems]
  rows, page_rows, trials = [], [], []
  slugs = {s.name: systems_lib.slugify(s.name) for s in all_systems}
  for ei, ex in enumerate(tqdm(examples, desc=f'Evaluating {split}', unit='segment',
                               disable=not progress)):
    os.makedirs(os.path.join(output, 'gains', ex.key), exist_ok=True)
    target_file = f'audio/{ex.key}/{target.lower()}.wav'
    listening_page.write_wav(os.path.join(output, target_file), ex.target, rate)
    mask = np.ones(ex.audio.shape[0], bool)
    cells = [listening_page.Cell(audio=target_file)]
    if stereo_page:
      cells.append(None)
      if ex.has_placement:
        stereo_target = f'audio/{ex.key}/stereo/{target.lower()}.wav'
        listening_page.write_wav(os.path.join(output, stereo_target), ex.target_stereo, rate)
        cells[-1] = listening_page.Cell(audio=stereo_target, caption='the designed placement')
    trials.append(listening_test_lib.TrialAudio(f'{ex.song_id} segment {ex.segment} ({ex.span})',
                                                ex.target, {}))
    for system in all_systems:
      out = system.mix_stereo(ex.audio, mask, target_gains=ex.target_gains,
                              chunk_seconds=chunk_seconds, where=ex.where)
      audio_file = f'audio/{ex.key}/{slugs[system.name]}.wav'
      plot_file = f'gains/{ex.key}/{slugs[system.name]}.png'
      listening_page.write_wav(os.path.join(output, audio_file), out['mix'], rate)
      title = f'{ex.song_id} segment {ex.segment} ({ex.span})'
      plots.plot_gains(out['gains'], system.frame_seconds, ex.channel_names,
                       os.path.join(output, plot_file), title=f'{system.name}: {title}')
      stereo_file = pan_file = ''
      if system.stereo:
        stereo_file = f'audio/{ex.key}/stereo/{slugs[system.name]}.wav'
        listening_page.write_wav(os.path.join(output, stereo_file), out['stereo'], rate)
        pan_file = f'pans/{ex.key}/{slugs[system.name]}.png'
        os.makedirs(os.path.join(output, 'pans', ex.key), exist_ok=True)
        plot_stereo_image(out['pans'], ex, system.frame_seconds, os.path.join(output, pan_file),
                          f'{system.name}: {title}')
      row = {'song_id': ex.song_id, 'segment': ex.segment, 'start_seconds': ex.start_seconds,
             'num_channels': ex.audio.shape[0], 'seconds': ex.audio.shape[1] / rate,
             'bleed_severity_db': ex.bleed_severity_db, 'system': system.name,
             'step': system.step if system.step is not None else '', 'audio': audio_file,
             'gain_plot': plot_file, 'stereo_audio': stereo_file, 'pan_plot': pan_file,
             '_example': ei}
      row.update(measure(system, ex, out['mix'], out['gains'], cfg.loss, pans=out['pans'],
                         stereo_mix=out['stereo']))
      if ex.target_gains is not None:  # each channel's signed error, for the section by role
        row['_roles'] = ex.roles
        row['_signed_db'] = metrics.balance_error_db(out['gains'], ex.target_gains,
                                                     per_channel=True)
      rows.append(row)
      trials[-1].mixes[system.name] = audio_file  # the blind test compares the mono mixes
      caption = (f'MR-STFT {row["mr_stft"]:.3f} · ΔL {row["loudness_diff_lu"]:+.1f} LU · '
                 f'SI-SDR {row["si_sdr_db"]:.1f} dB')
      if system.stereo and ex.has_placement:
        caption += f' · pan error {row["pan_error"]:.2f}'
      cells.append(listening_page.Cell(audio=stereo_file or audio_file, image=plot_file,
                                       caption=caption, pan_image=pan_file or None))
    severity = ('no bleed' if ex.bleed_severity_db == bleed.BLEED_OFF_DB
                else f'bleed {ex.bleed_severity_db:.1f} dB')
    page_rows.append(listening_page.Row(
        title=ex.song_id, details=[f'segment {ex.segment}: {ex.span}',
                                   f'{ex.audio.shape[1] / rate:.1f} s, '
                                   f'{ex.audio.shape[0]} channels', severity],
        cells=cells))

  paths = {'metrics': os.path.join(output, 'metrics.csv'),
           'summary': os.path.join(output, 'summary.md'),
           'bleed_plot': os.path.join(output, 'bleed_robustness.png'),
           'bleed_csv': os.path.join(output, 'bleed_robustness.csv'),
           'index': os.path.join(output, 'index.html')}
  report.write_metrics_csv(paths['metrics'], rows)

  sys_names = [s.name for s in all_systems]
  labels, bin_of = report.severity_bins([e.bleed_severity_db for e in examples],
                                        cfg.data.bleed.severity_db, severity_bins_count)
  counts = [int(np.sum(bin_of == b)) for b in range(len(labels))]
  table = report.bleed_table(rows, sys_names, labels, bin_of)
  report.write_bleed_csv(paths['bleed_csv'], table, sys_names, labels, counts)
  plots.plot_bleed_robustness(paths['bleed_plot'], table, sys_names,
                              [(m, heading) for m, heading, _ in report.METRICS], labels, counts,
                              f'{cfg.data.name} {split}: metrics against simulated bleed severity')
  has_balance = any(e.target_gains is not None for e in examples)
  mode = report.mode_text(cfg, segment_seconds == 0)
  summary = report.summary_text(rows, all_systems, cfg, split, examples, labels, counts, table,
                               has_balance, mode, skipped=[skipped] if skipped else [],
                               expected_ranking=expected_ranking,
                               stereo=any(e.has_placement for e in examples),
                               balance_reference=balance_reference)

  outputs.atomic_write_text(paths['summary'], summary)
  if results_doc:
    os.makedirs(os.path.dirname(os.path.abspath(results_doc)), exist_ok=True)
    outputs.atomic_write_text(results_doc, report.results_doc_text(summary, command, notes))
    paths['results_doc'] = results_doc
  page = listening_page.render(
      f'Listening page: {cfg.data.name}, {split} split', columns, page_rows,
      notes=report.page_notes(cfg, split, examples, has_balance, mode,
                              ideal=systems_lib.IDEAL in sys_names,
                              stereo_target=systems_lib.TARGET_STEREO if stereo_page else ''),
      systems_header=('system', 'checkpoint', 'step', 'how it was evaluated'),
      systems=[(s.name, s.checkpoint or '-', '' if s.step is None else s.step, s.note or '')
               for s in all_systems])
  listening_page.write(paths['index'], page)
  if listening_test:
    written = listening_test_lib.write(output, trials, rate, mode=listening_test,
                                       seed=int(cfg.seed),
                                       title=f'Listening test: {cfg.data.name}, {split} split')
    paths.update(listening_test=written['page'], listening_key=written['key'])
  logging.info('Evaluation written to %s', output)
  return {**paths, 'rows': rows, 'examples': examples}
