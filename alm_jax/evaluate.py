r"""Objective evaluation of trained mixers and a listening page (see docs/evaluation.md).

    python -m alm_jax.evaluate --checkpoints=ALM-MR=/tmp/alm_mr,DMC-OG=/tmp/dmc_og \
        --split=test --output=/tmp/eval --data_config=configs/mr.py
    python -m alm_jax.evaluate ... --segment_seconds=0          # whole songs

Every song segment of the split is mixed by each checkpoint and by RAW (the
plain sum of the inputs), and DIR receives:

  metrics.csv            one row per segment x system
  summary.md             one row per system: mean +- std of every metric
  bleed_robustness.png   the metrics against bins of simulated bleed severity
  bleed_robustness.csv   the numbers behind that plot
  index.html             the listening page (opens from disk), with
  audio/<segment>/*.wav  the mixes, the RAW sum and the target mix
  gains/<segment>/*.png  the gain plots

Same inputs for every system: the segments, channel orders, bleed and input
levels come from `alm_jax.data.pipeline.make_eval_batches`, which draws them
from (seed, split, song, window) only, so all systems hear identical audio and
reruns reproduce it. The batches' metadata says which raw track each channel
holds, the input level applied to it and (synthetic_live) its designed gain in
the target mix: these name the channels in the gain plots and give the target
balance. The data settings are those of --data_config, or else of the first
checkpoint's saved config.

How each system mixes (no output normalisation, ever):
  * RAW: the sum of the input channels (gains 1).
  * ALM, and DMC with per-frame gains (DMC-B-0L): the chunked causal mixer of
    `alm_jax.mix`, at zero latency. A checkpoint trained with
    `model.zero_latency = False` is evaluated with it forced on (its gains
    arrive one F2 frame late, as they would live); the summary says so.
  * DMC with one gain per segment (DMC-OG, `dmc_per_frame = False`): evaluated
    as published, non-causal. Its input is cut into consecutive segments of its
    training segment length (config.data.segment_seconds) and each segment is
    mixed with gains computed from that whole segment.
"""

import copy
import csv
import dataclasses
import math
import os
import re
import shutil
import sys
from typing import Any, Optional, Sequence

from absl import logging
import numpy as np

from alm_jax import audio_io
from alm_jax import listening_page
from alm_jax import metrics

RAW = 'RAW'
TARGET = 'TARGET'
METRICS = (  # (csv column, summary heading, format)
    ('mr_stft', 'MR-STFT distance', '{:.3f}'),
    ('loudness_diff_lu', 'Loudness diff. (LU)', '{:+.2f}'),
    ('si_sdr_db', 'SI-SDR (dB)', '{:.2f}'),
    ('gain_smoothness_db_per_s', 'Gain change (dB/s)', '{:.2f}'),
    ('clipping_fraction', 'Clipping (fraction)', '{:.2e}'),
    ('balance_error_db', 'Balance error (dB)', '{:.2f}'),
)
CSV_COLUMNS = ('song_id', 'segment', 'start_seconds', 'num_channels', 'seconds',
               'bleed_severity_db', 'system', 'step') + tuple(m[0] for m in METRICS) + (
                   'audio', 'gain_plot')
OUTPUT_FILES = ('metrics.csv', 'summary.md', 'bleed_robustness.png', 'bleed_robustness.csv',
                'index.html')
OUTPUT_DIRS = ('audio', 'gains')
DEFAULT_SEVERITY_BINS = 4


class EvaluationError(ValueError):
  """Evaluation cannot run as asked; the message says what to change."""


class CheckpointError(EvaluationError):
  """A checkpoint cannot be restored (missing, or not matching its config); names it."""


# ---------------------------------------------------------------------------
# Systems
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class System:
  """One mixer under evaluation.

  Attributes:
    name: column name (unique).
    kind: 'raw' (sum of the inputs), 'causal' (the chunked mixer of
      alm_jax.mix) or 'per_segment' (DMC-OG: the model call on whole segments).
    config: the full config used to mix (None for RAW).
    params: the parameters (None for RAW).
    step: the checkpoint's training step.
    checkpoint: where it was restored from.
    note: how it was evaluated, when that differs from its training config.
  """
  name: str
  kind: str
  config: Any = None
  params: Any = None
  step: Optional[int] = None
  checkpoint: str = ''
  note: str = ''


def parse_checkpoints(spec: str) -> list[tuple[str, str]]:
  """'NAME=PATH,NAME=PATH' -> [(name, path)] (an empty spec evaluates RAW only).

  Raises:
    EvaluationError: an entry without NAME=, an empty name or path, a name used
      twice (also after making it file-name safe) or the reserved names RAW and TARGET.
  """
  out, slugs = [], {RAW.lower(): RAW, TARGET.lower(): TARGET}
  for entry in [e.strip() for e in (spec or '').split(',') if e.strip()]:
    name, sep, path = entry.partition('=')
    name, path = name.strip(), path.strip()
    if not sep or not name or not path:
      raise EvaluationError(f'--checkpoints entry {entry!r} is not NAME=PATH (e.g. '
                            'ALM-MR=/tmp/alm_mr,DMC-OG=/tmp/dmc_og).')
    slug = slugify(name).lower()
    if slug in slugs:
      clash = slugs[slug]
      what = 'is reserved' if clash in (RAW, TARGET) else f'clashes with {clash!r}'
      raise EvaluationError(f'--checkpoints name {name!r} {what} (names must be unique, also as '
                            'file names, and RAW / TARGET are added by the evaluation itself).')
    slugs[slug] = name
    out.append((name, path))
  return out


def load_system(name: str, path: str) -> System:
  """Restores a checkpoint and decides how it mixes (module docstring).

  Raises:
    CheckpointError: the checkpoint is missing, unreadable, or its parameters do
      not match its saved config; the message names the checkpoint.
  """
  from alm_jax import checkpoints  # pylint: disable=g-import-not-at-top
  try:
    config, params, step = checkpoints.restore_params(path)
  except Exception as e:  # orbax and the config check raise several types; all end here
    raise CheckpointError(f'Cannot evaluate checkpoint {name}={path}: {type(e).__name__}: {e}') from e
  model = config.model
  if int(model.sample_rate) != _data_rate():
    raise CheckpointError(f'Checkpoint {name}={path} mixes at {model.sample_rate} Hz; the datasets '
                          f'are at {_data_rate()} Hz.')
  if model.name == 'dmc' and not model.get('dmc_per_frame', False):
    if model.get('zero_latency', False):
      raise CheckpointError(f'Checkpoint {name}={path} is a per-segment DMC with zero_latency=True, '
                            'which has no defined offline mix (dmc.mix_by_segments); DMC-OG is '
                            'trained with zero_latency=False (configs/dmc_og.py).')
    note = ('non-causal as published: one gain per channel per '
            f'{float(config.data.segment_seconds):g} s segment, computed from the whole segment')
    return System(name, 'per_segment', config, params, step, path, note)
  note = ''
  if not model.get('zero_latency', False):
    config = copy.deepcopy(config)
    with config.unlocked():
      config.model.zero_latency = True
    note = ('zero latency forced: trained with zero_latency=False, its gains are applied one F2 '
            'frame late')
    logging.warning('%s: %s.', name, note)
  return System(name, 'causal', config, params, step, path, note)


def _data_rate() -> int:
  from alm_jax.data import common  # pylint: disable=g-import-not-at-top
  return int(common.SAMPLE_RATE)


def slugify(name: str) -> str:
  """A file-name-safe version of `name` (letters, digits, '.', '_', '-')."""
  slug = re.sub(r'[^A-Za-z0-9._-]+', '_', name).strip('._')
  return slug or 'x'


# ---------------------------------------------------------------------------
# Evaluation data
# ---------------------------------------------------------------------------


@dataclasses.dataclass
class Example:
  """One song segment, as every system receives it.

  Attributes:
    song_id: the dataset's song id.
    segment: the window's index within the song (0 in whole-song mode).
    audio: float32 [channels, samples], the pipeline's inputs (bleed and levels applied).
    target: float32 [samples], the target mix.
    bleed_severity_db: the simulated severity (bleed.BLEED_OFF_DB when none).
    channel_names: one label per channel ('2: bass').
    target_gains: float64 [channels] linear gains that turn each input channel's
      own source into its level in the target mix, or None when the dataset does
      not know them (MedleyDB).
    start_seconds: where the segment starts in the song.
  """
  song_id: str
  segment: int
  audio: np.ndarray
  target: np.ndarray
  bleed_severity_db: float
  channel_names: list
  target_gains: Optional[np.ndarray]
  start_seconds: float = 0.0

  @property
  def key(self) -> str:
    return f'{slugify(self.song_id)}_seg{self.segment:02d}'

  @property
  def span(self) -> str:
    """'0:12.0-0:32.0': where the segment lies in the song."""
    end = self.start_seconds + self.audio.shape[-1] / _data_rate()
    return f'{_clock(self.start_seconds)}–{_clock(end)}'


def _clock(seconds: float) -> str:
  minutes, rest = divmod(max(float(seconds), 0.0), 60.0)
  if rest >= 59.95:  # would print as 60.0
    minutes, rest = minutes + 1, 0.0
  return f'{int(minutes)}:{rest:04.1f}'


def eval_data_config(config, split: str, *, segment_seconds: Optional[float] = None,
                     segments_per_song: Optional[int] = None):
  """A copy of `config` whose evaluation batches are this evaluation's examples.

  segment_seconds: None keeps config.data.eval_segment_seconds; 0 means whole
  songs (one window as long as the longest song; shorter songs are cut back to
  their length). segments_per_song: None keeps config.data.eval_segments_per_song.
  Batches hold one example each, so no padding example costs a bleed simulation.
  """
  from alm_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  cfg = copy.deepcopy(config)
  with cfg.unlocked():
    if segment_seconds is not None and segment_seconds < 0:
      raise EvaluationError(f'--segment_seconds must be >= 0 (0: whole songs), got {segment_seconds}.')
    if segment_seconds == 0:
      songs = pipeline.load_songs(cfg, split)
      if not songs:
        raise EvaluationError(f'The {split!r} split of {cfg.data.name!r} has no songs.')
      cfg.data.eval_segment_seconds = max(s.num_samples for s in songs) / _data_rate()
      cfg.data.eval_segments_per_song = 1
    elif segment_seconds is not None:
      cfg.data.eval_segment_seconds = float(segment_seconds)
    if segments_per_song is not None:
      if segments_per_song < 1:
        raise EvaluationError(f'--segments_per_song must be >= 1, got {segments_per_song}.')
      if segment_seconds != 0:
        cfg.data.eval_segments_per_song = int(segments_per_song)
    cfg.train.batch_size = 1
  return cfg


def load_examples(config, split: str, *, workdir: Optional[str] = None) -> list[Example]:
  """The examples of `split` under `config` (see `eval_data_config`), in pipeline order.

  Channel names, target gains and segment starts come from the batches'
  metadata (alm_jax.data.pipeline): which raw track each shuffled channel
  holds, the input level applied to it, and the dataset's designed mix gains.

  Raises:
    EvaluationError: the split has no songs.
  """
  from alm_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  lengths = {s.song_id: s.num_samples for s in pipeline.load_songs(config, split)}
  batches = pipeline.make_eval_batches(config, split, workdir=workdir)
  if not batches:
    raise EvaluationError(f'The {split!r} split of {config.data.name!r} has no songs to evaluate; '
                          'check config.data (name, data_dir, max_raw_tracks) and --split.')
  examples, windows = [], {}
  for batch in batches:
    for e in np.flatnonzero(batch['example_mask']):
      song_id = batch['song_id'][e]
      c = int(np.sum(batch['channel_mask'][e]))
      n = min(batch['audio'].shape[-1], lengths[song_id])  # a song shorter than the window
      w = windows.get(song_id, 0)
      windows[song_id] = w + 1
      names = [f'{i + 1}: {name}' if name else f'ch{i + 1}'
               for i, name in enumerate(batch['instruments'][e][:c])]
      examples.append(Example(
          song_id, w, np.asarray(batch['audio'][e, :c, :n], np.float32),
          np.asarray(batch['target'][e, :n], np.float32), float(batch['bleed_severity'][e]),
          names, input_target_gains(batch['target_gains'][e, :c], batch['input_gain_db'][e, :c]),
          float(batch['segment_start'][e])))
  return examples


def input_target_gains(track_gains, input_gain_db) -> Optional[np.ndarray]:
  """Ideal gains of the input channels: float64 [c], or None where a track's gain is unknown.

  A channel's own source reaches the input at input_gain_db (pre- plus
  post-bleed level) and the target mix at track_gains, so the gain that puts it
  at its target level is their ratio. Without bleed, sum_i gain_i * input_i is
  then the target mix.
  """
  track_gains = np.asarray(track_gains, np.float64)
  if not np.isfinite(track_gains).all():
    return None
  return track_gains / 10.0 ** (np.asarray(input_gain_db, np.float64) / 20.0)


# ---------------------------------------------------------------------------
# Mixing
# ---------------------------------------------------------------------------


class Mixers:
  """Mixes an example with each system; compiles each system once per run."""

  def __init__(self, systems: Sequence[System], data_config, chunk_seconds: float):
    from alm_jax import frames  # pylint: disable=g-import-not-at-top
    self.systems = list(systems)
    self.chunk_seconds = chunk_seconds
    spec = frames.FrameSpec.from_config(data_config.model)
    self.raw_frame_seconds = spec.f2 / spec.sample_rate

  def frame_seconds(self, system: System) -> float:
    from alm_jax import frames  # pylint: disable=g-import-not-at-top
    if system.kind == 'raw':
      return self.raw_frame_seconds
    spec = frames.FrameSpec.from_config(system.config.model)
    return spec.f2 / spec.sample_rate

  def __call__(self, system: System, example: Example):
    """-> (mix float32 [n], gains float32 [c, frames]) of `example` by `system`."""
    audio = example.audio
    c, n = audio.shape
    if system.kind == 'raw':
      frames_ = -(-n // int(round(self.raw_frame_seconds * _data_rate())))
      return audio.sum(axis=0), np.ones((c, frames_), np.float32)
    cmax = int(system.config.model.max_channels)
    if c > cmax:
      raise EvaluationError(f'{example.song_id} has {c} channels, more than the {cmax} of '
                            f'{system.name} (config.model.max_channels); evaluate on data with '
                            'fewer channels or drop that checkpoint.')
    from alm_jax import mix as mix_lib  # pylint: disable=g-import-not-at-top
    padded = np.zeros((1, cmax, n), np.float32)
    padded[0, :c] = audio
    mask = np.zeros((1, cmax), bool)
    mask[0, :c] = True
    # Causal models chunk by chunk; DMC-OG segment by segment, each segment of its
    # training length completed with silence (alm_jax.mix.SegmentMixer).
    out = mix_lib.mix_arrays(system.config, system.params, padded, mask,
                             chunk_seconds=self.chunk_seconds)
    mix, gains = out['mix'][0], out['gains'][0, :c]
    if not (np.isfinite(mix).all() and np.isfinite(gains).all()):
      raise EvaluationError(f'{system.name} ({system.checkpoint}) produced NaN/Inf on '
                            f'{example.song_id} segment {example.segment}: its parameters are '
                            'broken (diverged training?); evaluate an earlier checkpoint.')
    return mix, gains


# ---------------------------------------------------------------------------
# Metrics
# ---------------------------------------------------------------------------


def segment_metrics(mix, target, gains, frame_seconds: float, target_gains, rate: int) -> dict:
  """Every metric but the MR-STFT distance (computed batched) of one mix; NaN where undefined."""
  c = gains.shape[0]
  mask = np.ones(c, bool)
  row = {
      'loudness_diff_lu': metrics.loudness_difference(mix, target, rate),
      'si_sdr_db': float(metrics.si_sdr(mix, target)),
      'gain_smoothness_db_per_s': (float(metrics.gain_smoothness_db_per_s(gains, frame_seconds, mask))
                                   if gains.shape[-1] >= 2 else float('nan')),
      'clipping_fraction': float(metrics.clipping_fraction(mix)),
      'balance_error_db': (float(metrics.balance_error_db(gains, target_gains, mask))
                           if target_gains is not None else float('nan')),
  }
  return row


def _format_value(v) -> str:
  """CSV cell: '' for NaN (not available / undefined), 'inf' / '-inf', else 7 significant digits."""
  if v is None or (isinstance(v, float) and math.isnan(v)):
    return ''
  if isinstance(v, float):
    if math.isinf(v):
      return 'inf' if v > 0 else '-inf'
    return f'{v:.7g}'
  return str(v)


def summarize(values: Sequence[float], fmt: str) -> str:
  """'mean ± std' over the finite values, plus how many were +inf / -inf / undefined."""
  v = np.asarray(values, np.float64)
  finite = v[np.isfinite(v)]
  notes = []
  for count, label in ((np.sum(v == np.inf), '+inf'), (np.sum(v == -np.inf), '-inf'),
                       (np.sum(np.isnan(v)), 'n/a')):
    if count:
      notes.append(f'{int(count)}× {label}')
  if finite.size == 0:
    # Nothing to average: all undefined (e.g. no target balance), or all infinite.
    return 'n/a' if np.isnan(v).all() else ', '.join(notes)
  text = f'{fmt.format(finite.mean())} ± {fmt.format(finite.std()).lstrip("+")}'
  return text + (f' ({", ".join(notes)})' if notes else '')


# ---------------------------------------------------------------------------
# Bleed robustness
# ---------------------------------------------------------------------------


def severity_bins(severities, severity_range, num_bins: int):
  """Bins of the simulated bleed severity.

  Returns:
    (labels [k], bin index per example [n]): equal-width bins over
    `severity_range` (widened to the observed values), plus a first 'no bleed'
    bin when some examples had none (severity bleed.BLEED_OFF_DB).
  """
  from alm_jax.data import bleed  # pylint: disable=g-import-not-at-top
  s = np.asarray(severities, np.float64)
  off = s == bleed.BLEED_OFF_DB
  labels, index = [], np.zeros(s.shape, int)
  if off.any():
    labels.append('no bleed')
  if (~off).any():
    lo = min(float(severity_range[0]), float(s[~off].min()))
    hi = max(float(severity_range[1]), float(s[~off].max()))
    if hi <= lo:
      hi = lo + 1.0
    edges = np.linspace(lo, hi, max(1, int(num_bins)) + 1)
    first = len(labels)
    labels += [f'{a:.0f}..{b:.0f} dB' for a, b in zip(edges[:-1], edges[1:])]
    index[~off] = first + np.clip(np.digitize(s[~off], edges[1:-1]), 0, len(edges) - 2)
  return labels, index


def bleed_table(rows: Sequence[dict], systems: Sequence[str], labels, index_of_example):
  """{(system, bin, metric): (mean over the bin's finite values or NaN, count)}."""
  table = {}
  for system in systems:
    sys_rows = [r for r in rows if r['system'] == system]
    for b in range(len(labels)):
      in_bin = [r for r in sys_rows if index_of_example[r['_example']] == b]
      for metric, _, _ in METRICS:
        v = np.asarray([r[metric] for r in in_bin], np.float64)
        v = v[np.isfinite(v)]
        table[(system, b, metric)] = (float(v.mean()) if v.size else float('nan'), len(in_bin))
  return table


def plot_bleed_robustness(path, table, systems, labels, counts, title: str):
  """One panel per metric: its mean per severity bin, one line per system."""
  import matplotlib  # pylint: disable=g-import-not-at-top
  matplotlib.use('Agg')  # headless, as alm_jax.plots
  import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  fig, axes = plt.subplots(2, 3, figsize=(15, 8), dpi=90)
  x = np.arange(len(labels))
  ticks = [f'{lab}\n(n={n})' for lab, n in zip(labels, counts)]
  try:
    for ax, (metric, heading, _) in zip(axes.flat, METRICS):
      drawn = False
      for system in systems:
        y = np.array([table[(system, b, metric)][0] for b in range(len(labels))])
        ok = np.isfinite(y)  # empty bins are skipped, the line joins the others
        if ok.any():
          ax.plot(x[ok], y[ok], marker='o', label=system)
          drawn = True
      if not drawn:
        ax.text(0.5, 0.5, 'not available', ha='center', va='center', transform=ax.transAxes)
      ax.set_title(heading)
      ax.set_xticks(x, ticks, fontsize='small')
      ax.set_xlabel('bleed severity (bleed / direct energy)')
      ax.grid(True, alpha=0.3)
    axes.flat[0].legend(fontsize='small')
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(os.fspath(path))
  finally:
    plt.close(fig)


# ---------------------------------------------------------------------------
# The evaluation
# ---------------------------------------------------------------------------


def _prepare_output(output: str, overwrite: bool):
  os.makedirs(output, exist_ok=True)
  ours = [p for p in OUTPUT_FILES + OUTPUT_DIRS if os.path.exists(os.path.join(output, p))]
  if ours and not overwrite:
    raise FileExistsError(f'{output} already holds evaluation results ({", ".join(ours)}); pass '
                          '--overwrite or choose another --output.')
  for p in ours:
    full = os.path.join(output, p)
    if os.path.isdir(full):
      shutil.rmtree(full)
    else:
      os.remove(full)


def evaluate(systems: Sequence[System], data_config, split: str, output: str, *,
             segment_seconds: Optional[float] = None, segments_per_song: Optional[int] = None,
             severity_bins_count: int = DEFAULT_SEVERITY_BINS, overwrite: bool = False,
             progress: bool = True, workdir: Optional[str] = None) -> dict:
  """Mixes every example of `split` with RAW and `systems` and writes the results to `output`.

  Args:
    systems: from `load_system` (RAW is added here, first).
    data_config: the full config whose data, seed and model.max_channels define
      the evaluation examples (with bleed as configured there).
    split: 'train', 'validation' or 'test'.
    output: the results folder (module docstring).
    segment_seconds, segments_per_song: see `eval_data_config` (None: the config's).
    severity_bins_count: equal-width bins over config.data.bleed.severity_db.
    overwrite: replace earlier results in `output`.
    progress: show a tqdm bar over the examples.
    workdir: where the pipeline keeps its RIR bank when config.data.bleed.cache_dir is ''.
  Returns:
    dict of the written paths ('metrics', 'summary', 'bleed_plot', 'bleed_csv', 'index') and
    'rows', the metric rows.
  """
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top
  from alm_jax import plots  # pylint: disable=g-import-not-at-top

  names = [s.name for s in systems]
  if RAW in names or TARGET in names or len(set(names)) != len(names):
    raise EvaluationError(f'System names must be unique and not {RAW}/{TARGET}: {names}.')
  _prepare_output(output, overwrite)
  cfg = eval_data_config(data_config, split, segment_seconds=segment_seconds,
                         segments_per_song=segments_per_song)
  examples = load_examples(cfg, split, workdir=workdir)
  rate = _data_rate()
  all_systems = [System(RAW, 'raw', note='plain sum of the inputs')] + list(systems)
  eval_seconds = float(cfg.data.eval_segment_seconds)
  from alm_jax import mix as mix_lib  # pylint: disable=g-import-not-at-top
  mixers = Mixers(all_systems, cfg, chunk_seconds=min(mix_lib.DEFAULT_CHUNK_SECONDS, eval_seconds))

  rows, page_rows = [], []
  slugs = {s.name: slugify(s.name) for s in all_systems}
  for ei, ex in enumerate(tqdm(examples, desc=f'Evaluating {split}', unit='segment',
                               disable=not progress)):
    os.makedirs(os.path.join(output, 'gains', ex.key), exist_ok=True)
    target_file = f'audio/{ex.key}/{TARGET.lower()}.wav'
    _write_listening_wav(os.path.join(output, target_file), ex.target, rate)
    outs = [mixers(s, ex) for s in all_systems]
    # One batched call for all systems: the distance compiles once per segment length.
    distances = metrics.mr_stft_distance(np.stack([m for m, _ in outs]),
                                         np.broadcast_to(ex.target, (len(outs), ex.target.size)),
                                         cfg.loss)
    cells = [listening_page.Cell(audio=target_file)]
    for system, (mix, gains), dist in zip(all_systems, outs, distances):
      frame_seconds = mixers.frame_seconds(system)
      audio_file = f'audio/{ex.key}/{slugs[system.name]}.wav'
      plot_file = f'gains/{ex.key}/{slugs[system.name]}.png'
      _write_listening_wav(os.path.join(output, audio_file), mix, rate)
      plots.plot_gains(gains, frame_seconds, ex.channel_names, os.path.join(output, plot_file),
                       scale='db', title=f'{system.name}: {ex.song_id} segment {ex.segment} '
                                         f'({ex.span})')
      row = {'song_id': ex.song_id, 'segment': ex.segment, 'start_seconds': ex.start_seconds,
             'num_channels': ex.audio.shape[0],
             'seconds': ex.audio.shape[1] / rate, 'bleed_severity_db': ex.bleed_severity_db,
             'system': system.name, 'step': system.step if system.step is not None else '',
             'mr_stft': float(dist), 'audio': audio_file, 'gain_plot': plot_file, '_example': ei}
      row.update(segment_metrics(mix, ex.target, gains, frame_seconds, ex.target_gains, rate))
      rows.append(row)
      cells.append(listening_page.Cell(
          audio=audio_file, image=plot_file,
          caption=(f'MR-STFT {row["mr_stft"]:.3f} · ΔL {row["loudness_diff_lu"]:+.1f} LU · '
                   f'SI-SDR {row["si_sdr_db"]:.1f} dB')))
    severity = ('no bleed' if ex.bleed_severity_db == _bleed_off_db()
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
  _write_metrics_csv(paths['metrics'], rows)

  sys_names = [s.name for s in all_systems]
  labels, bin_of = severity_bins([e.bleed_severity_db for e in examples],
                                 cfg.data.bleed.severity_db, severity_bins_count)
  counts = [int(np.sum(bin_of == b)) for b in range(len(labels))]
  table = bleed_table(rows, sys_names, labels, bin_of)
  _write_bleed_csv(paths['bleed_csv'], table, sys_names, labels, counts)
  plot_bleed_robustness(paths['bleed_plot'], table, sys_names, labels, counts,
                        f'{cfg.data.name} {split}: metrics against simulated bleed severity')
  has_balance = any(e.target_gains is not None for e in examples)
  mode = _mode_text(cfg, segment_seconds == 0)
  _write_summary(paths['summary'], rows, all_systems, cfg, split, examples, labels, counts, table,
                 has_balance, mode)
  notes = _page_notes(cfg, split, examples, has_balance, mode)
  page = listening_page.render(
      f'Listening page: {cfg.data.name}, {split} split', [TARGET] + sys_names, page_rows,
      notes=notes, systems_header=('system', 'checkpoint', 'step', 'how it was evaluated'),
      systems=[(s.name, s.checkpoint or '-', '' if s.step is None else s.step, s.note or '')
               for s in all_systems])
  listening_page.write(paths['index'], page)
  logging.info('Evaluation written to %s', output)
  return {**paths, 'rows': rows}


def _bleed_off_db() -> float:
  from alm_jax.data import bleed  # pylint: disable=g-import-not-at-top
  return float(bleed.BLEED_OFF_DB)


def _write_listening_wav(path, audio, rate):
  # 16-bit PCM plays in every browser; like a desk's output it clips at full scale
  # (the metrics, including the clipping fraction, use the unclipped float mix).
  audio_io.write_wav(path, np.clip(audio, -1.0, 1.0), rate, subtype='PCM_16')


def _write_metrics_csv(path, rows):
  with open(path, 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f)
    writer.writerow(CSV_COLUMNS)
    for r in rows:
      writer.writerow([_format_value(r[k]) for k in CSV_COLUMNS])


def _write_bleed_csv(path, table, systems, labels, counts):
  with open(path, 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f)
    writer.writerow(['system', 'severity_bin', 'segments'] + [m[0] for m in METRICS])
    for system in systems:
      for b, label in enumerate(labels):
        writer.writerow([system, label, counts[b]]
                        + [_format_value(table[(system, b, m)][0]) for m, _, _ in METRICS])


def _mode_text(cfg, whole_songs: bool) -> str:
  if whole_songs:
    return 'whole songs'
  return (f'{float(cfg.data.eval_segment_seconds):g} s segments, up to '
          f'{int(cfg.data.eval_segments_per_song)} per song')


def _page_notes(cfg, split, examples, has_balance, mode):
  songs = len({e.song_id for e in examples})
  bleed_on = bool(cfg.data.bleed.enabled)
  notes = [
      f'{len(examples)} segments of {songs} songs ({mode}), dataset '
      f'{cfg.data.name}, {split} split, seed {int(cfg.seed)}. Every system hears the same inputs: '
      + ('simulated bleed and input levels drawn once per segment from the seed.' if bleed_on
         else 'no bleed simulation; input levels drawn once per segment from the seed.'),
      'Mixes are not normalised: every system is at zero latency except where the systems table '
      'says otherwise. The WAV files are 16-bit, so a mix above full scale clips here as it '
      'would at a desk output. TARGET is the reference mix.',
      'Gain plots show each channel\'s applied gain in dB (floored at -60 dB).',
  ]
  if not has_balance:
    notes.append('This dataset does not store its target balance, so no balance error is given.')
  return notes


def _write_summary(path, rows, systems, cfg, split, examples, labels, counts, table, has_balance,
                   mode):
  lines = [f'# Evaluation: {cfg.data.name}, {split} split', '',
           f'{len(examples)} segments of {len({e.song_id for e in examples})} songs '
           f'({mode}); seed {int(cfg.seed)}; bleed simulation '
           f'{"on" if cfg.data.bleed.enabled else "off"}; input level randomisation '
           f'{"on" if cfg.data.levels.enabled else "off"}. Mean ± std over segments.', '']
  header = ['System', 'Checkpoint', 'Step', 'n'] + [m[1] for m in METRICS]
  lines.append('| ' + ' | '.join(header) + ' |')
  lines.append('|' + '---|' * len(header))
  for s in systems:
    sys_rows = [r for r in rows if r['system'] == s.name]
    cells = [s.name, f'`{s.checkpoint}`' if s.checkpoint else '-',
             '' if s.step is None else str(s.step), str(len(sys_rows))]
    cells += [summarize([r[m] for r in sys_rows], fmt) for m, _, fmt in METRICS]
    lines.append('| ' + ' | '.join(cells) + ' |')
  lines.append('')
  notes = [s for s in systems if s.note and s.kind != 'raw']
  if notes:
    lines += ['How the systems were evaluated (all others: causal, zero latency):', '']
    lines += [f'- **{s.name}**: {s.note}.' for s in notes]
    lines.append('')
  lines += ['## MR-STFT distance against bleed severity', '',
            '| System | ' + ' | '.join(f'{lab} (n={n})' for lab, n in zip(labels, counts)) + ' |',
            '|' + '---|' * (len(labels) + 1)]
  for s in systems:
    vals = [table[(s.name, b, 'mr_stft')][0] for b in range(len(labels))]
    lines.append(f'| {s.name} | ' + ' | '.join('' if math.isnan(v) else f'{v:.3f}' for v in vals)
                 + ' |')
  lines += ['', 'All metrics per bin: `bleed_robustness.csv` and `bleed_robustness.png`.', '',
            '## Metrics', '',
            '- MR-STFT distance: the training loss (auraloss multi-resolution STFT) of the mix '
            'against the target mix; 0 for identical signals.',
            '- Loudness diff.: integrated loudness (ITU-R BS.1770-4) of the mix minus that of the '
            'target, in LU.',
            '- SI-SDR: scale-invariant SDR of the mix against the target; +inf only for a mix '
            'identical to the target up to scale. Non-finite values are left out of mean ± std '
            'and counted in brackets.',
            '- Gain change: mean absolute change of the applied gain in dB per second, over '
            'channels and frame transitions (0 for constant gains).',
            '- Clipping: fraction of samples with |mix| > 1.',
            ('- Balance error: mean absolute difference over channels of each channel\'s gain '
             'relative to the channels\' mean (dB, time-averaged) against the same for the '
             'dataset\'s designed balance (its mixing gains, corrected for the drawn input levels).'
             if has_balance else
             '- Balance error: n/a — this dataset does not store its target balance (MedleyDB '
             'gives the mix, not per-track mixing gains).'), '']
  with open(path, 'w', encoding='utf-8') as f:
    f.write('\n'.join(lines))


# ---------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------


def define_flags(flag_values):
  """Defines the CLI flags on `flag_values` (absl FlagValues)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from ml_collections import config_flags  # pylint: disable=g-import-not-at-top
  kw = dict(flag_values=flag_values)
  flags.DEFINE_string('checkpoints', '', 'NAME=PATH[,NAME=PATH...]: training workdirs (latest '
                      'step) or step directories. RAW is always evaluated too.', **kw)
  flags.DEFINE_string('split', 'test', 'Dataset split to evaluate.', **kw)
  flags.DEFINE_string('output', None, 'Results folder.', required=True, **kw)
  config_flags.DEFINE_config_file('data_config', None, 'Config file whose data section (and seed, '
                                  'max_channels) defines the evaluation data; default: the first '
                                  "checkpoint's saved config.", lock_config=False, **kw)
  flags.DEFINE_string('data_dir', '', 'Overrides config.data.data_dir (the tfds data folder).', **kw)
  flags.DEFINE_float('segment_seconds', None, 'Segment length; 0: whole songs; default: the data '
                     "config's eval_segment_seconds.", **kw)
  flags.DEFINE_integer('segments_per_song', None, "Segments per song; default: the data config's "
                       'eval_segments_per_song.', **kw)
  flags.DEFINE_integer('severity_bins', DEFAULT_SEVERITY_BINS, 'Bleed severity bins of the '
                       'robustness plot.', **kw)
  flags.DEFINE_string('rir_workdir', None, 'Folder for the RIR bank when '
                      'config.data.bleed.cache_dir is empty.', **kw)
  flags.DEFINE_boolean('overwrite', False, 'Replace earlier results in --output.', **kw)


def run(f) -> int:
  """Runs the CLI with parsed flags `f`; returns the exit status."""
  try:
    systems = [load_system(name, path) for name, path in parse_checkpoints(f.checkpoints)]
    data_config = f.data_config
    if data_config is None:
      if not systems:
        raise EvaluationError('Give --data_config (there is no checkpoint to take the data '
                              'settings from).')
      data_config = systems[0].config
      logging.info('Evaluation data as in the config of %s.', systems[0].name)
    if f.data_dir:
      data_config = copy.deepcopy(data_config)
      with data_config.unlocked():
        data_config.data.data_dir = f.data_dir
    paths = evaluate(systems, data_config, f.split, f.output, segment_seconds=f.segment_seconds,
                     segments_per_song=f.segments_per_song, severity_bins_count=f.severity_bins,
                     overwrite=f.overwrite, workdir=f.rir_workdir)
  except (EvaluationError, FileExistsError, FileNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  for key in ('summary', 'metrics', 'bleed_plot', 'index'):
    print(paths[key])
  return 0


def main(argv):
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags  # pylint: disable=g-import-not-at-top
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  # TF only reads the dataset: keep it off the accelerators JAX owns.
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  tf.config.set_visible_devices([], 'GPU')
  return run(flags.FLAGS)


if __name__ == '__main__':
  from absl import app as absl_app  # pylint: disable=g-import-not-at-top
  from absl import flags as absl_flags  # pylint: disable=g-import-not-at-top
  define_flags(absl_flags.FLAGS)
  absl_app.run(main)
