"""SavedModel export: the reloaded TF functions match the JAX mixer (offline and streaming)."""

import types

import jax
import numpy as np
import pytest
import tensorflow as tf

from alm_jax import export
from alm_jax import models
from alm_jax.inference import offline
from checkpoint_fixtures import STEREO, TinyModel, liven_stereo, parse_flags, save_checkpoint

SR = 44100
BLOCK = 4410  # two F2 frames per streaming block


def _run_cli(*args):
  return export.run(parse_flags(export, *args))


@pytest.fixture(scope='module')
def exported(tmp_path_factory):
  """A checkpoint of a tiny MR model, exported through the CLI both ways, and a JAX reference."""
  root = tmp_path_factory.mktemp('export')
  tiny = TinyModel('mr')
  config, params = tiny.config, tiny.params
  save_checkpoint(root / 'run', config, params, step=7)
  assert _run_cli(f'--checkpoint={root / "run"}', f'--output={root / "offline"}') == 0
  assert _run_cli(f'--checkpoint={root / "run" / "checkpoints" / "7"}',
                  f'--output={root / "streaming"}', '--streaming', f'--block_size={BLOCK}') == 0

  rng = np.random.default_rng(0)
  n = int(1.5 * SR)
  t = np.arange(n) / SR
  audio = (rng.normal(size=(3, 5, n)) * 0.2 * (1.2 + np.sin(2 * np.pi * rng.uniform(
      0.3, 1.5, (3, 5, 1)) * t))).astype(np.float32)
  mask = np.array([[1, 1, 0, 0, 0], [1, 1, 1, 1, 1], [1, 0, 1, 0, 1]], bool)
  ref = offline.mix_arrays(models.load(config, params), audio, mask)
  return types.SimpleNamespace(root=root, config=config, params=params, audio=audio, mask=mask,
                               ref=ref)


def test_offline_savedmodel_matches_jax_at_two_batch_sizes_and_channel_counts(exported):
  e = exported
  loaded = tf.saved_model.load(str(e.root / 'offline'))
  serve = loaded.signatures['serving_default']
  # The parameters are variables, not constants folded into the graph.
  leaves = jax.tree.leaves(e.params)
  assert len(serve.variables) == len(leaves)
  assert sorted(v.shape.num_elements() for v in serve.variables) == sorted(x.size for x in leaves)

  out = serve(audio=tf.constant(e.audio), channel_mask=tf.constant(e.mask))
  np.testing.assert_allclose(out['mix'].numpy(), e.ref['mix'], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out['gains'].numpy(), e.ref['gains'], rtol=1e-5, atol=1e-6)

  # Another batch size, channel count and length (not a whole F2 frame): the
  # first song's active channels, a prefix of it (causal, so a prefix of its mix).
  n = 30001
  out = serve(audio=tf.constant(e.audio[:1, :2, :n]), channel_mask=tf.ones((1, 2), tf.bool))
  assert out['mix'].shape == (1, n) and out['gains'].shape == (1, 2, -(-n // 2205))
  np.testing.assert_allclose(out['mix'].numpy(), e.ref['mix'][:1, :n], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out['gains'].numpy(), e.ref['gains'][:1, :2, :-(-n // 2205)],
                             rtol=1e-5, atol=1e-6)

  with pytest.raises(tf.errors.InvalidArgumentError, match='c <= 8'):
    serve(audio=tf.zeros((1, 9, 3000)), channel_mask=tf.ones((1, 9), tf.bool))


def test_streaming_savedmodel_matches_offline_mix(exported):
  e = exported
  loaded = tf.saved_model.load(str(e.root / 'streaming'))
  init, step = loaded.signatures['init_state'], loaded.signatures['step']
  mask = tf.constant(e.mask)
  state = init(channel_mask=mask)
  assert all(k.startswith('state_') for k in state)
  outs = []
  num_blocks = 4  # 8 F2 frames: crosses the second F1 frame (frame 6)
  for i in range(num_blocks):
    block = tf.constant(e.audio[..., i * BLOCK:(i + 1) * BLOCK])
    result = step(block=block, channel_mask=mask, **state)
    state = {k: v for k, v in result.items() if k.startswith('state_')}
    outs.append(result['out'].numpy())
    # The gains in force after the block: those of the next F2 frame.
    np.testing.assert_allclose(result['gains'].numpy(), e.ref['gains'][..., 2 * (i + 1)],
                               rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(np.concatenate(outs, axis=-1), e.ref['mix'][:, :num_blocks * BLOCK],
                             rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize('value', [np.nan, np.inf, 1e20])
def test_exported_streaming_step_contains_a_poisoned_block(exported, value):
  """One bad sample in the exported step: its channel muted for the block, `faults` says so, the
  state stays finite and the stream goes on exactly as if that channel had been silent."""
  e = exported
  loaded = tf.saved_model.load(str(e.root / 'streaming'))
  init, step = loaded.signatures['init_state'], loaded.signatures['step']
  mask = tf.constant(e.mask)

  def run(audio):
    state = init(channel_mask=mask)
    outs, faults = [], []
    for i in range(4):
      result = step(block=tf.constant(audio[..., i * BLOCK:(i + 1) * BLOCK]), channel_mask=mask,
                    **state)
      state = {k: v for k, v in result.items() if k.startswith('state_')}
      outs.append(result['out'].numpy())
      faults.append(result['faults'].numpy())
      assert all(np.isfinite(v.numpy()).all() for k, v in state.items() if v.dtype.is_floating)
    return np.concatenate(outs, axis=-1), np.stack(faults)

  poisoned = e.audio.copy()
  poisoned[1, 3, BLOCK + 123] = value
  muted = e.audio.copy()
  muted[1, 3, BLOCK:2 * BLOCK] = 0.0
  out, faults = run(poisoned)
  ref, ref_faults = run(muted)
  assert np.isfinite(out).all()
  np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
  assert faults[1, 1, 3] and faults.sum() == 1 and not ref_faults.any()


def test_cli_refuses_a_missing_checkpoint(tmp_path, capsys):
  assert _run_cli(f'--checkpoint={tmp_path / "nothing"}', f'--output={tmp_path / "out"}') == 2
  assert 'No checkpoint' in capsys.readouterr().err
  assert not (tmp_path / 'out').exists()


def test_per_segment_dmc_exports_the_whole_input_function(tmp_path, capsys):
  """DMC-OG: the offline SavedModel mixes segment by segment like the CLI; no streaming export."""
  tiny = TinyModel('dmc_og', max_channels=4)
  config, params = tiny.config, tiny.params
  config.data.segment_seconds = 2.0  # 2 whole 975 ms frames
  params['post_processor']['dense2']['kernel'] *= 30.0  # spread the gains (test_mix.py)
  save_checkpoint(tmp_path / 'run', config, params)
  assert _run_cli(f'--checkpoint={tmp_path / "run"}', f'--output={tmp_path / "offline"}') == 0
  assert _run_cli(f'--checkpoint={tmp_path / "run"}', f'--output={tmp_path / "streaming"}',
                  '--streaming') == 2
  assert 'per-segment DMC' in capsys.readouterr().err
  assert not (tmp_path / 'streaming').exists()

  loaded = tf.saved_model.load(str(tmp_path / 'offline'))  # owns the variables: keep it alive
  serve = loaded.signatures['serving_default']
  assert len(serve.variables) == len(jax.tree.leaves(params))
  f2 = tiny.spec.f2
  rng = np.random.default_rng(1)
  # Two segments, then a partial one; and one segment with a partial one, fewer channels.
  cases = [(3, 4, 5 * f2 + 500, [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 1, 1]]),
           (1, 2, 2 * f2 + 700, [[1, 1]])]
  for b, c, n, mask in cases:
    levels = np.geomspace(0.02, 4.0, c)[rng.permutation(c)]
    audio = (rng.normal(size=(b, c, n)) * levels[:, None]).astype(np.float32)
    mask = np.array(mask, bool)
    ref = offline.mix_arrays(models.load(config, params), audio, mask)
    out = serve(audio=tf.constant(audio), channel_mask=tf.constant(mask))
    assert out['mix'].shape == (b, n) and out['gains'].shape == (b, c, -(-n // f2))
    np.testing.assert_allclose(out['mix'].numpy(), ref['mix'], rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out['gains'].numpy(), ref['gains'], rtol=1e-5, atol=1e-7)
    if b == 3:  # the test can see a channel mix-up: the channels' gains differ
      assert np.ptp(np.log(ref['gains'][1, :, 0])) > 0.1
  with pytest.raises(tf.errors.InvalidArgumentError, match='c <= 4'):
    serve(audio=tf.zeros((1, 5, 3000)), channel_mask=tf.ones((1, 5), tf.bool))


def test_per_frame_dmc_exports_a_streaming_step(tmp_path):
  """DMC-B-0L (causal, zero latency) exports the same streaming signatures as the ALM.

  With 3 channels at most: the export's shape probe must not trip the channel limit.
  """
  tiny = TinyModel('dmc_b_0l', max_channels=3)
  save_checkpoint(tmp_path / 'run', tiny.config, tiny.params)
  block = 21499  # half a 975 ms F2 frame
  assert _run_cli(f'--checkpoint={tmp_path / "run"}', f'--output={tmp_path / "streaming"}',
                  '--streaming', f'--block_size={block}') == 0
  rng = np.random.default_rng(3)
  audio = (rng.normal(size=(1, 3, 5 * block)) * 0.3).astype(np.float32)
  mask = np.array([[True, True, False]])
  ref = offline.mix_arrays(models.load(tiny.config, tiny.params), audio, mask)
  outs, _ = _stream_saved_model(tmp_path / 'streaming', audio, mask, block, 5)
  assert np.ptp(ref['gains'][0, :2, :3]) > 1e-3  # the gains move between frames
  np.testing.assert_allclose(np.concatenate(outs, axis=-1), ref['mix'], rtol=1e-5, atol=1e-6)


def _stream_saved_model(path, audio, mask, block: int, blocks: int):
  """A streaming SavedModel's `out` for `blocks` blocks of audio [b, c, n], and its state before each
  block and after the last (the `state_*` tensors)."""
  loaded = tf.saved_model.load(str(path))
  states = [loaded.signatures['init_state'](channel_mask=tf.constant(mask))]
  outs = []
  for i in range(blocks):
    result = loaded.signatures['step'](block=tf.constant(audio[..., i * block:(i + 1) * block]),
                                       channel_mask=tf.constant(mask), **states[-1])
    states.append({k: v for k, v in result.items() if k.startswith('state_')})
    outs.append(result['out'].numpy())
  return outs, states


def test_a_stereo_mixer_exports_its_pans_and_stereo_mix(tmp_path):
  """A mixer with pans (config.model.outputs): the SavedModels carry `pans` and `stereo` = JAX."""
  tiny = TinyModel('mr', max_channels=4, **STEREO)
  liven_stereo(tiny)
  save_checkpoint(tmp_path / 'run', tiny.config, tiny.params)
  assert _run_cli(f'--checkpoint={tmp_path / "run"}', f'--output={tmp_path / "offline"}') == 0
  assert _run_cli(f'--checkpoint={tmp_path / "run"}', f'--output={tmp_path / "streaming"}',
                  '--streaming', f'--block_size={BLOCK}') == 0
  rng = np.random.default_rng(4)
  audio = (rng.normal(size=(2, 4, 4 * BLOCK + 100)) * 0.2).astype(np.float32)
  mask = np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
  ref = offline.mix_arrays(models.load(tiny.config, tiny.params), audio, mask)
  assert np.ptp(ref['pans'][1, :, 1:]) > 0.01  # the pans differ between channels and frames
  serve = tf.saved_model.load(str(tmp_path / 'offline')).signatures['serving_default']
  out = serve(audio=tf.constant(audio), channel_mask=tf.constant(mask))
  assert set(out) == {'mix', 'gains', 'pans', 'stereo'}
  for key in out:
    np.testing.assert_allclose(out[key].numpy(), ref[key], rtol=1e-5, atol=1e-5, err_msg=key)
  outs, states = _stream_saved_model(tmp_path / 'streaming', audio, mask, BLOCK, 4)
  assert 'state_pan' in states[0]
  for i, state in enumerate(states[1:]):
    # The pans in force after the block: those of the next F2 frame.
    np.testing.assert_allclose(state['state_pan'].numpy() * mask, ref['pans'][..., 2 * (i + 1)],
                               atol=1e-5)
  np.testing.assert_allclose(np.concatenate(outs, axis=-1), ref['stereo'][..., :4 * BLOCK],
                             rtol=1e-5, atol=1e-5)


@pytest.mark.slow  # 30-40 s: a third streaming export; the lagged step is checked in JAX by default
def test_a_lagged_mixer_streams_through_its_savedmodel_as_offline(tmp_path):
  """config.model.f1_lag: the F1 work in parts (its state `f1_input`, `raw_next`) survives export."""
  tiny = TinyModel('mr', f1_lag=3, max_channels=3)
  save_checkpoint(tmp_path / 'run', tiny.config, tiny.params)
  assert _run_cli(f'--checkpoint={tmp_path / "run"}', f'--output={tmp_path / "streaming"}',
                  '--streaming', f'--block_size={BLOCK}') == 0
  blocks = 10  # 20 F2 frames: the second F1 frame is in force from frame 9
  audio = (np.random.default_rng(5).normal(size=(1, 3, blocks * BLOCK)) * 0.3).astype(np.float32)
  mask = np.array([[True, False, True]])
  ref = offline.mix_arrays(models.load(tiny.config, tiny.params), audio, mask)
  outs, states = _stream_saved_model(tmp_path / 'streaming', audio, mask, BLOCK, blocks)
  assert {'state_f1_input', 'state_raw_next'} <= set(states[0])
  np.testing.assert_allclose(np.concatenate(outs, axis=-1), ref['mix'], rtol=1e-5, atol=1e-6)
