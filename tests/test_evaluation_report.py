"""Tests for alm_jax/evaluation/report.py: cells, summaries, bleed bins."""

import math

from alm_jax import metrics
from alm_jax.data import bleed
from alm_jax.evaluation import report


def test_metric_columns_are_the_metric_suite():
  assert tuple(m[0] for m in report.METRICS) == metrics.MIX_METRICS
  assert set(metrics.MIX_METRICS) <= set(report.CSV_COLUMNS)


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
