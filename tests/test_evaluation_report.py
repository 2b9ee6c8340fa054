"""Tests for alm_jax/evaluation/report.py: cells, summaries, bleed bins."""

import math
import types

import numpy as np
import pytest

from alm_jax import metrics
from alm_jax.data import bleed
from alm_jax.evaluation import report
from conftest import load_config


def test_metric_columns_are_the_metric_suite():
  assert tuple(m[0] for m in report.METRICS) == metrics.MIX_METRICS
  assert set(metrics.MIX_METRICS) | set(metrics.STEREO_METRICS) <= set(report.CSV_COLUMNS)
  assert set(metrics.STEREO_METRICS) <= {m for m, _, _ in report.STEREO_COLUMNS}


def test_paired_differences():
  m, h = report.paired([1.0, 2.0, 3.0, math.nan], [0.0, 1.0, 2.5, 1.0])
  assert m == pytest.approx(2.5 / 3)
  assert h == pytest.approx(1.96 * np.std([1.0, 1.0, 0.5], ddof=1) / math.sqrt(3))
  assert all(math.isnan(v) for v in report.paired([1.0, math.nan], [0.0, 0.0]))  # one pair


def test_stereo_section():
  """The table over the segments with a placement (a row without one is left out), which
  systems pan, and each stereo system paired against the others."""
  def row(system, e, pan, side, balance=1.0):
    return {'system': system, '_example': e, 'pan_error': pan, 'mr_stft_mid': 1.0,
            'mr_stft_side': side, 'mr_stft': 1.0, 'balance_error_db': balance}
  systems = [types.SimpleNamespace(name='RAW', stereo=False),
             types.SimpleNamespace(name='ST', stereo=True)]
  rows = [row('RAW', 0, 0.2, 4.0), row('RAW', 1, 0.3, 5.0), row('ST', 0, 0.1, 2.0, 2.0),
          row('ST', 1, 0.2, 2.0, 3.0), {**row('ST', 2, math.nan, math.nan), 'mr_stft_mid': math.nan}]
  text = '\n'.join(report.stereo_lines(rows, systems))
  assert 'over the 2 segments that have one' in text
  assert '| RAW | centre | 2 | 0.250 ± 0.050 | 1.000 ± 0.000 | 4.500 ± 0.500 |' in text
  assert '| ST | its own | 2 | 0.150 ± 0.050 |' in text
  assert '| ST | RAW | -0.100 ± 0.000 | -2.500 ± 0.980 | +1.500 ± 0.980 |' in text
  assert '| RAW | ST |' not in text and 'No evaluated system pans' not in text


def test_role_section():
  """Signed errors averaged per role over every channel, roles by count, paired with a reference."""
  def row(system, roles, signed, balance):
    return {'system': system, '_roles': roles, '_signed_db': np.array(signed),
            'balance_error_db': balance}
  systems = [types.SimpleNamespace(name='PRESET'), types.SimpleNamespace(name='ALM')]
  rows = [row('PRESET', ['lead', 'pad', 'pad'], [-6.0, 4.0, 2.0], 4.0),
          row('PRESET', ['lead', 'kick'], [-2.0, 2.0], 2.0),
          row('ALM', ['lead', 'pad', 'pad'], [-1.0, 1.0, np.nan], 1.0),
          row('ALM', ['lead', 'kick'], [0.0, 0.0], 0.0),
          {'system': 'RAW', 'balance_error_db': 9.0}]  # no signed errors: not in the section
  text = '\n'.join(report.role_lines(rows, systems, 'PRESET'))
  assert '| System | Balance error (dB) | vs PRESET (paired, 95 %) | lead (n=2) | pad (n=2) | kick (n=1) |' in text
  assert '| PRESET | 3.00 ± 1.00 |  | -4.0 | +3.0 | +2.0 |' in text
  assert '| ALM | 0.50 ± 0.50 | -2.50 ± 0.98 | -0.5 | +1.0 | +0.0 |' in text
  assert 'RAW' not in text
  assert 'vs PRESET' not in '\n'.join(report.role_lines(rows, systems))
  assert report.role_lines([{'system': 'RAW', 'balance_error_db': 1.0}], systems) == []


def test_summarize_handles_infinite_and_missing_values():
  assert report.summarize([1.0, 3.0], '{:.2f}') == '2.00 ± 1.00'
  # A silent mix has SI-SDR -inf: it is counted, not averaged into -inf.
  assert report.summarize([1.0, 3.0, -math.inf], '{:.2f}') == '2.00 ± 1.00 (1× -inf)'
  assert report.summarize([math.inf, math.inf], '{:.2f}') == '2× +inf'
  assert report.summarize([math.nan, math.nan], '{:.2f}') == 'n/a'
  assert report.summarize([-1.0, math.nan], '{:+.2f}') == '-1.00 ± 0.00 (1× n/a)'


def test_format_value():
  assert report.format_value(math.nan) == '' and report.format_value(None) == ''
  assert report.format_value(math.inf) == 'inf' and report.format_value(-math.inf) == '-inf'
  assert report.format_value(1 / 3) == '0.3333333' and report.format_value(7) == '7'


def test_severity_bins():
  labels, index = report.severity_bins([-29.0, -7.0, -18.5, bleed.BLEED_OFF_DB], (-30, -6), 4)
  assert labels == ['no bleed', '-30..-24 dB', '-24..-18 dB', '-18..-12 dB', '-12..-6 dB']
  assert index.tolist() == [1, 4, 2, 0]


def test_every_metric_has_a_direction():
  assert set(report.BETTER) == {m[0] for m in report.METRICS}
  assert set(report.BETTER.values()) <= {'lower', 'higher', 'closer_to_0'}
  assert set(report.BIN_RANKING_METRICS) <= set(report.BETTER)


def test_rank_names_inversions_ties_and_missing_values():
  lower = report.rank({'A': 1.0, 'B': 0.5, 'C': 2.0}, ['A', 'B', 'C'], 'lower')
  assert lower.order == ['B', 'A', 'C'] and lower.inverted == [('A', 'B')]
  assert lower.verdict == 'not reproduced: B above A'
  higher = report.rank({'A': 1.0, 'B': 0.5, 'C': 2.0}, ['C', 'A', 'B'], 'higher')
  assert higher.order == ['C', 'A', 'B'] and higher.verdict == 'reproduced'
  tie = report.rank({'A': 0.0, 'B': 0.0, 'C': 1.0}, ['A', 'B', 'C'], 'lower')
  assert tie.verdict == 'not reproduced: A ties with B'
  # A system without a value is not placed; the others are still compared with each other.
  gap = report.rank({'A': 2.0, 'B': math.nan, 'C': 1.0}, ['A', 'B', 'C'], 'lower')
  assert gap.verdict == 'not reproduced: C above A; no finite value for B'
  assert report.rank({'A': 1.0, 'B': math.nan}, ['A', 'B'], 'lower').verdict == \
      'not determined: no finite value for B'
  assert report.ranking_score([1.0, -3.0, math.inf, math.nan], 'closer_to_0') == 2.0
  assert report.ranking_score([1.0, -3.0, -math.inf], 'higher') == -1.0


def _rows(values):
  """Hand-made metric rows: {system: {metric: [value per example]}}, other metrics 0."""
  rows = []
  for system, by_metric in values.items():
    for e in range(2):
      row = {'system': system, '_example': e}
      row.update({m: by_metric.get(m, [0.0, 0.0])[e] for m, _, _ in report.METRICS})
      rows.append(row)
  return rows


def test_ranking_lines_state_each_metric_and_bleed_bin():
  rows = _rows({
      # MR-STFT: SR beats MR (an inversion); loudness: MR's errors cancel in a signed mean but
      # not in |ΔL| (SR is closer); SI-SDR (higher is better): as expected, -inf left out.
      'ALM-MR': {'mr_stft': [0.9, 0.9], 'loudness_diff_lu': [2.0, -2.0], 'si_sdr_db': [20.0, 20.0],
                 'gain_change_db_per_s': [1.0, 1.0], 'balance_error_db': [1.0, 3.0]},
      'ALM-SR': {'mr_stft': [0.5, 0.7], 'loudness_diff_lu': [1.0, 1.0],
                 'si_sdr_db': [10.0, -math.inf], 'gain_change_db_per_s': [2.0, 2.0],
                 'balance_error_db': [2.0, 2.0]},
      'RAW': {'mr_stft': [1.5, 1.5], 'loudness_diff_lu': [3.0, 3.0], 'si_sdr_db': [5.0, 5.0],
              'gain_change_db_per_s': [0.0, 0.0], 'balance_error_db': [3.0, 4.0]},
  })
  expected = ['ALM-MR', 'ALM-SR', 'RAW']
  labels, index = report.severity_bins([bleed.BLEED_OFF_DB, -10.0], (-30, -6), 2)
  table = report.bleed_table(rows, expected, labels, index)
  text = '\n'.join(report.ranking_lines(rows, expected, table=table, labels=labels,
                                        counts=[1, 0, 1]))
  line = {m: next(l for l in text.splitlines() if l.startswith(f'| {h} |'))
          for m, h, _ in report.METRICS}
  assert 'ALM-MR > ALM-SR > RAW' in text
  assert line['mr_stft'].endswith('| ALM-SR (0.600) > ALM-MR (0.900) > RAW (1.500) | '
                                  'not reproduced: ALM-SR above ALM-MR |')
  assert '| closer to 0 | ALM-SR (1.00) > ALM-MR (2.00) > RAW (3.00) |' in line['loudness_diff_lu']
  assert line['si_sdr_db'].endswith('| higher | ALM-MR (20.00) > ALM-SR (10.00) > RAW (5.00) | '
                                    'reproduced |')
  assert line['gain_change_db_per_s'].endswith('not reproduced: RAW above ALM-SR |')
  assert line['clipping_fraction'].endswith(
      'not reproduced: ALM-MR ties with ALM-SR, ALM-SR ties with RAW |')
  # Balance: MR and SR both average 2 dB overall (a tie), but not per bin.
  assert line['balance_error_db'].endswith('| ALM-MR (2.00) = ALM-SR (2.00) > RAW (3.50) | '
                                           'not reproduced: ALM-MR ties with ALM-SR |')
  # Per bin: example 0 has no bleed (MR's balance 1 < SR's 2), example 1 bleed (MR 3 > SR 2).
  bins = [l for l in text.splitlines() if '(n=' in l]  # the empty -30..-18 dB bin left out
  assert [l.split(' | ')[1] for l in bins] == ['no bleed (n=1)', '-18..-6 dB (n=1)'] * 2
  assert bins[2].endswith('| reproduced |')
  assert bins[3].endswith('not reproduced: ALM-SR above ALM-MR |')


def test_results_doc_names_its_command_and_appends_the_notes():
  command = 'python -m alm_jax.evaluate --checkpoints=A=/x --results_doc=docs/results.md'
  doc = report.results_doc_text('# Evaluation\n\n| table |\n', command, '\nWhy A wins.\n')
  lines = doc.splitlines()
  assert lines[0].startswith(f'_Generated by `{command}`') and 'do not edit' in lines[0]
  assert lines[2:] == ['# Evaluation', '', '| table |', '', '## Notes', '', 'Why A wins.']
  assert '## Notes' not in report.results_doc_text('# E', command)
  odd = report.results_doc_text('# E', "python -m alm_jax.evaluate '--notes=a`b.md'")
  assert odd.startswith("_Generated by `` python -m alm_jax.evaluate '--notes=a`b.md' ``")


def test_the_header_says_when_the_channels_were_equalised():
  config = load_config('pretrained_alm_mr')
  assert report.timbre_text(config) == ''
  config.data.timbre.enabled = True  # training only: the evaluation is not equalised
  assert report.timbre_text(config) == ''
  assert 'random equaliser' in report.timbre_text(load_config('timbre_eval'))
