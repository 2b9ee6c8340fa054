"""The console automixers (equal-loudness preset, Dugan) through the mixer protocol, everywhere a trained mixer goes."""

import numpy as np
import pytest
import soundfile as sf
import tensorflow as tf

from alm_jax import checkpoints
from alm_jax import export
from alm_jax import loudness
from alm_jax import mix
from alm_jax import models
from alm_jax import restore
from alm_jax.inference import offline
from alm_jax.inference import streaming
from alm_jax.models import console
from checkpoint_fixtures import parse_flags
from conftest import REPO, load_config

SR = 44100
NAMES = ('loudness_preset', 'dugan')


def _song(seconds=3.0, levels=(0.01, 0.1, 0.5), seed=0, swell=0.5):
  """[1, channels, n] noise at these RMS levels, each swelling by +-swell at 0.5 Hz."""
  rng = np.random.default_rng(seed)
  n = int(seconds * SR)
  t = np.arange(n) / SR
  env = 1.0 + swell * np.sin(2 * np.pi * 0.5 * t + rng.uniform(0, 6, (len(levels), 1)))
  return (rng.normal(size=(1, len(levels), n)) * np.asarray(levels)[None, :, None] * env
          ).astype(np.float32)


@pytest.mark.parametrize('name', NAMES)
def test_causal_and_streams_like_offline(name):
  config = load_config(name)
  audio, mask = _song(), np.array([[True, True, True]])
  ref = offline.mix_arrays(models.load(config, {}), audio, mask)
  f2 = models.build_mixer(config).capabilities.f2
  # Causal: a change at sample n moves no gain of a frame ending before n + f2 (zero latency).
  n = 20 * f2 + 300
  bumped = audio.copy()
  bumped[..., n:] *= 4.0
  out = offline.mix_arrays(models.load(config, {}), bumped, mask)
  np.testing.assert_array_equal(out['gains'][..., :n // f2 + 1], ref['gains'][..., :n // f2 + 1])
  np.testing.assert_array_equal(out['mix'][:, :n], ref['mix'][:, :n])
  assert np.abs(out['gains'][..., n // f2 + 2:] - ref['gains'][..., n // f2 + 2:]).max() > 1e-3
  for size in (441, 2205, 3000):
    mixer = streaming.StreamingMixer(models.load(config, {}), 1, 3, mask)
    k = audio.shape[-1] // size
    streamed = np.concatenate([mixer.process(audio[0, :, i * size:(i + 1) * size])
                               for i in range(k)])
    np.testing.assert_allclose(streamed, ref['mix'][0, :k * size], rtol=1e-5, atol=1e-7)


def test_loudness_preset_brings_channels_to_equal_loudness_at_the_house_level():
  config = load_config('loudness_preset')
  audio = _song(seconds=8.0, levels=(0.01, 0.1, 0.5))
  out = offline.mix_arrays(models.load(config, {}), audio, np.ones((1, 3), bool))
  gains = out['gains'][0]
  tail = slice(-int(2 * SR), None)
  gained = audio[0, :, tail] * np.repeat(gains, 2205, axis=1)[:, :audio.shape[-1]][:, tail]
  # Steady state: the channels' gained levels agree within 1 dB, 40 dB of input spread undone.
  levels = 10 * np.log10(np.mean(gained ** 2, axis=1))
  assert np.ptp(levels) < 1.0, levels
  # Three uncorrelated channels at target - 10 log10(3) each: the mix near the house level.
  weighted = loudness.k_weight(out['mix'][0].astype(np.float64), SR)[tail]
  mix_loudness = 10 * np.log10(np.mean(weighted ** 2)) - 0.691
  assert abs(mix_loudness - config.model.target_lufs) < 1.5


def test_dugan_gains_share_the_power_and_follow_the_controls():
  config = load_config('dugan')
  audio = _song(levels=(0.02, 0.1, 0.3, 0.0))  # channel 3 silent: below the noise floor
  mask = np.ones((1, 4), bool)
  g = offline.mix_arrays(models.load(config, {}), audio, mask)['gains'][0]
  # Power gains sum to 1 over the open channels, on every frame after the first.
  np.testing.assert_allclose(np.sum(g[:3, 1:] ** 2, axis=0), 1.0, rtol=1e-5)
  assert np.all(g[3, 1:] <= 10 ** (config.model.closed_gain_db / 20) + 1e-9)
  # The louder channel gets the larger share.
  assert np.all(g[2, 5:] > g[1, 5:]) and np.all(g[1, 5:] > g[0, 5:])
  # A +6 dB weight on channel 0 raises its share; shares still sum to 1.
  config.model.weights_db = (6.0, 0.0, 0.0, 0.0)
  gw = offline.mix_arrays(models.load(config, {}), audio, mask)['gains'][0]
  assert np.all(gw[0, 5:] > g[0, 5:])
  np.testing.assert_allclose(np.sum(gw[:3, 1:] ** 2, axis=0), 1.0, rtol=1e-5)
  # NOM attenuation off: equal inputs stay at unity instead of -10 log10(3) dB.
  equal = _song(levels=(0.1, 0.1, 0.1), seed=3, swell=0.0)
  config = load_config('dugan')
  ge = offline.mix_arrays(models.load(config, {}), equal, np.ones((1, 3), bool))['gains'][0, :, -10:]
  np.testing.assert_allclose(20 * np.log10(ge), -10 * np.log10(3), atol=1.0)
  config.model.nom_attenuation = False
  ge = offline.mix_arrays(models.load(config, {}), equal, np.ones((1, 3), bool))['gains'][0, :, -10:]
  np.testing.assert_allclose(20 * np.log10(ge), 0.0, atol=1.0)


def test_dugan_last_mic_hold():
  config = load_config('dugan')
  audio = _song(levels=(0.2, 0.05), seconds=2.0)
  audio[0, :, SR:] = 0.0  # everyone stops talking
  g = offline.mix_arrays(models.load(config, {}), audio, np.ones((1, 2), bool))['gains'][0]
  # Silence: nobody is above the floor, so the last open mics stay open with their last shares.
  late = g[:, -5:]
  closed = 10 ** (config.model.closed_gain_db / 20)
  assert np.all(np.any(late > closed * 10, axis=0))
  open_ = late > closed * 10
  np.testing.assert_allclose(np.sum(np.where(open_, late, 0.0) ** 2, axis=0), 1.0, rtol=1e-5)
  # Held, to float precision (the share is recomputed from the held levels each frame).
  np.testing.assert_allclose(late, np.broadcast_to(late[:, :1], late.shape), rtol=1e-6, atol=0)


def test_frame_power_k_weighting_matches_time_domain_filtering():
  rng = np.random.default_rng(1)
  x = rng.normal(size=(20 * 2205,)).astype(np.float64)
  y = loudness.k_weight(x, SR)
  framed = x.reshape(20, 2205)
  approx = np.asarray(console.frame_power(framed.astype(np.float32), SR, True))
  exact = np.mean(y.reshape(20, 2205)[1:] ** 2, axis=1)
  np.testing.assert_allclose(approx[1:], exact, rtol=0.05)


@pytest.mark.parametrize('name', NAMES)
def test_console_mixers_mix_and_export_from_their_config_file(name, tmp_path, capsys):
  path = str(REPO / 'configs' / f'{name}.py')
  config, params, step = restore.restore_params(path)
  assert params == {} and step == 0 and config.model.name == name
  song = tmp_path / 'song'
  song.mkdir()
  audio = _song(seconds=1.5, levels=(0.01, 0.05, 0.2))[0]  # white noise louder reads as garbage
  for i, ch in enumerate(audio):
    sf.write(song / f'ch{i}.wav', ch, SR, subtype='FLOAT')
  assert mix.run(parse_flags(mix, f'--checkpoint={path}', f'--input={song}',
                             f'--output={tmp_path / "out"}')) == 0
  written, _ = sf.read(tmp_path / 'out' / 'song' / 'mix.wav', dtype='float32')
  ref = offline.mix_arrays(models.load(config, {}), audio[None], np.ones((1, 3), bool))
  np.testing.assert_allclose(written, ref['mix'][0], rtol=1e-5, atol=1e-7)
  assert export.run(parse_flags(export, f'--checkpoint={path}', f'--output={tmp_path / "sm"}',
                                '--streaming', '--block_size=441')) == 0
  loaded = tf.saved_model.load(str(tmp_path / 'sm'))
  init, step_fn = loaded.signatures['init_state'], loaded.signatures['step']
  mask = tf.ones((1, 3), tf.bool)
  state = init(channel_mask=mask)
  outs = []
  for i in range(20):
    res = step_fn(block=tf.constant(audio[None, :, i * 441:(i + 1) * 441]), channel_mask=mask,
                  **state)
    state = {k: v for k, v in res.items() if k.startswith('state_')}
    outs.append(res['out'].numpy()[0])
  # TensorFlow's program against JAX's: a few ulps apart where the mix is near zero.
  np.testing.assert_allclose(np.concatenate(outs), ref['mix'][0, :20 * 441], rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='nothing to train'):
    models.build_model(config)
  capsys.readouterr()


def test_a_trainable_config_file_is_not_a_checkpoint():
  with pytest.raises(checkpoints.CheckpointError, match='trained parameters'):
    restore.restore_params(str(REPO / 'configs' / 'quickstart.py'))
