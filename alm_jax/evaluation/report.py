"""The evaluation's tables: metrics.csv, bleed_robustness.csv, summary.md and the bleed-severity bins.

The metric columns are `alm_jax.metrics.MIX_METRICS`, the names training
validation logs to TensorBoard too. NaN (not available or undefined) is an
empty CSV cell; summaries average the finite values and count the rest.
summary.md can also check an expected ranking of the systems per metric
(`ranking_lines`), has a "Stereo" section where the data has a designed placement
(`stereo_lines`: `metrics.STEREO_METRICS`, a mono system centre-panned), and
`results_doc_text` turns it into a generated document.
"""

import csv
import dataclasses
import math
import re
from typing import Sequence

import numpy as np

from alm_jax import metrics
from alm_jax.data import bleed
from alm_jax.data import timbre

METRICS = (  # (csv column, summary heading, format)
    ('mr_stft', 'MR-STFT distance', '{:.3f}'),
    ('loudness_diff_lu', 'Loudness diff. (LU)', '{:+.2f}'),
    ('si_sdr_db', 'SI-SDR (dB)', '{:.2f}'),
    ('gain_change_db_per_s', 'Gain change (dB/s)', '{:.2f}'),
    ('clipping_fraction', 'Clipping (fraction)', '{:.2e}'),
    ('balance_error_db', 'Balance error (dB)', '{:.2f}'),
)
# Which way each metric of METRICS is better, for ranking systems: 'lower', 'higher', or
# 'closer_to_0' (a signed difference, ranked by the mean of its absolute value).
BETTER = {
    'mr_stft': 'lower',
    'loudness_diff_lu': 'closer_to_0',
    'si_sdr_db': 'higher',
    'gain_change_db_per_s': 'lower',
    'clipping_fraction': 'lower',
    'balance_error_db': 'lower',
}
# The metrics whose ranking summary.md also gives per bleed-severity bin (the robustness claim).
BIN_RANKING_METRICS = ('mr_stft', 'balance_error_db')
# The stereo section's table (`stereo_lines`): the stereo metrics, then the mono ones the issue's
# targets compare (the stereo mixer's balance no worse than the mono mixer's).
STEREO_COLUMNS = (  # (csv column, heading, format)
    ('pan_error', 'Pan error', '{:.3f}'),
    ('mr_stft_mid', 'MR-STFT mid', '{:.3f}'),
    ('mr_stft_side', 'MR-STFT side', '{:.3f}'),
    ('mr_stft', 'MR-STFT (mono)', '{:.3f}'),
    ('balance_error_db', 'Balance error (dB)', '{:.2f}'),
)
# What the stereo section pairs a stereo system against every other system on.
STEREO_PAIRED = ('pan_error', 'mr_stft_side', 'balance_error_db')
CSV_COLUMNS = ('song_id', 'segment', 'start_seconds', 'num_channels', 'seconds',
               'bleed_severity_db', 'system', 'step') + metrics.MIX_METRICS + (
                   metrics.STEREO_METRICS + ('audio', 'gain_plot', 'stereo_audio', 'pan_plot'))


def format_value(v) -> str:
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


def severity_bins(severities, severity_range, num_bins: int):
  """Bins of the simulated bleed severity.

  Returns:
    (labels [k], bin index per example [n]): equal-width bins over
    `severity_range` (widened to the observed values), plus a first 'no bleed'
    bin when some examples had none (severity bleed.BLEED_OFF_DB).
  """
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


def ranking_score(values: Sequence[float], better: str) -> float:
  """What a system is ranked by on one metric: the mean of its finite values (of their absolute
  value when `better` is 'closer_to_0'); NaN when none is finite."""
  v = np.asarray(values, np.float64)
  v = v[np.isfinite(v)]
  if not v.size:
    return float('nan')
  return float(np.abs(v).mean() if better == 'closer_to_0' else v.mean())


@dataclasses.dataclass
class Ranking:
  """The observed order of some systems on one metric, against an expected order.

  Attributes:
    order: the systems with a finite score, best first (ties in the expected order).
    scores: each system's score (`ranking_score`), NaN when it has none.
    inverted: (expected above, observed above) for each adjacent pair of the
      expected order (among the systems with a score) that the scores invert.
    tied: adjacent pairs of the expected order with equal scores.
    missing: systems without a finite value, which cannot be placed.
  """
  order: list
  scores: dict
  inverted: list
  tied: list
  missing: list

  @property
  def verdict(self) -> str:
    """'reproduced', 'not reproduced: B above A, ...' or 'not determined: ...'."""
    problems = [f'{b} above {a}' for a, b in self.inverted]
    problems += [f'{a} ties with {b}' for a, b in self.tied]
    unplaced = f'no finite value for {", ".join(self.missing)}' if self.missing else ''
    if problems:
      return 'not reproduced: ' + ', '.join(problems) + (f'; {unplaced}' if unplaced else '')
    return f'not determined: {unplaced}' if unplaced else 'reproduced'


def rank(scores: dict, expected: Sequence[str], better: str) -> Ranking:
  """Orders `expected` (system names, best first) by `scores` and lists where they disagree.

  Args:
    scores: system name -> score (`ranking_score`), for every name of `expected`.
    expected: the expected order, best first.
    better: 'lower', 'higher' or 'closer_to_0' (scores are then already absolute).
  Returns:
    The `Ranking`. Equal scores (up to rounding) are a tie, which does not
    reproduce a strict expected order.
  """
  sign = -1.0 if better == 'higher' else 1.0
  present = [n for n in expected if math.isfinite(scores[n])]
  order = sorted(present, key=lambda n: sign * scores[n])  # stable: ties stay in expected order
  inverted, tied = [], []
  for a, b in zip(present[:-1], present[1:]):
    if math.isclose(scores[a], scores[b], rel_tol=1e-9, abs_tol=0.0):
      tied.append((a, b))
    elif sign * scores[b] < sign * scores[a]:
      inverted.append((a, b))
  return Ranking(order, {n: scores[n] for n in expected}, inverted, tied,
                 [n for n in expected if n not in present])


def _order_text(ranking: Ranking, fmt: str) -> str:
  """'A (0.81) > B (0.93) = C (0.93)' (then the unplaced systems)."""
  text = ''
  for i, name in enumerate(ranking.order):
    if i:
      prev = ranking.scores[ranking.order[i - 1]]
      tie = math.isclose(prev, ranking.scores[name], rel_tol=1e-9, abs_tol=0.0)
      text += ' = ' if tie else ' > '
    text += f'{name} ({fmt.format(ranking.scores[name]).lstrip("+")})'
  if ranking.missing:
    text += ('; ' if text else '') + 'n/a: ' + ', '.join(ranking.missing)
  return text


def ranking_lines(rows: Sequence[dict], expected: Sequence[str], *, table=None, labels=(),
                  counts=()) -> list[str]:
  """summary.md's section checking an expected ranking of the systems on every metric.

  Args:
    rows: the metric rows, each with 'system' and the METRICS columns.
    expected: system names, best first (each with rows).
    table, labels, counts: the bleed table (`bleed_table`), its bins' labels and
      segment counts; given, the BIN_RANKING_METRICS are also ranked per non-empty bin.
  Returns:
    Markdown lines, from the heading to the last table row.
  """
  lines = ['## Expected ranking', '',
           f'Expected, best first: {" > ".join(expected)}. Each metric orders the systems by '
           'the mean over segments of its finite values (the loudness difference by its mean '
           'absolute value); "B above A" says that B, expected below A, scored better.', '',
           '| Metric | Better | Observed order, best first | Expected ranking |', '|---|---|---|---|']
  for metric, heading, fmt in METRICS:
    better = BETTER[metric]
    scores = {n: ranking_score([r[metric] for r in rows if r['system'] == n], better)
              for n in expected}
    result = rank(scores, expected, better)
    lines.append(f'| {heading} | {_better_text(better)} | {_order_text(result, fmt)} | '
                 f'{result.verdict} |')
  if table is not None and labels:
    lines += ['', 'Per bleed-severity bin (the bin means of `bleed_robustness.csv`):', '',
              '| Metric | Bleed severity | Observed order, best first | Expected ranking |',
              '|---|---|---|---|']
    for metric, heading, fmt in METRICS:
      if metric not in BIN_RANKING_METRICS:
        continue
      for b, (label, n) in enumerate(zip(labels, counts)):
        if not n:
          continue  # an empty bin orders nothing
        result = rank({s: table[(s, b, metric)][0] for s in expected}, expected, BETTER[metric])
        lines.append(f'| {heading} | {label} (n={n}) | {_order_text(result, fmt)} | '
                     f'{result.verdict} |')
  return lines


def _better_text(better: str) -> str:
  return {'lower': 'lower', 'higher': 'higher', 'closer_to_0': 'closer to 0'}[better]


def write_metrics_csv(path, rows):
  with open(path, 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f)
    writer.writerow(CSV_COLUMNS)
    for r in rows:
      writer.writerow([format_value(r.get(k)) for k in CSV_COLUMNS])


def write_bleed_csv(path, table, systems, labels, counts):
  with open(path, 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f)
    writer.writerow(['system', 'severity_bin', 'segments'] + [m[0] for m in METRICS])
    for system in systems:
      for b, label in enumerate(labels):
        writer.writerow([system, label, counts[b]]
                        + [format_value(table[(system, b, m)][0]) for m, _, _ in METRICS])


def mode_text(cfg, whole_songs: bool) -> str:
  if whole_songs:
    return 'whole songs'
  return (f'{float(cfg.data.eval_segment_seconds):g} s segments, up to '
          f'{int(cfg.data.eval_segments_per_song)} per song')


def timbre_text(cfg) -> str:
  """'; every channel through a random equaliser (...)' where the evaluation equalised its
  channels (config.data.timbre.in_eval, alm_jax.data.timbre), else ''."""
  settings = timbre.Settings.from_config(cfg.data)
  if not settings.equalises_evaluation:
    return ''
  return (f'; every channel through a random equaliser (tilt and {settings.bells} bells, '
          f'+-{settings.tilt_db:g} / +-{settings.bell_db:g} dB: config.data.timbre.in_eval)')


def page_notes(cfg, split, examples, has_balance, mode, *, ideal: bool = False,
               stereo_target: str = ''):
  """The listening page's paragraphs: what was evaluated and how to read it (`ideal`: IDEAL is
  among the systems; `stereo_target`: the column of the stereo target, where a stereo
  system's cells play its stereo mix; '' where none does)."""
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
  if ideal:
    notes.append('IDEAL is not a mixer: it applies the dataset\'s ideal gains, constant, so '
                 'without bleed it is the target and with bleed the target plus the bleed.')
  if stereo_target:
    notes.append(f'A stereo system (one that pans) plays its stereo mix, and under its gains '
                 f'is its stereo-image plot: each channel\'s pan over time (-1 left, +1 right), '
                 f'the designed pan dashed. {stereo_target} is the target with the designed '
                 'placement; the other systems are mono (the stereo metrics place them at the '
                 'centre). The blind listening test compares the mono mixes.')
  if not has_balance:
    notes.append('This dataset does not store its target balance, so no balance error is given.')
  return notes



_DEFINITIONS = (
    '- MR-STFT distance: the training loss (auraloss multi-resolution STFT) of the mix against '
    'the target mix; 0 for identical signals. Training validation logs it as `loss`.',
    '- Loudness diff.: integrated loudness (ITU-R BS.1770-4) of the mix minus that of the '
    'target, in LU.',
    f'- SI-SDR: scale-invariant SDR of the mix against the target, capped at '
    f'{metrics.SI_SDR_MAX_DB:g} dB (a mix identical to the target up to scale). Non-finite values '
    'are left out of mean ± std and counted in brackets.',
    '- Gain change: mean absolute change of the applied gain in dB per second, over channels and '
    'frame transitions (0 for constant gains).',
    '- Clipping: fraction of samples with |mix| > 1.',
)


def paired(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
  """Mean of a - b over the segments where both are finite, and its 95 % interval half-width
  (1.96 standard errors); NaN, NaN with fewer than two such segments."""
  d = np.asarray(a, np.float64) - np.asarray(b, np.float64)
  d = d[np.isfinite(d)]
  if d.size < 2:
    return float('nan'), float('nan')
  return float(np.mean(d)), float(1.96 * np.std(d, ddof=1) / np.sqrt(d.size))


def role_lines(rows: Sequence[dict], systems, reference: str = '') -> list[str]:
  """summary.md's "Balance by role" section: balance error, paired figure and signed error per role.

  Args:
    rows: the evaluation's rows; those with '_roles' and '_signed_db' (each channel's role and
      signed balance error, `metrics.balance_error_db(per_channel=True)`) count.
    systems: the `System`s, in table order.
    reference: a system name to pair the others with (`paired`), or ''.
  """
  known = [r for r in rows if '_signed_db' in r]
  if not known:
    return []
  names = [s.name for s in systems]
  first = names[0]
  roles = np.concatenate([np.asarray(r['_roles']) for r in known if r['system'] == first])
  order = sorted(set(roles.tolist()), key=lambda r: (-int(np.sum(roles == r)), r))
  header = ['System', 'Balance error (dB)'] + ([f'vs {reference} (paired, 95 %)'] if reference
                                               else []) + [f'{r} (n={int(np.sum(roles == r))})'
                                                           for r in order]
  lines = ['## Balance by role', '',
           'Mean signed balance error per channel role (dB; positive: the channel ends louder, '
           'relative to the others, than the designed balance), over every channel of that role '
           'in the split' + (f"; the paired column is each segment's balance error minus "
                             f"{reference}'s (mean and 95 % interval; lower is better)."
                             if reference else '.'), '',
           '| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  ref = [r['balance_error_db'] for r in known if r['system'] == reference]
  for name in names:
    own = [r for r in known if r['system'] == name]
    if not own:
      continue
    signed = np.concatenate([np.asarray(r['_signed_db'], np.float64) for r in own])
    role_of = np.concatenate([np.asarray(r['_roles']) for r in own])
    cells = [name, summarize([r['balance_error_db'] for r in own], '{:.2f}')]
    if reference:
      mean, half = paired([r['balance_error_db'] for r in own], ref) if name != reference else (
          float('nan'), float('nan'))
      cells.append('' if math.isnan(mean) else f'{mean:+.2f} ± {half:.2f}')
    for role in order:
      vals = signed[(role_of == role) & np.isfinite(signed)]
      cells.append(f'{np.mean(vals):+.1f}' if vals.size else '')
    lines.append('| ' + ' | '.join(cells) + ' |')
  lines.append('')
  return lines


def stereo_lines(rows: Sequence[dict], systems, *, plots_note: bool = True) -> list[str]:
  """summary.md's "Stereo" section: the placement metrics of every system, paired figures.

  Args:
    rows: the metric rows (`run.measure`'s columns, 'system', '_example').
    systems: the evaluated `System`s, in table order; `System.stereo` says which pan
      (the others are placed at the centre).
    plots_note: end with where the evaluation writes the stereo-image plots.
  Returns:
    Markdown lines: a table over the segments with a designed placement (finite
    'mr_stft_mid'), mean ± std per system of `STEREO_COLUMNS`; per stereo system, its
    `STEREO_PAIRED` figures paired against every other system; the stereo-image plots.
  """
  placed = [r for r in rows if math.isfinite(r.get('mr_stft_mid', float('nan')))]
  segments = len({r['_example'] for r in placed})
  lines = ['## Stereo', '',
           f'Each system\'s stereo mix against the target mixed with the designed placement '
           f'(docs/data.md, "Stereo placement"), over the {segments} segments that have one. A '
           'stereo mixer (its capabilities say it pans) is heard with its own pans; every other '
           'system is centre-panned: all pans 0, its mono mix at -3 dB on both sides, as '
           '`protocol.step_stereo` places a mono mixer. Mean ± std over segments.', '']
  header = ['System', 'Pans', 'n'] + [h for _, h, _ in STEREO_COLUMNS]
  lines += ['| ' + ' | '.join(header) + ' |', '|' + '---|' * len(header)]
  for s in systems:
    sys_rows = [r for r in placed if r['system'] == s.name]
    cells = [s.name, 'its own' if s.stereo else 'centre', str(len(sys_rows))]
    cells += [summarize([r[m] for r in sys_rows], fmt) for m, _, fmt in STEREO_COLUMNS]
    lines.append('| ' + ' | '.join(cells) + ' |')
  lines.append('')
  stereo_names = [s.name for s in systems if s.stereo]
  if not stereo_names:
    lines += ['No evaluated system pans: each scores the mean |designed pan| as its pan error, and '
              'all share one side MR-STFT (a silent side against the target\'s).', '']
    return lines
  headings = dict((m, h) for m, h, _ in STEREO_COLUMNS)
  lines += ['Paired, per segment: stereo system − other system, mean ± 95 % interval (negative: '
            'the stereo system is closer to the target).', '',
            '| Stereo system | Other system | ' + ' | '.join(headings[m] for m in STEREO_PAIRED)
            + ' |', '|' + '---|' * (2 + len(STEREO_PAIRED))]
  by_example = {}
  for r in placed:
    by_example.setdefault(r['system'], {})[r['_example']] = r
  for a in stereo_names:
    for other in [s.name for s in systems if s.name != a]:
      common = sorted(set(by_example.get(a, {})) & set(by_example.get(other, {})))
      cells = []
      for m in STEREO_PAIRED:
        mean, half = paired([by_example[a][e][m] for e in common],
                            [by_example[other][e][m] for e in common])
        cells.append('n/a' if math.isnan(mean) else f'{mean:+.3f} ± {half:.3f}')
      lines.append(f'| {a} | {other} | ' + ' | '.join(cells) + ' |')
  lines.append('')
  if plots_note:
    lines += ['Stereo-image plots (each channel\'s pan over time, its designed pan dashed): '
              '`pans/<segment>/<system>.png`, on the listening page under each stereo system\'s '
              'gains, whose player there plays its stereo mix (`audio/<segment>/stereo/`).', '']
  return lines


_STEREO_DEFINITIONS = (
    '- Pan error: mean over channels of |pan − designed pan| (pan units, −1 left … +1 right, '
    'constant-power law; a time-varying pan by its mean over the segment); a centre-panned '
    'system scores the mean |designed pan|.',
    '- MR-STFT mid / side: the MR-STFT distance of the stereo mix\'s mid (L + R)/√2 and side '
    '(L − R)/√2 (`stereo.mid_side`) to the target\'s; the side is n/a where the target\'s is '
    'silent (every channel designed at the centre).',
)


def summary_text(rows, systems, cfg, split, examples, labels, counts, table, has_balance, mode, *,
                 skipped: Sequence[str] = (), expected_ranking: Sequence[str] = (),
                 stereo: bool = False, balance_reference: str = '') -> str:
  """summary.md: mean ± std per system and metric, the MR-STFT per bleed bin, the definitions.

  Args:
    rows, systems, cfg, split, examples: the evaluation's rows, `System`s, config,
      split and `Example`s.
    labels, counts, table: the bleed-severity bins (`severity_bins`), their
      segment counts and the bleed table (`bleed_table`).
    has_balance: whether some example knows its target balance.
    mode: `mode_text`.
    skipped: sentences on the reference systems left out (`systems.reference_systems`).
    expected_ranking: system names, best first: adds the "Expected ranking" section.
    stereo: some example has a designed placement: adds the "Stereo" section
      (`stereo_lines`) and its metrics' definitions.
    balance_reference: the system the "Balance by role" section (`role_lines`, where the
      data knows its balance) pairs the others with; '': no paired column.
  """
  lines = [f'# Evaluation: {cfg.data.name}, {split} split', '',
           f'{len(examples)} segments of {len({e.song_id for e in examples})} songs '
           f'({mode}); seed {int(cfg.seed)}; bleed simulation '
           f'{"on" if cfg.data.bleed.enabled else "off"}; input level randomisation '
           f'{"on" if cfg.data.levels.enabled else "off"}'
           f'{timbre_text(cfg)}. Mean ± std over segments.', '']
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
  if notes or skipped:
    lines += ['How the systems were evaluated (all others: causal, zero latency):', '']
    lines += [f'- **{s.name}**: {s.note}.' for s in notes]
    lines += [f'- {text}' for text in skipped]
    lines.append('')
  lines += ['## MR-STFT distance against bleed severity', '',
            '| System | ' + ' | '.join(f'{lab} (n={n})' for lab, n in zip(labels, counts)) + ' |',
            '|' + '---|' * (len(labels) + 1)]
  for s in systems:
    vals = [table[(s.name, b, 'mr_stft')][0] for b in range(len(labels))]
    lines.append(f'| {s.name} | ' + ' | '.join('' if math.isnan(v) else f'{v:.3f}' for v in vals)
                 + ' |')
  lines += ['', 'All metrics per bin: `bleed_robustness.csv` and `bleed_robustness.png`.', '']
  if expected_ranking:
    lines += ranking_lines(rows, expected_ranking, table=table, labels=labels, counts=counts)
    lines.append('')
  if has_balance:
    lines += role_lines(rows, systems, balance_reference)
  if stereo:
    lines += stereo_lines(rows, systems)
  lines += ['## Metrics (`alm_jax.metrics.mix_metrics`, as in training validation)', '']
  lines += list(_DEFINITIONS)
  lines += [('- Balance error: mean absolute difference over channels of each channel\'s gain '
             'relative to the channels\' mean (dB, time-averaged) against the same for the '
             'dataset\'s designed balance (its mixing gains, corrected for the drawn input levels).'
             if has_balance else
             '- Balance error: n/a — this dataset does not store its target balance (MedleyDB '
             'gives the mix, not per-track mixing gains).')]
  if stereo:
    lines += list(_STEREO_DEFINITIONS)
  lines.append('')
  return '\n'.join(lines)


def results_doc_text(summary: str, command: str, notes: str = '') -> str:
  """A results document: a line naming the command that generated it, `summary`, then `notes`.

  Args:
    summary: summary.md's text.
    command: the exact command line that produced it.
    notes: markdown (the human analysis), put under a "Notes" heading; '' for none.
  """
  # A code span needs a longer run of backticks than any inside it.
  ticks = '`' * (max((len(m) for m in re.findall('`+', command)), default=0) + 1)
  pad = ' ' if len(ticks) > 1 else ''
  lines = [f'_Generated by {ticks}{pad}{command}{pad}{ticks}: do not edit this file by hand; '
           'change the evaluation or its --notes file and rerun that command._', '',
           summary.rstrip('\n'), '']
  if notes.strip():
    lines += ['## Notes', '', notes.strip(), '']
  return '\n'.join(lines)
