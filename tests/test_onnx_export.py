"""ONNX export: graphs pass onnx.checker and ONNX Runtime reproduces the JAX mixer to 1e-5.

The default run checks the complex-modulus rewrite of `alm_jax.inference.onnx_export`,
nested conds in a scan and the compaction of constants on small functions, and the CLI's
refusals. Without the ONNX extra (`pip install -e ".[onnx]"`) the module skips. Converting the
tiny models
takes about 30 s per graph on one core, so the model checks (ALM and DMC-B-0L offline and
streaming, DMC-OG offline, and the shipped `pretrained:alm_mr`) are `slow`.
"""

import json
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alm_jax import export
from alm_jax import models
from alm_jax import restore
from alm_jax.inference import offline
from alm_jax.inference import onnx_export
from alm_jax.inference import streaming
from alm_jax.models import register
from alm_jax.models import staging
from checkpoint_fixtures import STEREO, TinyModel, liven_stereo, parse_flags, save_checkpoint

# The extra's packages (setup.py extras_require['onnx']); without them these tests skip.
ONNX_EXTRA = 'needs the ONNX extra: pip install -e ".[onnx]" (or tools/setup.sh --test)'
onnx = pytest.importorskip('onnx', reason=ONNX_EXTRA)
ort = pytest.importorskip('onnxruntime', reason=ONNX_EXTRA)
pytest.importorskip('jax2onnx', reason=ONNX_EXTRA)

SR = 44100
TOL = dict(rtol=1e-5, atol=1e-5)


def _run_cli(*args):
  return export.run(parse_flags(export, *args))


def _session(path):
  """A session as a plugin host makes one: all graph optimizations, one thread."""
  options = ort.SessionOptions()
  options.intra_op_num_threads = 1
  options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
  return ort.InferenceSession(str(path), options, providers=['CPUExecutionProvider'])


def _run(session, **feeds):
  return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds)))


def test_rfft_modulus_and_nested_conds_in_a_scan_match_jax():
  """|rfft| (wrong in jax2onnx 0.13-0.17 without the rewrite) and conds three deep in a scan.

  The capture repair (`_inline_captures`) is exercised by the streaming
  graphs (slow tests): this small scan does not trip ONNX Runtime's bug.
  """
  window = jnp.asarray(np.hanning(400), jnp.float32)
  weights = jnp.asarray(np.random.default_rng(0).normal(size=(257, 8)), jnp.float32)

  def fn(x, flags):
    mag = jnp.abs(jnp.fft.rfft(x * window, n=512, axis=-1)) @ weights  # [4, 8]

    def body(carry, k):
      def deep(c):  # three conds deep inside the scan, reading outer values
        inner = lambda c: jax.lax.cond(k < 3, lambda c: c * weights[k, 0], lambda c: c + 1.0, c)
        return jax.lax.cond(k != 4, inner, lambda c: c - mag[0, 0], c)
      carry = jax.lax.cond(flags[k], deep, lambda c: c, carry)
      return carry, carry.sum()

    carry, sums = jax.lax.scan(body, mag, jnp.arange(6))
    return [carry, sums]

  x = np.random.default_rng(1).normal(size=(4, 400)).astype(np.float32)
  flags = np.array([True, True, False, True, True, True])
  specs = [jax.ShapeDtypeStruct(x.shape, jnp.float32), jax.ShapeDtypeStruct(flags.shape, jnp.bool_)]
  model = onnx_export.convert(fn, specs, ['x', 'flags'], ['carry', 'sums'])
  onnx.checker.check_model(model)
  session = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
  out = _run(session, x=x, flags=flags)
  ref = jax.jit(fn)(x, flags)
  np.testing.assert_allclose(out['carry'], ref[0], rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(out['sums'], ref[1], rtol=1e-5, atol=1e-3)


def test_register_and_level_scans_convert_inside_a_cond():
  """The register's spectrum and the running scans (`frames.stack`) in a cond, as the stream
  runs them: a slice of a complex array and JAX's `stack` primitive both broke the export."""
  rule = register.Rule(n_fft=2048, sample_rate=SR, slow=0.01)
  level_rule = staging.Rule(range_db=40.0, slow=0.01, smooth=0.5)

  def fn(f2_frames, flag):
    def stats(x):
      power, reg = register.frame_stats(x, rule)
      st, running = register.running(jnp.zeros(power.shape[:2] + (register.STATE_SIZE,)),
                                     power, reg, rule)
      _, level = staging.running_level(jnp.zeros(power.shape[:2] + (staging.STATE_SIZE,)),
                                       jnp.sqrt(power), level_rule)
      return [running, level, st]

    return jax.lax.cond(flag, stats, lambda x: [jnp.zeros(x.shape[:3]), jnp.zeros(x.shape[:3]),
                                                jnp.zeros(x.shape[:2] + (3,))], f2_frames)

  x = np.random.default_rng(2).normal(size=(1, 2, 3, 2205)).astype(np.float32)
  specs = [jax.ShapeDtypeStruct(x.shape, jnp.float32), jax.ShapeDtypeStruct((), jnp.bool_)]
  model = onnx_export.convert(fn, specs, ['x', 'flag'], ['running', 'level', 'state'])
  session = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
  out = _run(session, x=x, flag=np.array(True))
  ref = jax.jit(fn)(x, True)
  for key, want in zip(('running', 'level', 'state'), ref):
    np.testing.assert_allclose(out[key], want, rtol=1e-4, atol=1e-4, err_msg=key)


def test_the_ends_pitch_converts():
  """`register.frame_pitch` (the ends term's): shares across channels, a real DFT of the even
  spectrum, argmaxes over lags. Tones a channel each, with bleed, so the periods are clear."""
  rule = register.Rule(n_fft=2048, sample_rate=SR, slow=0.01)
  t = np.arange(2205) / SR
  tones = np.stack([np.sin(2 * np.pi * f * t) + 0.5 * np.sin(4 * np.pi * f * t)
                    for f in (415.0, 262.0, 131.0)])
  x = (tones + 0.3 * tones[[1, 2, 0]])[None, :, None].repeat(2, axis=2).astype(np.float32)

  def fn(f2_frames):
    return list(register.frame_pitch(f2_frames, rule))

  model = onnx_export.convert(fn, [jax.ShapeDtypeStruct(x.shape, jnp.float32)], ['x'],
                              ['weight', 'pitch'])
  session = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
  out = _run(session, x=x)
  weight, pitch = jax.jit(fn)(x)
  np.testing.assert_allclose(out['pitch'], pitch, atol=1e-4)
  np.testing.assert_allclose(out['weight'], weight, rtol=1e-3)
  np.testing.assert_allclose(out['pitch'][0, :, 0], np.log2(np.array([415.0, 262.0, 131.0]) / 1000),
                             atol=0.03)


def test_uniform_and_repeated_constants_are_not_stored_in_full():
  """A broadcast 0 of `where` and a table used twice: 2 small constants instead of 3 big ones."""
  table = jnp.asarray(np.random.default_rng(3).normal(size=(64, 1024)), jnp.float32)

  def fn(x):
    y = jnp.where(x > 0, x, 0.0) * table  # jax2onnx writes the 0 as a [64, 1024] tensor
    return [jnp.tanh(y) * table + jnp.sin(y) * jnp.asarray(np.asarray(table))]

  specs = [jax.ShapeDtypeStruct(table.shape, jnp.float32)]
  model = onnx_export.convert(fn, specs, ['x'], ['y'])
  onnx.checker.check_model(model, full_check=True)
  assert model.ByteSize() < 1.5 * table.size * 4  # one copy of the table, no full-size zeros
  x = np.random.default_rng(4).normal(size=table.shape).astype(np.float32)
  session = ort.InferenceSession(model.SerializeToString(), providers=['CPUExecutionProvider'])
  np.testing.assert_allclose(_run(session, x=x)['y'], jax.jit(fn)(x)[0], rtol=1e-6, atol=1e-6)


def test_cli_refuses_streaming_a_per_segment_model_and_too_many_channels(tmp_path, capsys):
  tiny = TinyModel('dmc_og', max_channels=4)
  save_checkpoint(tmp_path / 'run', tiny.config, tiny.params)
  assert _run_cli(f'--checkpoint={tmp_path / "run"}', f'--output={tmp_path / "s"}', '--format=onnx',
                  '--streaming') == 2
  assert 'per-segment' in capsys.readouterr().err
  assert _run_cli(f'--checkpoint={tmp_path / "run"}', f'--output={tmp_path / "o"}', '--format=onnx',
                  '--onnx_channels=5') == 2
  assert 'max_channels' in capsys.readouterr().err
  assert not (tmp_path / 's').exists() and not (tmp_path / 'o').exists()


# ---------------------------------------------------------------------------
# Whole models (slow)
# ---------------------------------------------------------------------------


def _audio(rng, b, c, n):
  t = np.arange(n) / SR
  levels = np.geomspace(0.05, 2.0, c)[rng.permutation(c)][:, None]
  wobble = 1.2 + np.sin(2 * np.pi * rng.uniform(0.3, 1.5, (b, c, 1)) * t)
  return (rng.normal(size=(b, c, n)) * levels * wobble * 0.2).astype(np.float32)


@pytest.fixture(scope='module', params=['mr', 'dmc_b_0l', 'pretrained', 'mr_stereo'])
def checkpoint(request, tmp_path_factory):
  """A tiny ALM-MR (mono or with pans) or DMC-B-0L checkpoint, or the shipped pretrained:alm_mr."""
  root = tmp_path_factory.mktemp(f'onnx_{request.param}')
  if request.param == 'pretrained':
    config, params, _ = restore.restore_params('pretrained:alm_mr')
    return types.SimpleNamespace(root=root, config=config, params=params,
                                 flag='--checkpoint=pretrained:alm_mr')
  if request.param == 'mr_stereo':  # the register and a ramp, as the shipped one; the layout too
    tiny = TinyModel('mr', **STEREO)
    liven_stereo(tiny)
  else:
    tiny = TinyModel(request.param)
  if request.param.startswith('dmc'):
    tiny.params['post_processor']['dense2']['kernel'] *= 30.0  # spread the gains (test_mix.py)
  save_checkpoint(root / 'run', tiny.config, tiny.params)
  return types.SimpleNamespace(root=root, config=tiny.config, params=tiny.params,
                               flag=f'--checkpoint={root / "run"}')


@pytest.mark.slow
def test_offline_onnx_matches_jax_at_two_batch_sizes_and_channel_counts(checkpoint):
  e = checkpoint
  e.shapes = {'offline_a': (2, 5), 'offline_b': (1, 3)}  # (batch, channels)
  e.n = int(2.4 * SR)
  for folder, (b, c) in e.shapes.items():
    assert _run_cli(e.flag, f'--output={e.root / folder}', '--format=onnx', f'--onnx_batch={b}',
                    f'--onnx_channels={c}', f'--onnx_samples={e.n}') == 0
  rng = np.random.default_rng(0)
  for folder, (b, c) in e.shapes.items():
    path = e.root / folder / 'offline.onnx'
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    described = json.loads((e.root / folder / export.EXPORT_MARKER).read_text())
    assert (described['format'], described['batch'], described['channels']) == ('onnx', b, c)
    session = _session(path)
    audio = _audio(rng, b, c, e.n)
    mask = np.ones((b, c), bool)
    mask[0, 1] = False
    out = _run(session, audio=audio, channel_mask=mask)
    ref = offline.mix_arrays(models.load(e.config, e.params), audio, mask)
    # The gains differ between channels and frames, far above the tolerance: a mix-up shows.
    assert np.ptp(np.log(ref['gains'][-1, mask[-1], 1:])) > 1e-3
    assert set(out) == set(ref)  # a stereo mixer's graph also outputs `pans` and `stereo`
    for key in ref:
      np.testing.assert_allclose(out[key], ref[key], err_msg=key, **TOL)
    # Fewer channels and a shorter song: masked silent channels, silence at the end.
    short, used = e.n // 2 + 777, c - 1
    padded = np.zeros_like(audio)
    padded[:, :used, :short] = audio[:, :used, :short]
    mask = np.zeros((b, c), bool)
    mask[:, :used] = True
    out = _run(session, audio=padded, channel_mask=mask)
    ref = offline.mix_arrays(models.load(e.config, e.params), audio[:, :used, :short], mask[:, :used])
    np.testing.assert_allclose(out['mix'][:, :short], ref['mix'], **TOL)
    frames = ref['gains'].shape[-1]
    np.testing.assert_allclose(out['gains'][:, :used, :frames], ref['gains'], **TOL)


@pytest.fixture(scope='module')
def streaming_export(checkpoint):
  """The checkpoint's streaming graphs for 128- and 441-sample blocks, 3 channels."""
  assert _run_cli(checkpoint.flag, f'--output={checkpoint.root / "streaming"}', '--format=onnx',
                  '--streaming', '--onnx_block_sizes=128,441', '--onnx_channels=3') == 0
  return checkpoint


@pytest.mark.slow
@pytest.mark.parametrize('block', [128, 441])
def test_streaming_onnx_matches_the_jax_step_and_the_offline_mix(streaming_export, block):
  e = streaming_export
  folder = e.root / 'streaming'
  init, step = _session(folder / 'init_state.onnx'), _session(folder / f'step_{block}.onnx')
  onnx.checker.check_model(onnx.load(str(folder / f'step_{block}.onnx')), full_check=True)
  state = _run(init)
  assert state and all(k.startswith('state_') for k in state)
  num_blocks = int(1.3 * SR) // block  # crosses F1 frames and the embedding boundaries
  audio = _audio(np.random.default_rng(2), 1, 3, num_blocks * block)
  mask = np.array([[True, True, False]])
  jax_mixer = streaming.StreamingMixer(models.load(e.config, e.params), batch=1, channels=3, channel_mask=mask)
  outs = []
  for i in range(num_blocks):
    block_audio = audio[..., i * block:(i + 1) * block]
    result = _run(step, block=block_audio, channel_mask=mask, **state)
    state = {k[len('new_'):]: v for k, v in result.items() if k.startswith('new_state_')}
    ref_out = jax_mixer.process(block_audio)
    np.testing.assert_allclose(result['out'], ref_out, **TOL)
    np.testing.assert_allclose(result['gains'], jax_mixer.gains, **TOL)
    if 'state_pan' in state:  # a stereo mixer: its pans in force are state
      np.testing.assert_allclose(state['state_pan'] * mask, jax_mixer.pans, **TOL)
    outs.append(result['out'])
  ref = offline.mix_arrays(models.load(e.config, e.params), audio, mask)
  np.testing.assert_allclose(np.concatenate(outs, axis=-1), ref.get('stereo', ref['mix']), **TOL)


@pytest.mark.slow
def test_per_segment_dmc_exports_offline_only(tmp_path):
  tiny = TinyModel('dmc_og', max_channels=4)
  tiny.config.data.segment_seconds = 2.0
  params = tiny.params
  params['post_processor']['dense2']['kernel'] *= 30.0  # spread the gains (test_mix.py)
  save_checkpoint(tmp_path / 'run', tiny.config, params)
  n = 5 * tiny.spec.f2 + 500
  assert _run_cli(f'--checkpoint={tmp_path / "run"}', f'--output={tmp_path / "o"}', '--format=onnx',
                  '--onnx_batch=2', f'--onnx_samples={n}') == 0
  rng = np.random.default_rng(1)
  audio = _audio(rng, 2, 4, n)
  mask = np.array([[1, 1, 0, 1], [1, 1, 1, 1]], bool)
  out = _run(_session(tmp_path / 'o' / 'offline.onnx'), audio=audio, channel_mask=mask)
  ref = offline.mix_arrays(models.load(tiny.config, params), audio, mask)
  assert np.ptp(np.log(ref['gains'][1, :, 0])) > 0.1
  np.testing.assert_allclose(out['mix'], ref['mix'], **TOL)
  np.testing.assert_allclose(out['gains'], ref['gains'], **TOL)


@pytest.mark.slow
def test_offline_onnx_of_the_shipped_mixer_is_at_most_twice_its_savedmodel(tmp_path):
  """The graph stores the parameters and the constants it needs once (`onnx_export.compact`)."""
  flag = '--checkpoint=pretrained:alm_mr'
  assert _run_cli(flag, f'--output={tmp_path / "onnx"}', '--format=onnx') == 0
  assert _run_cli(flag, f'--output={tmp_path / "savedmodel"}') == 0
  size = lambda folder: sum(p.stat().st_size for p in folder.rglob('*') if p.is_file())
  onnx_bytes, savedmodel_bytes = size(tmp_path / 'onnx'), size(tmp_path / 'savedmodel')
  assert onnx_bytes <= 2 * savedmodel_bytes, (onnx_bytes, savedmodel_bytes)
