"""tools/stereo_results.py: its scoring of mono and stereo mixers, the table and the paired figures."""

import runpy

import jax
import numpy as np
import pytest

from alm_jax import models
from alm_jax import stereo
from checkpoint_fixtures import TinyModel
from conftest import REPO, load_config

tool = runpy.run_path(str(REPO / 'tools' / 'stereo_results.py'))


def _audio(rng, c, n):
  return (rng.normal(size=(c, n)) * np.geomspace(0.05, 0.5, c)[:, None]).astype(np.float32)


def test_mono_mixers_are_centred_and_a_perfect_mix_scores_zero():
  rng = np.random.default_rng(0)
  tiny = TinyModel('mr', max_channels=4)
  loaded = models.load(tiny.config, tiny.params)
  audio = _audio(rng, 3, 44100)
  out = tool['mix_stereo'](loaded, audio)
  np.testing.assert_array_equal(out['pans'], 0.0)
  np.testing.assert_allclose(out['stereo'], stereo.centred(out['mix']))
  # Scored against a target that is its own output: zero MR-STFT, balance and pan error.
  gains = out['gains'][:, 1:].mean(-1)
  loss = load_config('mr').loss
  found = tool['score'](out, out['mix'], out['stereo'], np.zeros(3), out['gains'][:, 0] * 0 + gains,
                        loss, 0.05)
  assert found['mr_stft'] == pytest.approx(0.0, abs=1e-5)
  assert found['mr_stft_mid'] == pytest.approx(0.0, abs=1e-5)
  assert np.isnan(found['mr_stft_side'])  # a centred target has no side
  assert found['pan_error'] == 0.0
  # A target placed off the centre: the centred mix has the full side error and a pan error.
  wide = stereo.mix_numpy(audio, gains, [-0.5, 0.0, 0.5])
  found = tool['score'](out, out['mix'], wide, np.array([-0.5, 0.0, 0.5]), gains, loss, 0.05)
  assert found['mr_stft_side'] > 1.0 and found['pan_error'] == pytest.approx(1 / 3, abs=1e-6)


def test_a_stereo_mixer_streams_as_offline_and_the_table_and_pairs():
  rng = np.random.default_rng(1)
  tiny = TinyModel('mr', outputs=('gain', 'pan'), max_channels=4)
  tiny.params['pan_mlp'] = jax.tree.map(lambda x: 2.0 * x, tiny.params['pan_mlp'])
  loaded = models.load(tiny.config, tiny.params)
  audio = _audio(rng, 4, 3 * 13230 + 77)
  out = tool['mix_stereo'](loaded, audio)
  assert out['stereo'].shape == (2, audio.shape[-1]) and np.ptp(out['pans']) > 0.05
  assert tool['stream_difference'](loaded, audio, rng) < 1e-4
  rows = {'a': [{k: 1.0 for k, _ in tool['COLUMNS']}, {k: 3.0 for k, _ in tool['COLUMNS']}],
          'b': [{k: float('nan') for k, _ in tool['COLUMNS']}]}
  text = tool['table'](rows)
  assert '| a | 2.000 |' in text and '| b | n/a |' in text
  m, h = tool['paired']([1.0, 2.0, 3.0, np.nan], [0.0, 1.0, 2.5, 1.0])
  assert m == pytest.approx(2.5 / 3) and h > 0
