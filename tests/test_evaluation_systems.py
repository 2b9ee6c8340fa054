"""Tests for alm_jax/evaluation/systems.py: checkpoint lists, RAW, IDEAL, and how per-segment models
mix."""

import math

import jax
import numpy as np
import pytest

from alm_jax import metrics
from alm_jax import models
from alm_jax import stereo
from alm_jax.evaluation import systems
from checkpoint_fixtures import TinyModel
from conftest import load_config
from conftest import shrink_model


def test_parse_checkpoints():
  assert systems.parse_checkpoints('A=/x, B-2=/y/z') == [('A', '/x'), ('B-2', '/y/z')]
  assert systems.parse_checkpoints('') == []
  for bad, match in (('/just/a/path', 'NAME=PATH'), ('A=', 'NAME=PATH'), ('raw=/x', 'reserved'),
                     ('Target=/x', 'reserved'), ('ideal=/x', 'reserved'),
                     ('A b=/x,A_b=/y', 'clashes')):
    with pytest.raises(systems.EvaluationError, match=match):
      systems.parse_checkpoints(bad)


def test_raw_sums_the_active_channels():
  raw = systems.raw_system(load_config('quickstart'))
  f2 = 2205  # 50 ms at 44.1 kHz
  audio = np.random.default_rng(0).standard_normal((3, 2 * f2 + 1)).astype(np.float32)
  mix, gains = raw.mix(audio, np.array([True, True, False]))
  np.testing.assert_allclose(mix, audio[0] + audio[1], rtol=1e-6)
  assert gains.shape == (3, 3) and (gains[:2] == 1).all() and (gains[2] == 0).all()
  assert raw.frame_seconds == pytest.approx(0.05)


def test_ideal_applies_the_examples_ideal_gains():
  """IDEAL: the ideal gains, constant over RAW's F2 frames; balance error 0; refused without them."""
  cfg = load_config('quickstart')
  ideal = systems.ideal_system(cfg)
  f2 = 2205
  audio = np.random.default_rng(0).standard_normal((3, 2 * f2 + 1)).astype(np.float32)
  mask = np.array([True, True, False])
  target_gains = np.array([0.5, 2.0, math.nan])  # unknown only on the padding channel
  mix, gains = ideal.mix(audio, mask, target_gains=target_gains)
  np.testing.assert_allclose(mix, 0.5 * audio[0] + 2.0 * audio[1], rtol=1e-5, atol=1e-6)
  assert gains.shape == (3, 3) and gains.dtype == np.float32
  np.testing.assert_array_equal(gains, [[0.5] * 3, [2.0] * 3, [0.0] * 3])
  assert ideal.frame_seconds == systems.raw_system(cfg).frame_seconds
  assert metrics.balance_error_db(gains, np.nan_to_num(target_gains, nan=1.0), mask) < 1e-5
  assert metrics.gain_change_db_per_s(gains, ideal.frame_seconds, mask) == 0
  for bad in (None, np.array([0.5, math.nan, 1.0]), np.ones(2)):
    with pytest.raises(systems.EvaluationError, match='target_gains'):
      ideal.mix(audio, mask, target_gains=bad, where='song segment 0')
  # RAW, like a mixer, does not read the answer.
  raw_mix, _ = systems.raw_system(cfg).mix(audio, mask, target_gains=target_gains)
  np.testing.assert_allclose(raw_mix, audio[0] + audio[1], rtol=1e-6)


def test_references_are_centred_and_a_stereo_mixer_pans():
  """mix_stereo: RAW (even under a stereo config) and IDEAL at the centre (pans 0,
  the mix at -3 dB both sides, as protocol.step_stereo); a mixer with pans (its capabilities)
  gives its own pans and stereo mix, channels placed back where the example has them."""
  rng = np.random.default_rng(0)
  audio = (0.1 * rng.standard_normal((3, 3 * 13230 + 77))).astype(np.float32)
  mask = np.array([True, False, True])
  panning = TinyModel('mr', outputs=('gain', 'pan'), max_channels=4)
  panning.params['pan_mlp'] = jax.tree.map(lambda x: 2.0 * x, panning.params['pan_mlp'])
  for system in (systems.raw_system(panning.config),
                 systems.ideal_system(load_config('quickstart'))):
    out = system.mix_stereo(audio, mask, target_gains=np.array([0.5, np.nan, 2.0]))
    assert not system.stereo and (out['pans'] == 0).all()
    np.testing.assert_allclose(out['stereo'], stereo.centred(out['mix']), rtol=1e-6)
  # (A mono mixer's centring: test_evaluate.py's ALM-MR, pan error = mean |designed pan|.)
  system = systems.System('PANS', 'causal', panning.config, panning.params,
                          loaded=models.load(panning.config, panning.params))
  out = system.mix_stereo(audio, mask)
  assert system.stereo and out['pans'].shape == out['gains'].shape == (3, -(-audio.shape[1] // 2205))
  assert (out['pans'][1] == 0).all() and (out['gains'][1] == 0).all()  # the masked channel
  assert np.ptp(out['pans'][[0, 2]]) > 0.05
  # Its stereo mix is its pans' and gains' (the zero-latency frames as applied), not centred.
  assert np.abs(out['stereo'][0] - out['stereo'][1]).max() > 1e-3
  mix, gains = system.mix(audio, mask)  # the mono part, the same
  np.testing.assert_array_equal(mix, out['mix'])
  np.testing.assert_array_equal(gains, out['gains'])
  left, right = stereo.pan_law(np.repeat(out['pans'], 2205, axis=-1)[:, :audio.shape[1]])
  applied = np.repeat(out['gains'], 2205, axis=-1)[:, :audio.shape[1]] * audio
  np.testing.assert_allclose(out['stereo'], [(left * applied).sum(0), (right * applied).sum(0)],
                             atol=2e-5)


def test_reference_systems_add_ideal_only_where_every_gain_is_known():
  cfg = load_config('quickstart')
  refs, skipped = systems.reference_systems(cfg, [np.ones(2), np.ones(3)])
  assert [(s.name, s.kind) for s in refs] == [('RAW', 'raw'), ('IDEAL', 'ideal')] and not skipped
  refs, skipped = systems.reference_systems(cfg, [np.ones(2), None])
  assert [s.name for s in refs] == ['RAW']
  assert 'IDEAL' in skipped and '1 of 2 segments' in skipped


@pytest.mark.slow
def test_dmc_og_mixes_whole_segments():
  """DMC-OG as published: one gain per channel per training segment, any input length."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from alm_jax.models import build_model  # pylint: disable=g-import-not-at-top
  cfg = shrink_model(load_config('dmc_og'))
  cfg.data.segment_seconds = 2.0  # two F2 frames of 975 ms per segment
  assert systems.capabilities(cfg).per_segment
  model = build_model(cfg)
  f2 = 42998
  c, n = 3, int(2.5 * f2)  # one whole segment, then half a frame
  params = jax.jit(lambda r: model.init(r, jnp.zeros((1, 8, f2)), jnp.ones((1, 8), bool)))(
      jax.random.key(0, impl='rbg'))['params']
  system = systems.System('DMC-OG', 'per_segment', cfg, params)
  audio = np.random.default_rng(0).standard_normal((c, n)).astype(np.float32) * 0.1
  mix, gains = system.mix(audio, np.ones(c, bool), chunk_seconds=2.0)
  assert mix.shape == (n,) and gains.shape == (c, 3)
  np.testing.assert_allclose(gains[:, 0], gains[:, 1])  # constant within the segment
  assert np.all(gains[:, 2] != gains[:, 0])  # the next segment has its own gains
  applied = np.repeat(gains, f2, axis=-1)[:, :n]
  np.testing.assert_allclose(mix, (applied * audio).sum(0), rtol=1e-4, atol=1e-5)
  assert system.frame_seconds == pytest.approx(f2 / 44100)
