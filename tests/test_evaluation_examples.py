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


def test_designed_placement_of_a_batch_example():
  """The pipeline's stereo target and pans of example e, cut to its channels and samples; a song
  without a designed placement (NaN pans, MedleyDB) has none, so no stereo metric."""
  target_stereo = np.arange(2 * 2 * 6, dtype=np.float32).reshape(2, 2, 6)
  pans = np.array([[0.5, -0.25, np.nan], [np.nan, np.nan, np.nan]], np.float32)
  st, p = examples.designed_placement(target_stereo, pans, 0, 2, 4)
  np.testing.assert_array_equal(st, target_stereo[0, :, :4])
  np.testing.assert_array_equal(p, [0.5, -0.25])
  assert examples.designed_placement(target_stereo, pans, 1, 2, 4) == (None, None)
  assert examples.designed_placement(None, None, 0, 2, 4) == (None, None)
  ex = examples.Example('s', 0, np.zeros((2, 4)), np.zeros(4), -20.0, [], None,
                        target_stereo=st, ideal_pans=p)
  assert ex.has_placement
  assert not examples.Example('s', 0, np.zeros((2, 4)), np.zeros(4), -20.0, [], None).has_placement


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
