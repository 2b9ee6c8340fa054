"""Offline mixing: chunked == whole-song model call, batching, files written, bad input refused."""

import csv
import pathlib
import types

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf

from alm_jax import checkpoints
from alm_jax import frames
from alm_jax import mix
from alm_jax.models import build_model
from conftest import load_config, shrink_model

SR = 44100
# A chunk length no other test uses, so the batch test sees a fresh compile count.
BATCH_CHUNK_SECONDS = 0.9


def _signal(rng, channels, n):
  """Noise with slow level changes, so gains move between F2 frames."""
  t = np.arange(n) / SR
  env = 0.2 * (1.2 + np.sin(2 * np.pi * rng.uniform(0.3, 1.5, (channels, 1)) * t))
  return (rng.normal(size=(channels, n)) * env).astype(np.float32)


def random_params(model, spec, seed=1):
  """Random parameters of the right shapes.

  Cheaper than `jax.jit(model.init)`, which compiles the whole forward pass
  with its initialisers (about 16 s of CPU for the tiny model); the shapes come
  from tracing alone. Kernels are scaled by 1/sqrt(fan-in) so activations stay
  in range and the gains vary.
  """
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 2, spec.f1)),
                          jnp.ones((1, 2), bool))['params']
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path[-1:])
    if 'scale' in name:
      return np.ones(leaf.shape, np.float32)
    if 'negative_slope' in name:
      return np.full(leaf.shape, 0.25, np.float32)
    fan_in = int(np.prod(leaf.shape[:-1])) if len(leaf.shape) > 1 else 400
    return (rng.normal(size=leaf.shape) / np.sqrt(fan_in)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(draw, shapes)


class Setup:
  """A tiny model and its params, built once per config name."""

  def __init__(self, name, zero_latency=True):
    self.config = shrink_model(load_config(name))
    self.config.model.zero_latency = zero_latency
    self.model = build_model(self.config)
    self.spec = frames.FrameSpec.from_config(self.config.model)
    self.params = random_params(self.model, self.spec)

  def whole_song(self, audio, mask):
    return jax.tree.map(np.asarray, jax.jit(self.model.apply)({'params': self.params}, audio, mask))


@pytest.fixture(scope='module')
def mr():
  return Setup('mr')


# SR has no history and stride 1; zero_latency=False covers the unshifted gains.
@pytest.mark.parametrize('name,zero_latency,seconds,chunk_seconds', [
    ('mr', True, 2.37, 0.6), ('sr', False, 3.1, 1.0)])
def test_chunked_mix_equals_whole_song_call(name, zero_latency, seconds, chunk_seconds, mr):
  s = mr if name == 'mr' else Setup(name, zero_latency)
  rng = np.random.default_rng(0)
  n = int(seconds * SR)
  audio = np.stack([_signal(rng, 3, n), _signal(rng, 3, n)])
  mask = np.array([[True, True, True], [True, False, True]])
  ref = s.whole_song(audio, mask)
  out = mix.mix_arrays(s.config, s.params, audio, mask, chunk_seconds=chunk_seconds)
  t = ref['gains'].shape[-1]
  f2 = s.spec.f2
  assert out['mix'].shape == (2, n)  # every input sample is kept
  assert out['gains'].shape == (2, 3, -(-n // f2))
  assert n > mix.ChunkLayout.from_config(s.config).chunk_samples(chunk_seconds)  # several chunks
  np.testing.assert_allclose(out['gains'][..., :t], ref['gains'], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out['mix'][:, :t * f2], ref['mix'], rtol=1e-5, atol=1e-6)
  assert np.all(out['gains'][1, 1] == 0.0)  # masked channel
  # The trailing partial frame gets the gain of its frame, like any other.
  tail = out['gains'][..., -1]
  np.testing.assert_allclose(out['mix'][:, t * f2:], np.einsum('bcn,bc->bn', audio[..., t * f2:], tail),
                             rtol=1e-5, atol=1e-6)

  # Causal: a shorter song is a prefix of the longer one's result, and a new
  # length costs no compile. Without zero latency the gain of the trailing
  # partial frame depends on that frame itself, so only whole frames compare.
  mixer = mix.get_mixer(s.config, chunk_seconds)
  compiles = mixer.num_compiles
  m = n - 30000
  short = mix.mix_arrays(s.config, s.params, audio[..., :m], mask, chunk_seconds=chunk_seconds)
  assert mixer.num_compiles == compiles == 1
  same = m if zero_latency else m // f2 * f2
  np.testing.assert_allclose(short['mix'][:, :same], out['mix'][:, :same], rtol=1e-5, atol=1e-6)


def test_per_segment_dmc_is_refused_up_front():
  with pytest.raises(mix.UnsupportedModelError, match='mix_by_segments'):
    mix.make_chunk_fn(load_config('dmc_og'))


def test_mix_arrays_rejects_bad_arrays(mr):
  audio = np.zeros((1, 2, SR), np.float32)
  bad = audio.copy()
  bad[0, 1, 5] = np.nan
  with pytest.raises(ValueError, match='NaN'):
    mix.mix_arrays(mr.config, mr.params, bad, np.ones((1, 2), bool))
  with pytest.raises(ValueError, match='every channel masked'):
    mix.mix_arrays(mr.config, mr.params, audio, np.zeros((1, 2), bool))
  with pytest.raises(ValueError, match='more than the 8'):
    mix.mix_arrays(mr.config, mr.params, np.zeros((1, 9, SR), np.float32), np.ones((1, 9), bool))


# ---------------------------------------------------------------------------
# Songs on disk
# ---------------------------------------------------------------------------


def _write(path, audio, rate=SR):
  path.parent.mkdir(parents=True, exist_ok=True)
  sf.write(path, np.asarray(audio).T, rate, subtype='PCM_24' if path.suffix == '.flac' else 'FLOAT')
  return path


def _read_gains_csv(path):
  with open(path, newline='') as fh:
    rows = list(csv.reader(fh))
  return rows[0], np.array(rows[1:], np.float64)


@pytest.fixture(scope='module')
def songs_dir(tmp_path_factory):
  """Three songs of different lengths, channel counts, rates, a stereo file and a short file."""
  root = tmp_path_factory.mktemp('songs')
  rng = np.random.default_rng(3)
  _write(root / 'alpha' / 'kick.wav', _signal(rng, 1, int(1.2 * SR)))
  _write(root / 'alpha' / 'keys.wav', _signal(rng, 2, int(1.2 * SR)))  # stereo
  _write(root / 'beta' / 'vox.flac', _signal(rng, 1, int(0.8 * 22050))[0], 22050)
  _write(root / 'gamma' / 'a.wav', _signal(rng, 1, 50000))
  _write(root / 'gamma' / 'b.wav', _signal(rng, 1, 47000))  # padded with silence
  _write(root / 'gamma' / 'c.wav', _signal(rng, 1, 50000))
  return root


def _check_song_output(folder: pathlib.Path, song: mix.Song, raw: bool):
  assert sorted(p.name for p in folder.iterdir()) == sorted(
      ['mix.wav', 'gains.csv', 'gains.png'] + (['raw.wav'] if raw else []))
  audio = mix.load_song(song, SR)
  c, n = audio.shape
  out, rate = sf.read(folder / 'mix.wav', dtype='float32')
  info = sf.info(folder / 'mix.wav')
  assert rate == SR and info.subtype == 'FLOAT' and out.shape == (n,)
  header, table = _read_gains_csv(folder / 'gains.csv')
  assert header == [mix.GAINS_TIME_COLUMN] + song.channel_names
  assert table.shape == (-(-n // 2205), 1 + c)
  np.testing.assert_allclose(table[:, 0], np.arange(table.shape[0]) * 0.05, atol=1e-6)
  # The written mix is the written gains applied to the channels, frame by frame.
  gains = np.repeat(table[:, 1:].T, 2205, axis=1)[:, :n]
  np.testing.assert_allclose(out, np.sum(gains * audio, axis=0), rtol=1e-5, atol=1e-5)
  assert (folder / 'gains.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  if raw:
    np.testing.assert_allclose(sf.read(folder / 'raw.wav', dtype='float32')[0], audio.sum(0),
                               rtol=1e-6, atol=1e-6)


def test_mix_songs_batches_compile_once_and_writes_everything(mr, songs_dir, tmp_path):
  songs = mix.discover_songs([str(songs_dir)])
  assert [s.name for s in songs] == ['alpha', 'beta', 'gamma']
  out_dir = tmp_path / 'out'
  mixer = mix.get_mixer(mr.config, BATCH_CHUNK_SECONDS)
  written = mix.mix_songs(mr.config, mr.params, songs, out_dir, batch_songs=2,
                          chunk_seconds=BATCH_CHUNK_SECONDS, raw=True, progress=False)
  # Two batches of different lengths and channel counts, one compilation.
  assert mixer.num_compiles == 1
  assert written == [out_dir / s.name for s in songs]
  for song in songs:
    _check_song_output(out_dir / song.name, song, raw=True)
  assert mix.load_song(songs[1], SR).shape == (1, int(0.8 * SR))  # 22.05 kHz resampled
  assert not list(out_dir.glob('.tmp-*'))
  # A second run refuses to overwrite.
  with pytest.raises(FileExistsError, match='overwrite'):
    mix.mix_songs(mr.config, mr.params, songs, out_dir, batch_songs=2,
                  chunk_seconds=BATCH_CHUNK_SECONDS, progress=False)


def test_bad_inputs_are_refused_naming_the_files(mr, tmp_path):
  rng = np.random.default_rng(5)
  cfg, params = mr.config, mr.params
  out = tmp_path / 'out'

  def run(inputs, **kw):
    mix.mix_songs(cfg, params, mix.discover_songs([str(p) for p in inputs]), out, progress=False,
                  **kw)

  uneven = tmp_path / 'uneven'
  _write(uneven / 'a.wav', _signal(rng, 1, 30000))
  _write(uneven / 'b.wav', _signal(rng, 1, 20000))
  with pytest.raises(mix.InputError, match=r'(?s)different lengths.*a\.wav: 30000.*b\.wav: 20000'):
    run([uneven], pad_unequal=False)

  rates = tmp_path / 'rates'
  _write(rates / 'a.wav', _signal(rng, 1, 30000), 44100)
  _write(rates / 'b.wav', _signal(rng, 1, 30000), 48000)
  with pytest.raises(mix.InputError, match=r'different sample rates.*a\.wav: 44100 Hz, b\.wav: 48000'):
    run([rates])

  broken = tmp_path / 'broken'
  _write(broken / 'ok.wav', _signal(rng, 1, 30000))
  (broken / 'bad.wav').write_bytes(b'RIFF not really a wave file')
  with pytest.raises(mix.InputError, match='cannot read .*bad.wav'):
    run([broken])

  empty = tmp_path / 'empty'
  empty.mkdir()
  with pytest.raises(mix.InputError, match='No WAV/FLAC files in .*empty'):
    run([empty])
  with pytest.raises(mix.InputError, match='No --input'):
    run([])

  many = tmp_path / 'many'
  for i in range(9):
    _write(many / f'ch{i}.wav', _signal(rng, 1, 1000))
  with pytest.raises(mix.InputError, match=r'9 files but the model mixes at most 8 .*ch0\.wav'):
    run([many])

  surround = tmp_path / 'surround'
  _write(surround / 'six.wav', _signal(rng, 6, 1000))
  with pytest.raises(mix.InputError, match='six.wav has 6 channels'):
    run([surround])

  with pytest.raises(mix.InputError, match='either audio files .* or folders'):
    run([uneven / 'a.wav', rates])
  assert not out.exists() or not any(out.iterdir())  # nothing written


def test_failed_write_leaves_no_song_folder(monkeypatch, tmp_path):
  def fail(*args, **kwargs):
    raise OSError('disk full')

  monkeypatch.setattr(mix.plots, 'plot_gains', fail)
  song = mix.Song('s', [pathlib.Path('a.wav')])
  with pytest.raises(OSError, match='disk full'):
    mix.write_song(tmp_path, song, np.zeros(4410, np.float32), np.ones((1, 2), np.float32), None,
                   SR, 2205, overwrite=False)
  assert list(tmp_path.iterdir()) == []


def _save_checkpoint(workdir, config, params, step=3):
  manager = checkpoints.open_manager(str(workdir), config)
  checkpoints.save_state(manager, step, types.SimpleNamespace(
      params=params, opt_state={'count': np.zeros((), np.int32)}))
  manager.wait_until_finished()
  manager.close()


def test_cli_mixes_files_from_a_checkpoint(mr, songs_dir, tmp_path, capsys):
  workdir = tmp_path / 'run'
  _save_checkpoint(workdir, mr.config, mr.params)
  fv = flags.FlagValues()
  mix.define_flags(fv)
  # A shell glob: the first file is the flag's value, the others positional.
  files = sorted(str(p) for p in (songs_dir / 'gamma').glob('*.wav'))
  fv(['mix', f'--checkpoint={workdir}', f'--input={files[0]}', f'--output={tmp_path / "out"}',
      '--batch_songs=2', f'--chunk_seconds={BATCH_CHUNK_SECONDS}'])
  assert mix.run(fv, files[1:]) == 0
  assert capsys.readouterr().out.strip() == str(tmp_path / 'out' / 'gamma')
  _check_song_output(tmp_path / 'out' / 'gamma', mix.discover_songs(files)[0], raw=False)

  fv = flags.FlagValues()
  mix.define_flags(fv)
  fv(['mix', f'--checkpoint={workdir}', f'--input={songs_dir / "gamma"}',
      f'--output={tmp_path / "out2"}', '--pad_unequal=false'])
  assert mix.run(fv) == 2
  assert 'different lengths' in capsys.readouterr().err
  assert not (tmp_path / 'out2' / 'gamma').exists()
