"""tools/stereo_results.py: a thin caller of the evaluation (its systems, `run.measure` and the
Stereo section), plus the streaming check; scores of centred and panning systems."""

import runpy

import jax
import numpy as np
import pytest

from alm_jax import models
from alm_jax import stereo
from alm_jax.data import bleed
from alm_jax.evaluation import examples
from alm_jax.evaluation import report
from alm_jax.evaluation import systems
from checkpoint_fixtures import TinyModel
from conftest import REPO, load_config

tool = runpy.run_path(str(REPO / 'tools' / 'stereo_results.py'))


def _audio(rng, c, n):
  return (rng.normal(size=(c, n)) * np.geomspace(0.05, 0.5, c)[:, None]).astype(np.float32)


def _example(audio, target, gains, target_stereo, pans):
  return examples.Example('song', 0, audio, target, bleed.BLEED_OFF_DB,
                          [f'{i + 1}: x' for i in range(len(audio))], np.asarray(gains, np.float64),
                          target_stereo=target_stereo, ideal_pans=np.asarray(pans, np.float64))


def test_centred_systems_score_the_placement_and_a_perfect_mix_scores_zero(tmp_path):
  rng = np.random.default_rng(0)
  config = load_config('mr')
  audio = _audio(rng, 3, 44100)
  gains = np.array([0.5, 1.0, 2.0])
  target = gains @ audio
  ideal = systems.ideal_system(config)
  # Against a centred target (the designed pans all 0): IDEAL is perfect, the side undefined.
  centred = _example(audio, target, gains, stereo.centred(target), np.zeros(3))
  # A target placed off the centre: every centred system has the full side error and the pan
  # error mean |designed pan|.
  wide = _example(audio, target, gains, stereo.mix_numpy(audio, gains, [-0.5, 0.0, 0.5]),
                  [-0.5, 0.0, 0.5])
  rows = tool['measure_all']([systems.raw_system(config), ideal], [centred, wide], config,
                             plots=str(tmp_path / 'plots'))
  assert [(r['system'], r['_example']) for r in rows] == [('RAW', 0), ('RAW', 1), ('IDEAL', 0),
                                                         ('IDEAL', 1)]
  perfect = rows[2]
  for key in ('mr_stft', 'mr_stft_mid', 'pan_error', 'balance_error_db'):
    assert perfect[key] == pytest.approx(0.0, abs=1e-5), key
  assert np.isnan(perfect['mr_stft_side'])  # a centred target has no side
  assert rows[3]['mr_stft_side'] > 1.0 and rows[3]['pan_error'] == pytest.approx(1 / 3, abs=1e-6)
  assert rows[1]['mr_stft_side'] == rows[3]['mr_stft_side']  # RAW and IDEAL: both no side
  assert not (tmp_path / 'plots').exists()  # stereo-image plots of stereo systems only
  text = '\n'.join(report.stereo_lines(rows, [systems.raw_system(config), ideal]))
  assert '| IDEAL | centre | 2 | 0.167 ± 0.167 |' in text and 'No evaluated system pans' in text


@pytest.mark.slow  # 38 s; evaluate's own stereo test covers the section in the default run
def test_a_stereo_mixer_is_measured_plotted_and_streams_as_offline(tmp_path):
  rng = np.random.default_rng(1)
  tiny = TinyModel('mr', outputs=('gain', 'pan'), max_channels=4)
  tiny.params['pan_mlp'] = jax.tree.map(lambda x: 2.0 * x, tiny.params['pan_mlp'])
  loaded = models.load(tiny.config, tiny.params)
  panner = systems.System('PANS', 'causal', tiny.config, tiny.params, loaded=loaded)
  audio = _audio(rng, 4, 3 * 13230 + 77)
  gains = np.ones(4)
  pans = np.array([-0.6, -0.2, 0.2, 0.6])
  ex = _example(audio, audio.sum(0), gains, stereo.mix_numpy(audio, gains, pans), pans)
  config = examples.eval_data_config(tiny.config, 'test', segment_seconds=3.0)
  rows = tool['measure_all']([panner, systems.raw_system(config)], [ex], config,
                             plots=str(tmp_path))
  assert rows[1]['pan_error'] == pytest.approx(0.4)  # RAW, centred
  out = panner.mix_stereo(audio, np.ones(4, bool), chunk_seconds=3.0)
  assert rows[0]['pan_error'] == pytest.approx(np.mean(np.abs(out['pans'].mean(-1) - pans)))
  assert rows[0]['pan_error'] != pytest.approx(0.4, abs=1e-3)
  assert [p.name for p in tmp_path.iterdir()] == ['song_seg00_PANS.png']
  text = '\n'.join(report.stereo_lines(rows, [panner, systems.raw_system(config)]))
  assert '| PANS | its own | 1 |' in text and '| PANS | RAW | n/a |' in text  # 1 segment: no CI
  assert tool['stream_difference'](loaded, audio, rng) < 1e-4
