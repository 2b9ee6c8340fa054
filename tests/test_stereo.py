"""Tests for alm_jax/stereo.py and the mixer with pans: the pan law, stereo mixing, the stereo ALM."""

import functools
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alm_jax import frames
from alm_jax import stereo
from alm_jax import train
from alm_jax.models import build_mixer
from alm_jax.models import build_model
from alm_jax.models import protocol
from checkpoint_fixtures import STEREO, TinyModel, liven_stereo
from conftest import load_config, shrink_model

SAMPLES = 44100 * 2 + 2205 * 3  # 2 s and three F2 frames: whole hops and a partial hop


def test_pan_law_is_constant_power_and_ordered():
  p = np.linspace(-1, 1, 41)
  left, right = stereo.pan_law(p)
  np.testing.assert_allclose(left ** 2 + right ** 2, 1.0, atol=1e-12)
  np.testing.assert_allclose(stereo.pan_law(-1.0), (1.0, 0.0), atol=1e-12)  # hard left
  np.testing.assert_allclose(stereo.pan_law(1.0), (0.0, 1.0), atol=1e-12)
  np.testing.assert_allclose(stereo.pan_law(0.0), (np.sqrt(0.5), np.sqrt(0.5)))  # -3 dB
  assert np.all(np.diff(left) < 0) and np.all(np.diff(right) > 0)
  np.testing.assert_allclose(stereo.pan_law(5.0), stereo.pan_law(1.0))  # clipped
  jl, jr = stereo.pan_law(jnp.asarray(p, jnp.float32))  # the same law in JAX
  assert isinstance(jl, jax.Array)
  np.testing.assert_allclose(jl, left, atol=1e-6)
  np.testing.assert_allclose(jr, right, atol=1e-6)


def test_stereo_mix_mid_side_and_centre():
  rng = np.random.default_rng(0)
  spec = frames.FrameSpec(44100, 4410, 441, 10)
  b, c, t = 2, 3, 12
  audio = rng.standard_normal((b, c, t * spec.f2)).astype(np.float32)
  gains = rng.uniform(0, 2, (b, c, t)).astype(np.float32)
  mask = np.array([[True, True, False], [True, True, True]])
  centre = np.zeros((b, c, t), np.float32)
  mono = frames.apply_gains(jnp.asarray(audio), jnp.asarray(gains), jnp.asarray(mask), spec)
  st = stereo.apply_gains_stereo(jnp.asarray(audio), jnp.asarray(gains), jnp.asarray(centre),
                                 jnp.asarray(mask), spec)
  assert st.shape == (b, 2, t * spec.f2)
  np.testing.assert_allclose(st, stereo.centred(mono), atol=1e-5)
  ms = stereo.mid_side(st)
  np.testing.assert_allclose(ms[:, 0], mono, atol=1e-5)  # centre: the mid is the mono mix
  np.testing.assert_allclose(ms[:, 1], 0.0, atol=1e-6)
  assert not np.any(stereo.has_side(np.asarray(ms)))
  # Hard left / right: each channel on one bus only; a masked channel nowhere.
  pans = np.broadcast_to(np.array([-1.0, 1.0, 1.0], np.float32)[None, :, None], (b, c, t))
  st = np.asarray(stereo.apply_gains_stereo(audio, gains, jnp.asarray(pans), mask, spec))
  f = lambda ch, e: (frames.f2_frames(audio[e, ch], spec) * gains[e, ch, :, None]).reshape(-1)
  np.testing.assert_allclose(st[0, 0], f(0, 0), atol=1e-5)
  np.testing.assert_allclose(st[0, 1], f(1, 0), atol=1e-5)  # channel 2 is masked
  np.testing.assert_allclose(st[1, 1], f(1, 1) + f(2, 1), atol=1e-5)
  assert np.all(stereo.has_side(stereo.mid_side(st)))
  # Static gains and pans on whole tracks: the pipeline's target, the same law.
  static_g, static_p = gains[1, :, 0], np.array([-0.4, 0.0, 0.7], np.float32)
  want = stereo.apply_gains_stereo(audio[1:], np.repeat(static_g[None, :, None], t, -1),
                                   jnp.asarray(np.repeat(static_p[None, :, None], t, -1)),
                                   np.ones((1, c), bool), spec)[0]
  np.testing.assert_allclose(stereo.mix_numpy(audio[1], static_g, static_p), want, atol=1e-5)


def test_outputs_setting():
  cfg = load_config('mr').model
  assert stereo.outputs_of(cfg) == ('gain',) and not stereo.has_pans(cfg)
  cfg.outputs = ('gain', 'pan')
  assert stereo.has_pans(cfg)
  cfg.outputs = ('pan',)
  with pytest.raises(ValueError, match="config.model.outputs"):
    stereo.outputs_of(cfg)


# ---- the ALM with pans ---------------------------------------------------------------------


@functools.lru_cache(maxsize=None)
def _models():
  """(mono config, stereo config, stereo params): the tiny ALM-MR with and without pans."""
  mono = shrink_model(load_config('mr'))
  mono.model.max_channels = 4
  st = shrink_model(load_config('mr'))
  st.model.max_channels = 4
  st.model.outputs = ('gain', 'pan')
  f1 = frames.FrameSpec.from_config(st.model).f1
  params = jax.jit(build_model(st).init)(jax.random.PRNGKey(3), jnp.zeros((1, 1, f1)),
                                         jnp.ones((1, 1), bool))['params']
  # Move the pan head off its near-zero start, so pans differ visibly between channels.
  params = jax.tree_util.tree_map_with_path(
      lambda path, x: x * 2.0 if 'pan_mlp' in jax.tree_util.keystr(path) else x, params)
  return mono, st, params


def _audio(seed=0, b=2, c=4, n=SAMPLES):
  rng = np.random.default_rng(seed)
  env = np.repeat(rng.uniform(0.01, 0.4, (b, c, n // 4410 + 1)), 4410, axis=-1)[..., :n]
  return (rng.standard_normal((b, c, n)) * env).astype(np.float32)


def test_stereo_model_keeps_the_mono_gain_path():
  mono, st, params = _models()
  mono_params = {k: v for k, v in params.items() if k != 'pan_mlp'}
  shapes = lambda t: jax.tree.map(lambda x: x.shape, t)
  # A mono model's tree is the stereo model's without the pan head: mono checkpoints unchanged.
  f1 = frames.FrameSpec.from_config(mono.model).f1
  fresh = jax.eval_shape(build_model(mono).init, jax.random.PRNGKey(0), jnp.zeros((1, 1, f1)),
                         jnp.ones((1, 1), bool))['params']
  assert shapes(fresh) == shapes(mono_params) and 'pan_mlp' in params
  audio, mask = _audio(), np.array([[1, 1, 1, 0], [1, 1, 1, 1]], bool)
  out_m = build_model(mono).apply({'params': mono_params}, audio, mask)
  out_s = build_model(st).apply({'params': params}, audio, mask)
  assert set(out_m) == {'pred_gains', 'gains', 'mix'}
  assert set(out_s) == set(out_m) | {'pred_pans', 'pans', 'stereo'}
  for k in out_m:  # the same gains and mono mix, bit for bit
    np.testing.assert_array_equal(out_m[k], out_s[k])
  pans = np.asarray(out_s['pans'])
  assert np.all(np.abs(pans) <= 1) and np.all(pans[0, 3] == 0)  # masked channel: 0
  np.testing.assert_array_equal(pans[..., 0], 0.0)  # zero latency: the centre before a prediction
  np.testing.assert_array_equal(pans[..., 1:], np.asarray(out_s['pred_pans'])[..., :-1] * mask[..., None])
  assert np.std(pans[1, :, 1:]) > 0.05  # not all at the centre
  spec = frames.FrameSpec.from_config(st.model)
  np.testing.assert_allclose(out_s['stereo'], stereo.apply_gains_stereo(
      audio, out_s['gains'], out_s['pans'], mask, spec), atol=1e-6)


def test_pans_are_causal_and_permutation_equivariant():
  _, st, params = _models()
  model = build_model(st)
  audio, mask = _audio(1), np.ones((2, 4), bool)
  out = model.apply({'params': params}, audio, mask)
  perm = np.array([2, 0, 3, 1])
  permuted = model.apply({'params': params}, audio[:, perm], mask)
  np.testing.assert_allclose(permuted["pans"], np.asarray(out["pans"])[:, perm], atol=1e-4)
  np.testing.assert_allclose(permuted['stereo'], out['stereo'], atol=1e-4)
  spec = frames.FrameSpec.from_config(st.model)
  cut = 20 * spec.f2  # change everything after frame 20: pans applied up to frame 20 stay
  later = audio.copy()
  later[..., cut:] = _audio(9)[..., cut:]
  changed = model.apply({'params': params}, later, mask)
  np.testing.assert_array_equal(changed['pans'][..., :21], out['pans'][..., :21])


@pytest.mark.slow  # ~22 s; the default run streams stereo in test_live_engine (live = offline)
def test_step_stereo_equals_the_module_in_any_chunks():
  """Whole signal, whole hops and frame by frame (streaming's path): the same gains, pans, mix."""
  _, st, params = _models()
  mixer = build_mixer(st)
  assert mixer.capabilities.stereo
  audio, mask = _audio(2), np.array([[1, 1, 0, 1], [1, 1, 1, 1]], bool)
  spec = frames.FrameSpec.from_config(st.model)
  t = SAMPLES // spec.f2
  out = build_model(st).apply({'params': params}, audio, mask)
  step = jax.jit(mixer.step_stereo)
  for sizes in ([t], [12, 6, t - 18], [1] * 7 + [5, t - 12]):
    state, pieces, start = mixer.init_state(2, 4), [], 0
    for k in sizes:
      state, o = step(params, state, audio[..., start * spec.f2:(start + k) * spec.f2], mask)
      pieces.append((o['gains'], o['pans'], o['stereo'], o['mix']))
      start += k
    g, p, mix, mono = (np.concatenate(x, axis=-1) for x in zip(*pieces))
    np.testing.assert_allclose(g, out['gains'], atol=1e-5)
    np.testing.assert_allclose(p, out['pans'], atol=1e-5)
    np.testing.assert_allclose(mix, out['stereo'], atol=1e-4)
    np.testing.assert_allclose(mono, out['mix'], atol=1e-4)
    np.testing.assert_allclose(mixer.pans_in_force(state), out['pred_pans'][..., -1], atol=1e-5)
  # The mono step of the stereo mixer: the same gains, the mono mix.
  _, g, mono = jax.jit(mixer.step)(params, mixer.init_state(2, 4), audio[..., :t * spec.f2], mask)
  np.testing.assert_allclose(mono, out['mix'], atol=1e-4)


def test_a_mono_mixer_is_placed_at_the_centre():
  mono, _, params = _models()
  mixer = build_mixer(mono)
  assert not mixer.capabilities.stereo
  mono_params = {k: v for k, v in params.items() if k != 'pan_mlp'}
  audio, mask = _audio(3)[..., :44100], np.ones((2, 4), bool)
  audio = audio[..., :(44100 // 2205) * 2205]
  state = mixer.init_state(2, 4)
  _, g, mix = mixer.step(mono_params, state, audio, mask)
  _, o = protocol.step_stereo(mixer, mono_params, mixer.init_state(2, 4), audio, mask)
  np.testing.assert_array_equal(g, o['gains'])
  np.testing.assert_array_equal(mix, o['mix'])
  np.testing.assert_array_equal(o['pans'], 0.0)
  np.testing.assert_allclose(o['stereo'], stereo.centred(mix), atol=0)
  np.testing.assert_array_equal(protocol.pans_in_force(mixer, state), 0.0)
  with pytest.raises(protocol.UnsupportedModelError, match='no pans'):
    mixer.step_stereo(mono_params, state, audio, mask)


def test_pans_are_refused_for_a_gains_only_mixer():
  config = shrink_model(load_config('dmc_b_0l'))
  config.model.outputs = ('gain', 'pan')
  with pytest.raises(ValueError, match='sets gains only'):
    build_model(config)
  with pytest.raises(ValueError, match='sets gains only'):
    build_mixer(config)


# ---- everywhere a mix goes: offline and streaming ------------------------------------------------


# Slow (~140 s on 2 cores): every engine at several chunkings; the default run keeps
# test_step_stereo_equals_the_module_in_any_chunks and the real-pipeline stereo training test.
@pytest.mark.slow
def test_offline_and_streaming_stereo_equal_the_module():
  from alm_jax import models  # pylint: disable=g-import-not-at-top
  from alm_jax.inference import offline, streaming  # pylint: disable=g-import-not-at-top
  _, st, params = _models()
  loaded = models.load(st, params)
  spec = frames.FrameSpec.from_config(st.model)
  audio, mask = _audio(4, n=SAMPLES + 1000), np.array([[1, 1, 0, 1], [1, 1, 1, 1]], bool)
  ref = build_model(st).apply({'params': params}, audio[..., :SAMPLES], mask)
  out = offline.mix_arrays(loaded, audio, mask, chunk_seconds=0.3)  # one hop per chunk
  assert out['stereo'].shape == (2, 2, audio.shape[-1])
  assert out['pans'].shape == out['gains'].shape == (2, 4, -(-audio.shape[-1] // spec.f2))
  t = SAMPLES // spec.f2
  np.testing.assert_allclose(out['pans'][..., :t], ref['pans'], atol=1e-5)
  np.testing.assert_allclose(out['stereo'][..., :SAMPLES], ref['stereo'], atol=1e-4)
  np.testing.assert_allclose(out['mix'][..., :SAMPLES], ref['mix'], atol=1e-4)
  # Streaming, blocks of any size: each sample gets the gain and pan in force, as offline.
  mixer = streaming.StreamingMixer(loaded, batch=2, channels=4, channel_mask=mask)
  rng = np.random.default_rng(5)
  cuts = np.sort(rng.choice(np.arange(1, audio.shape[-1]), 40, replace=False))
  blocks = [mixer.process(b) for b in np.split(audio, cuts, axis=-1)]
  assert blocks[0].shape[:2] == (2, 2)
  np.testing.assert_allclose(np.concatenate(blocks, axis=-1), out['stereo'], atol=1e-4)
  # In force after the last sample (inside the last, partial F2 frame): that frame's.
  np.testing.assert_allclose(mixer.pans, out['pans'][..., -1], atol=1e-5)
  np.testing.assert_allclose(mixer.gains, out['gains'][..., -1], atol=1e-5)
  assert np.abs(mixer.pans).max() > 0.05 and np.all(mixer.pans[0, 2] == 0)


def test_console_automixers_pan_to_the_centre():
  from alm_jax import restore  # pylint: disable=g-import-not-at-top
  for path in ('configs/dugan.py', 'configs/loudness_preset.py'):
    loaded = restore.load_mixer(str(pathlib.Path(__file__).resolve().parents[1] / path))
    mixer = loaded.mixer
    assert not mixer.capabilities.stereo
    f2 = mixer.capabilities.f2
    audio = _audio(6, b=1, c=3, n=8 * f2)
    mask = np.ones((1, 3), bool)
    _, gains, mix = mixer.step(loaded.params, mixer.init_state(1, 3), audio, mask)
    _, out = protocol.step_stereo(mixer, loaded.params, mixer.init_state(1, 3), audio, mask)
    np.testing.assert_array_equal(out['gains'], gains)
    np.testing.assert_array_equal(out['pans'], 0.0)
    np.testing.assert_allclose(out['stereo'], stereo.centred(mix), atol=0)


def test_the_pan_heads_own_inputs_move_the_pans_and_not_the_gains():
  with_it = TinyModel('mr', **STEREO)
  liven_stereo(with_it)
  audio, mask = _audio(4, c=3), np.array([[1, 1, 1], [1, 1, 0]], bool)
  # The layout's spread is where the training's spread term reads it (train.layout_spread_logit).
  a, sown = with_it.model.apply({'params': with_it.params}, audio, mask, mutable=['intermediates'])
  logit = np.asarray(train.layout_spread_logit(sown))
  assert logit.shape == a['pans'].shape and np.isfinite(logit).all()
  for part, flag in (('pan_relation', 'register.pan_relation'), ('pan_embed', 'pan_embedding'),
                     ('pan_layout', 'register.pan_layout')):
    other = TinyModel('mr', **dict(STEREO, **{flag: False}))
    params = {k: v for k, v in with_it.params.items() if k != part}
    b = other.model.apply({'params': params}, audio, mask)
    np.testing.assert_array_equal(a['gains'], b['gains'])  # the gain path does not read it
    assert np.abs(np.asarray(a['pans']) - np.asarray(b['pans'])).max() > 1e-3, part
