"""Tests for the DMC baselines (alm_jax.models.dmc, configs/dmc_og.py, configs/dmc_b_0l.py).

The model tests share one jitted forward pass per config and mostly feed it
[2, 3, NUM_SAMPLES], so it compiles once or twice. Parameters are initialised with an 'rbg' key:
threefry's random-bit kernels take tens of seconds to compile on a loaded CPU,
and the properties tested here do not depend on which generator drew the weights.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alm_jax import frames
from alm_jax import models
from alm_jax import restore
from alm_jax.embeddings import vggish_frontend as frontend
from alm_jax.inference import offline
from alm_jax.models import build_model
from alm_jax.models import dmc

CONFIGS = ('dmc_og', 'dmc_b_0l')
F1 = 42998  # 975 ms at 44.1 kHz
NUM_SAMPLES = 3 * F1 + 500  # three F1/F2 frames and a partial one (dropped)
T = 3


def _tiny(name):
  from conftest import load_config, shrink_model  # pylint: disable=g-import-not-at-top
  config = shrink_model(load_config(name))  # mlp_dims is the post-processor's: (8, 4)
  return config


def _logits(gains, model_config):
  """Inverts the gain mapping: linear gains -> the post-processor's pre-sigmoid outputs."""
  p = (20.0 * np.log10(np.asarray(gains, np.float64)) - model_config.min_gain_db) / (
      model_config.max_gain_db - model_config.min_gain_db)
  return np.log(p / (1.0 - p))


def _init_layers(module):
  """Touches every layer without the front end (cheaper to compile than the full call)."""
  emb = module.embedding(jnp.zeros((1, 96, 64)))  # one log-mel patch
  return module._gains(emb[None, None], jnp.ones((1, 1), bool), True)  # pylint: disable=protected-access


@functools.lru_cache(maxsize=None)
def _setup(name):
  """(config, model, params, forward) with a rescaled output layer.

  At initialisation the channels' logits differ by little, so the last layer is
  rescaled to give them a standard deviation of 2 around 0: the gains then spread
  over the dB range and differ between channels by far more than the tolerances.
  """
  config = _tiny(name)
  model = build_model(config)
  params = jax.jit(functools.partial(model.init, method=_init_layers))(
      jax.random.key(0, impl='rbg'))['params']
  forward = jax.jit(lambda p, audio, mask: model.apply({'params': p}, audio, mask))
  last = params['post_processor']['dense2']
  z = _logits(forward(params, _audio(0), jnp.ones((2, 3), bool))['pred_gains'], config.model)
  z = z - float(last['bias'][0])
  k = 2.0 / max(float(z.std()), 1e-6)
  params = jax.tree_util.tree_map(lambda x: x, params)  # a copy to edit
  params['post_processor']['dense2'] = {'kernel': last['kernel'] * k,
                                        'bias': jnp.full_like(last['bias'], -k * float(z.mean()))}
  return config, model, params, forward


@pytest.fixture(params=CONFIGS)
def setup(request):
  return _setup(request.param)


def _audio(seed, channels=3, batch=2, n=NUM_SAMPLES):
  """Noise with a different level per channel, so the channels' embeddings differ."""
  rng = np.random.default_rng(seed)
  levels = np.array([0.02, 0.1, 0.4, 0.05])[:channels]
  return (rng.standard_normal((batch, channels, n)) * levels[None, :, None]).astype(np.float32)


def _assert_same(a, b, atol=1e-5, rtol=1e-4):
  np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=atol, rtol=rtol)


# ---- structure -----------------------------------------------------------------


@pytest.mark.parametrize('name', CONFIGS)
def test_configs(name):
  from conftest import load_config  # pylint: disable=g-import-not-at-top
  config = load_config(name)
  m = config.model
  assert (m.name, m.min_gain_db, m.max_gain_db, tuple(m.mlp_dims), m.dmc_dropout) == (
      'dmc', -48.0, 24.0, (256, 256), 0.2)
  # SR framing: non-overlapping 975 ms frames.
  assert frames.FrameSpec.from_config(m) == frames.FrameSpec(44100, F1, F1, 1)
  og = name == 'dmc_og'
  assert m.dmc_per_frame is not og
  assert m.zero_latency is not og
  assert config.data.bleed.enabled is not og
  assert config.data.levels.enabled is not og


@pytest.mark.parametrize('name', CONFIGS)
def test_parameter_tree_with_vggish(name):
  """VGGish option: the encoder is the 'embedding' subtree; post-processor 2d -> 256 -> 256 -> 1."""
  from conftest import load_config  # pylint: disable=g-import-not-at-top
  config = load_config(name)
  model = build_model(config)
  shapes = jax.eval_shape(model.init, jax.random.key(0), jax.ShapeDtypeStruct((1, 2, F1), jnp.float32),
                          jax.ShapeDtypeStruct((1, 2), jnp.bool_))['params']
  assert set(shapes) == {'embedding', 'post_processor'}
  assert shapes['embedding']['fc2']['kernel'].shape == (4096, 128)
  pp = shapes['post_processor']
  assert [pp[f'dense{i}']['kernel'].shape for i in range(3)] == [(256, 256), (256, 256), (256, 1)]
  assert set(pp) == {'dense0', 'dense1', 'dense2', 'prelu0', 'prelu1'}


def test_bad_config_fails_clearly():
  shape = (jax.ShapeDtypeStruct((1, 1, F1), jnp.float32), jax.ShapeDtypeStruct((1, 1), jnp.bool_))
  config = _tiny('dmc_og')
  config.model.min_gain_db = 24.0
  with pytest.raises(ValueError, match='min_gain_db'):
    jax.eval_shape(build_model(config).init, jax.random.key(0), *shape)
  config = _tiny('dmc_og')
  config.model.gain_activation = 'softplus'
  with pytest.raises(ValueError, match='sigmoid_db'):
    jax.eval_shape(build_model(config).init, jax.random.key(0), *shape)


def test_gain_mapping_and_masked_mean():
  np.testing.assert_allclose(dmc.gain_from_unit(jnp.array([0.0, 0.5, 1.0]), -48.0, 24.0),
                             10.0 ** (np.array([-48.0, -12.0, 24.0]) / 20.0), rtol=1e-5)
  x = jnp.arange(2 * 3 * 4, dtype=jnp.float32).reshape(2, 3, 4)
  x = x.at[0, 2].set(1e9)  # a masked channel's value must not leak
  mask = jnp.array([[True, True, False], [True, True, True]])
  got = dmc.masked_channel_mean(x, mask)
  assert got.shape == (2, 1, 4)
  _assert_same(got[0, 0], (x[0, 0] + x[0, 1]) / 2)
  _assert_same(got[1, 0], x[1].mean(0))


# ---- the model -----------------------------------------------------------------


def test_shapes_and_gain_range(setup):
  config, _, params, forward = setup
  mask = jnp.array([[True, True, False], [True, True, True]])
  out = forward(params, _audio(1), mask)
  assert out['pred_gains'].shape == out['gains'].shape == (2, 3, T)
  assert out['mix'].shape == (2, T * F1)
  m = config.model
  active = np.asarray(out['pred_gains'])[np.asarray(mask)]
  lo, hi = 10.0 ** (m.min_gain_db / 20.0), 10.0 ** (m.max_gain_db / 20.0)
  assert np.all((active >= lo * (1 - 1e-5)) & (active <= hi * (1 + 1e-5)))
  # The scaled last layer spreads the gains: they are not all the same value.
  assert np.ptp(np.log(active)) > 0.1
  np.testing.assert_array_equal(out['gains'][0, 2], 0.0)
  np.testing.assert_array_equal(out['pred_gains'][0, 2], 0.0)
  if m.zero_latency:
    _assert_same(out['gains'][..., 1:], out['pred_gains'][..., :-1])
    _assert_same(out['gains'][..., 0], jnp.where(mask, m.initial_gain, 0.0))
  else:
    _assert_same(out['gains'], out['pred_gains'])
  if not m.dmc_per_frame:
    # One gain per channel per segment.
    _assert_same(out['pred_gains'], jnp.broadcast_to(out['pred_gains'][..., :1], (2, 3, T)))
  # The mix is the gained sum of the channels, frame by frame.
  audio = _audio(1)[..., :T * F1].reshape(2, 3, T, F1)
  want = np.einsum('bctn,bct->btn', audio, np.asarray(out['gains'])).reshape(2, -1)
  _assert_same(out['mix'], want)


def test_channel_permutation_equivariance(setup):
  _, _, params, forward = setup
  audio = _audio(2)
  mask = np.array([[True, True, False], [True, True, True]])
  perm = np.array([2, 0, 1])
  base = forward(params, audio, mask)
  permuted = forward(params, audio[:, perm], mask[:, perm])
  _assert_same(permuted['gains'], base['gains'][:, perm])
  _assert_same(permuted['mix'], base['mix'])


def test_padded_channel_changes_nothing(setup):
  """Two channels, and the same two plus a masked third holding loud noise: identical output."""
  _, _, params, forward = setup
  audio = _audio(3)
  mask = jnp.array([[True, True, False]] * 2)
  audio[:, 2] = np.random.default_rng(4).standard_normal(audio[:, 2].shape) * 3.0
  padded = forward(params, audio, mask)
  two = forward(params, audio[:, :2], mask[:, :2])  # the one other compile
  _assert_same(padded['gains'][:, :2], two['gains'])
  _assert_same(padded['mix'], two['mix'])
  np.testing.assert_array_equal(padded['gains'][:, 2], 0.0)


def test_causality_or_segment_dependence(setup):
  """DMC-B-0L: changing the input after sample n leaves mix[:n + 1] unchanged.

  DMC-OG (non-causal by design): a change in the last frame changes the gain of frame 0.
  """
  config, _, params, forward = setup
  n = F1 + 1234  # inside the second frame
  audio = _audio(5)
  changed = audio.copy()
  changed[..., n + 1:] = _audio(6)[..., n + 1:] * 5.0
  mask = jnp.ones((2, 3), bool)
  a, b = forward(params, audio, mask), forward(params, changed, mask)
  if config.model.dmc_per_frame:
    np.testing.assert_array_equal(np.asarray(a['mix'])[:, :n + 1], np.asarray(b['mix'])[:, :n + 1])
    np.testing.assert_array_equal(a['gains'][..., :2], b['gains'][..., :2])
    assert not np.allclose(a['gains'][..., 2], b['gains'][..., 2])
  else:
    assert not np.allclose(a['gains'][..., 0], b['gains'][..., 0], rtol=1e-3)


def test_segment_ignores_silent_padding():
  """DMC-OG averages over the frames where some active channel sounds.

  Example 0: every channel is silent in the last frame (padding). Example 1: the
  active channels are silent there and only a masked channel holds noise. Both
  must get the gains of the first two frames alone.
  """
  _, model, params, forward = _setup('dmc_og')
  audio = _audio(7)
  audio[..., 2 * F1:] = 0.0
  audio[1, 2] = np.random.default_rng(8).standard_normal(NUM_SAMPLES) * 0.3
  mask = jnp.array([[True, True, True], [True, True, False]])
  out = forward(params, audio, mask)

  @jax.jit
  def two_frame_gains(p, audio, mask):
    signal, g = frontend.frame_input(audio, frames.FrameSpec.from_config(model.config),
                                     frontend.FrontendSpec.from_config(model.config))
    emb = model.apply({'params': p}, signal, g, method='_embed')
    return model.apply({'params': p}, emb.mean(axis=2, keepdims=True), mask, True, method='_gains')

  want = two_frame_gains(params, audio[..., :2 * F1], mask)
  _assert_same(out['pred_gains'], jnp.broadcast_to(want, (2, 3, T)))


def test_mix_by_segments():
  """DMC-OG over a long input: one gain per segment, each as if that segment were mixed alone."""
  _, model, params, forward = _setup('dmc_og')
  seg = 2 * F1
  audio = _audio(9, batch=1, n=2 * seg + F1 + 100)  # segments of 2, 2 and 1 frames (+ a dropped tail)
  mask = jnp.array([[True, False, True]])
  out = jax.jit(functools.partial(dmc.mix_by_segments, model, segment_frames=2))(params, audio, mask)
  assert out['gains'].shape == (1, 3, 5) and out['mix'].shape == (1, 5 * F1)
  # References: each segment alone, completed with silence (which the segment mean ignores).
  pieces = [audio[0, :, i:min(i + seg, 5 * F1)] for i in (0, seg, 2 * seg)]
  pieces = np.stack([np.pad(p, [(0, 0), (0, NUM_SAMPLES - p.shape[-1])]) for p in pieces + pieces[2:]])
  ref = [forward(params, pieces[i:i + 2], jnp.repeat(mask, 2, axis=0))['gains'][..., 0]
         for i in (0, 2)]
  ref = np.concatenate([np.asarray(r) for r in ref])[:3]  # [segment, c]
  _assert_same(out['gains'], np.repeat(ref.T[None], [2, 2, 1], axis=-1))
  framed = audio[..., :5 * F1].reshape(1, 3, 5, F1)
  _assert_same(out['mix'], np.einsum('bctn,bct->btn', framed, np.asarray(out['gains'])).reshape(1, -1))
  with pytest.raises(ValueError, match='per-segment'):
    dmc.mix_by_segments(_setup('dmc_b_0l')[1], params, audio, mask, 2)


def test_chunked_mixer_matches_whole_call():
  """DMC-B-0L runs through alm_jax.mix's chunked mixer (the CLI and export path) unchanged."""
  config, model, params, forward = _setup('dmc_b_0l')
  audio = _audio(8)
  mask = jnp.array([[True, True, False], [True, True, True]])
  whole = forward(params, audio, mask)
  chunked = jax.jit(functools.partial(offline.mix_whole, models.build_mixer(config)))(params, audio, mask)
  _assert_same(chunked['gains'][..., :T], whole['gains'])
  _assert_same(chunked['mix'][:, :T * F1], whole['mix'])


def test_segment_model_refuses_chunked_mixing():
  config = _tiny('dmc_og')
  with pytest.raises(ValueError, match='per-segment'):
    jax.eval_shape(functools.partial(offline.mix_whole, models.build_mixer(config)), _setup('dmc_og')[2],
                   jax.ShapeDtypeStruct((1, 2, F1), jnp.float32), jax.ShapeDtypeStruct((1, 2), jnp.bool_))


# ---- training ------------------------------------------------------------------


def _fake_data(config):
  """The input pipeline's three functions, on random audio (no dataset needed)."""
  b, c = int(config.train.batch_size), int(config.model.max_channels)
  s = int(round(config.data.segment_seconds * 44100))

  def batch(seed):
    rng = np.random.default_rng(seed)
    mask = np.zeros((b, c), bool)
    mask[:, :3] = True
    audio = (rng.standard_normal((b, c, s)) * 0.1 * mask[..., None]).astype(np.float32)
    return {'audio': audio, 'channel_mask': mask, 'target': audio.sum(1) * 0.5,
            'bleed_severity': np.zeros(b, np.float32)}

  def make_train_iterator(config, *, start_step=0, process_index=0, process_count=1, workdir=None,
                          steps_per_epoch=None):
    del config, process_index, process_count, workdir, steps_per_epoch
    step = start_step
    while True:
      yield batch(step)
      step += 1

  def make_eval_batches(config, split, *, process_index=0, process_count=1, workdir=None):
    del config, split, process_index, process_count, workdir
    out = batch(1000)
    out['example_mask'] = np.ones(b, bool)
    out['song_id'] = [f'song{i}' for i in range(b)]
    return [out]

  return make_train_iterator, make_eval_batches, lambda config: 2


def _smoke_config(name, num_epochs):
  config = _tiny(name)
  config.model.max_channels = 4
  # Two frames: with one, the zero-latency model would apply only the initial gain.
  config.data.segment_seconds = 2.0
  config.train.batch_size = 2
  config.train.num_epochs = num_epochs
  config.train.steps_per_epoch = 1
  config.train.log_every_steps = 1
  config.train.eval_every_steps = 1
  config.train.checkpoint_every_steps = 1
  # One STFT resolution: the loss is not under test and each one costs compile time.
  config.loss.fft_sizes, config.loss.win_lengths = (512,), (440,)
  return config


def _train(config, workdir):
  """alm_jax.train.train_and_evaluate on fake data, with 'rbg' keys (module docstring)."""
  from alm_jax import train  # pylint: disable=g-import-not-at-top
  train_iter, eval_batches, num_songs = _fake_data(config)
  with jax.default_prng_impl('rbg'):
    return train.train_and_evaluate(config, str(workdir), make_train_iterator=train_iter,
                                    make_eval_batches=eval_batches, num_train_songs=num_songs)


@pytest.mark.parametrize('name', CONFIGS)
def test_two_step_smoke_train_and_resume(name, tmp_path):
  """Through the ALM's training code: one update, then a resumed run to two.

  Checks evaluation and checkpoints run, the 'embedding' subtree stays frozen
  (the first 100 epochs), the post-processor learns, and the checkpoint restores.
  The resumed run reuses the first run's compilation.
  """
  from alm_jax import checkpoints  # pylint: disable=g-import-not-at-top
  one = _train(_smoke_config(name, num_epochs=1), tmp_path)
  assert int(one.step) == 1
  one = jax.device_get(one.params)
  two = _train(_smoke_config(name, num_epochs=2), tmp_path)
  assert int(two.step) == 2
  two = jax.device_get(two.params)
  assert all(bool(np.all(np.isfinite(x))) for x in jax.tree_util.tree_leaves(two))
  same = jax.tree_util.tree_map(lambda a, b: bool(np.array_equal(a, b)), one, two)
  assert all(jax.tree_util.tree_leaves(same['embedding']))
  assert not any(jax.tree_util.tree_leaves(same['post_processor']))
  saved_config, params, step = restore.restore_params(str(tmp_path))
  assert step == 2 and saved_config.model.name == 'dmc'
  assert set(params) == {'embedding', 'post_processor'}
  jax.tree_util.tree_map(np.testing.assert_array_equal, params, two)
