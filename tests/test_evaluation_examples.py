"""Tests for alm_jax/evaluation/examples.py that need no dataset (see test_evaluate.py for the rest)."""

import math

import numpy as np
import pytest

from alm_jax.data import common
from alm_jax.evaluation import examples
from alm_jax.evaluation import systems
from conftest import load_config


def test_input_target_gains():
  # A track at 2x in the target, reaching the input 6.02 dB up: gain 1; one at 1x, 20 dB down: 10.
  np.testing.assert_allclose(examples.input_target_gains([2.0, 1.0], [20 * math.log10(2), -20.0]),
                             [1.0, 10.0])
  assert examples.input_target_gains([2.0, math.nan], [0.0, 0.0]) is None  # MedleyDB


def test_segment_span_labels():
  ex = examples.Example('s', 1, np.zeros((2, 20 * common.SAMPLE_RATE)), None, -20.0, [], None,
                        start_seconds=59.96)
  assert ex.span == '1:00.0–1:20.0' and ex.where == 's segment 1'
  assert examples.clock(0.0) == '0:00.0' and examples.clock(125.34) == '2:05.3'


def test_refuses_bad_segment_settings():
  with pytest.raises(systems.EvaluationError, match='segment_seconds'):
    examples.eval_data_config(load_config('quickstart'), 'test', segment_seconds=-1)
  with pytest.raises(systems.EvaluationError, match='segments_per_song'):
    examples.eval_data_config(load_config('quickstart'), 'test', segments_per_song=0)
