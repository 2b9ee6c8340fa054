"""Tests for alm_jax.embeddings.musicnn, musicnn_frontend and musicnn_weights.

The Flax port is compared with a forward pass written here with TensorFlow ops
(tf.nn convolutions with TF's own 'SAME' padding, unfolded batch norms, the
release's transposes and flatten order, as musicnn/models.py builds it) on the
shipped weights; the front end with a float64 NumPy reference of musicnn's
log-mel and with librosa where installed. The instrument test renders a drum,
a piano and a violin part written here (not taken from any piece) through
fluidsynth with a Debian General MIDI soundfont, and skips without them.
"""

import os
import shutil
import struct
import subprocess
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import soundfile as sf

from alm_jax import embeddings
from alm_jax import frames
from alm_jax import frames as framing
from alm_jax import models
from alm_jax import restore
from alm_jax.embeddings import musicnn_frontend
from alm_jax.embeddings import musicnn_network
from alm_jax.embeddings import musicnn_weights
from alm_jax.embeddings import vggish_frontend as frontend
from alm_jax.models import build_mixer
from alm_jax.models import build_model
from checkpoint_fixtures import TinyModel, random_params

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

# The release's variables (musicnn 0.1.0 MTT_musicnn), written out by hand.
CONVS = {'conv2d': (7, 38, 1, 204), 'conv2d_1': (7, 67, 1, 204), 'conv2d_2': (128, 1, 1, 51),
         'conv2d_3': (64, 1, 1, 51), 'conv2d_4': (32, 1, 1, 51), 'conv2d_5': (7, 561, 1, 64),
         'conv2d_6': (7, 64, 1, 64), 'conv2d_7': (7, 64, 1, 64), 'dense': (1506, 200),
         'dense_1': (200, 50)}
BNS = {'batch_normalization': 1, 'batch_normalization_1': 204, 'batch_normalization_2': 204,
       'batch_normalization_3': 51, 'batch_normalization_4': 51, 'batch_normalization_5': 51,
       'batch_normalization_6': 64, 'batch_normalization_7': 64, 'batch_normalization_8': 64,
       'batch_normalization_9': 1506, 'batch_normalization_10': 200}
# Soundfonts from Debian's timgm6mb-soundfont / musescore-general-soundfont(-small).
SOUNDFONTS = ('/usr/share/sounds/sf2/TimGM6mb.sf2', '/usr/share/sounds/sf3/MuseScore_General.sf3',
              '/usr/share/sounds/sf3/MuseScore_General_Lite.sf3')


@pytest.fixture(scope='module')
def release():
  with np.load(musicnn_weights.DEFAULT_WEIGHTS) as data:
    return {k: data[k] for k in data.files}


@pytest.fixture(scope='module')
def params():
  return musicnn_weights.load_musicnn_params()


def tf_forward(v, x):
  """musicnn/models.py build_musicnn in inference mode, with tf.nn ops: (probabilities, penultimate)."""
  c = lambda name: tf.constant(v[name])

  def bn(h, name):
    return tf.nn.batch_normalization(h, c(f'{name}/moving_mean'), c(f'{name}/moving_variance'),
                                     c(f'{name}/beta'), c(f'{name}/gamma'), 1e-3)

  def conv(h, name, padding):
    return tf.nn.relu(tf.nn.conv2d(h, c(f'{name}/kernel'), 1, padding) + c(f'{name}/bias'))

  pad7 = lambda h: tf.pad(h, [[0, 0], [3, 3], [0, 0], [0, 0]])
  h = bn(tf.constant(x)[..., None], 'batch_normalization')
  front = [tf.reduce_max(bn(conv(pad7(h), cv, 'VALID'), b), axis=2)
           for cv, b in (('conv2d', 'batch_normalization_1'), ('conv2d_1', 'batch_normalization_2'))]
  front += [tf.reduce_max(bn(conv(h, cv, 'SAME'), b), axis=2)
            for cv, b in (('conv2d_2', 'batch_normalization_3'), ('conv2d_3', 'batch_normalization_4'),
                          ('conv2d_4', 'batch_normalization_5'))]
  front = tf.concat(front, 2)[..., None]  # [n, t, 561, 1]
  mid = [front]
  h = front
  for i, (cv, b) in enumerate((('conv2d_5', 'batch_normalization_6'),
                               ('conv2d_6', 'batch_normalization_7'),
                               ('conv2d_7', 'batch_normalization_8'))):
    y = tf.transpose(bn(conv(pad7(h), cv, 'VALID'), b), [0, 1, 3, 2])  # [n, t, 64, 1]
    h = y if i == 0 else y + h
    mid.append(h)
  fmap = tf.concat(mid, 2)  # [n, t, 753, 1]
  pooled = tf.concat([tf.reduce_max(fmap, axis=1), tf.reduce_mean(fmap, axis=1)], 2)
  flat = bn(tf.reshape(pooled, [pooled.shape[0], -1]), 'batch_normalization_9')
  pen = bn(tf.nn.relu(flat @ c('dense/kernel') + c('dense/bias')), 'batch_normalization_10')
  logits = pen @ c('dense_1/kernel') + c('dense_1/bias')
  return tf.sigmoid(logits).numpy(), pen.numpy()


def test_port_matches_independent_tf_forward_pass(release, params):
  rng = np.random.default_rng(0)
  # Log-mel values of music lie in about [0, 4].
  x = (4.0 * rng.random((2, 187, 96)) * np.linspace(1.0, 0.3, 96)).astype(np.float32)
  probs_ref, pen_ref = tf_forward(release, x)
  model = musicnn_network.Musicnn()
  emb, logits = jax.jit(lambda p, x: model.apply({'params': p}, x, method=model.embed_and_tag))(
      params, jnp.asarray(x))
  np.testing.assert_allclose(np.asarray(jax.nn.sigmoid(logits)), probs_ref, rtol=0, atol=1e-4)
  np.testing.assert_allclose(np.asarray(emb), pen_ref, rtol=0, atol=1e-4 * np.abs(pen_ref).max())
  assert probs_ref.std() > 0.01  # the input exercises the network
  assert emb.shape == (2, musicnn_network.EMBEDDING_DIM)


def test_params_fit_module_and_lengths(params):
  model = musicnn_network.Musicnn()
  init = jax.eval_shape(model.init, jax.random.key(0), jnp.zeros((1, 16, 96)))['params']
  assert jax.tree.map(np.shape, init) == jax.tree.map(np.shape, params)
  # Any patch length: the back end pools over time.
  for rows in (1, 62, 300):
    out = jax.eval_shape(lambda x: model.apply({'params': params}, x), jnp.zeros((3, rows, 96)))
    assert out.shape == (3, musicnn_network.EMBEDDING_DIM)
  with pytest.raises(ValueError, match='96 mel bands'):
    model.apply({'params': params}, jnp.zeros((1, 16, 64)))


# ---------------------------------------------------------------------------
# Front end


def reference_mel(n_mels, n_fft, sr, fmin, fmax):
  """[n_mels, bins] Slaney mel filters, float64, one band at a time."""
  def to_mel(f):
    return f / (200.0 / 3) if f < 1000.0 else 15.0 + 27.0 * np.log(f / 1000.0) / np.log(6.4)

  def to_hz(m):
    return m * 200.0 / 3 if m < 15.0 else 1000.0 * np.exp((m - 15.0) * np.log(6.4) / 27.0)

  edges = [to_hz(m) for m in np.linspace(to_mel(fmin), to_mel(fmax), n_mels + 2)]
  freqs = np.arange(n_fft // 2 + 1) * sr / n_fft
  out = np.zeros((n_mels, len(freqs)))
  for b in range(n_mels):
    lo, mid, hi = edges[b], edges[b + 1], edges[b + 2]
    for i, f in enumerate(freqs):
      if lo < f <= mid:
        out[b, i] = (f - lo) / (mid - lo)
      elif mid < f < hi:
        out[b, i] = (hi - f) / (hi - mid)
    out[b] *= 2.0 / (hi - lo)
  return out


def reference_log_mel(x16, num_rows, spec):
  """float64 NumPy musicnn log-mel rows of a 16 kHz signal [m] -> [num_rows, 96]."""
  x16 = np.pad(np.asarray(x16, np.float64), (0, max(0, (num_rows - 1) * spec.hop + spec.window -
                                                   len(x16))))
  window = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(spec.window) / spec.window)
  mel = reference_mel(spec.n_mels, spec.n_fft, spec.out_rate, spec.fmin, spec.fmax)
  rows = []
  for r in range(num_rows):
    frame = x16[r * spec.hop:r * spec.hop + spec.window] * window
    power = np.abs(np.fft.rfft(frame, spec.n_fft)) ** 2
    rows.append(np.log10(10000.0 * (mel @ power) + 1.0))
  return np.stack(rows)


def reference_resample(x, spec):
  """float64 causal resampling of [n] (n a multiple of 441) with the front end's taps, block by block."""
  up, down, history, weights = frontend.resampler_taps(spec.in_rate, spec.out_rate,
                                                       spec.zero_crossings, spec.rolloff)
  x = np.asarray(x, np.float64)
  return np.concatenate([x[q * down - history:(q + 1) * down] @ weights
                         for q in range(1, len(x) // down)])


def test_mel_filterbank_and_rows_match_float64_reference():
  spec = musicnn_frontend.MusicnnSpec()
  np.testing.assert_allclose(musicnn_frontend.mel_matrix(96, 512, 16000, 0.0, 8000.0).T,
                             reference_mel(96, 512, 16000, 0.0, 8000.0), rtol=1e-9, atol=1e-12)
  rng = np.random.default_rng(1)
  t = np.arange(16000) / 16000
  x16 = 0.3 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.standard_normal(16000)
  got = musicnn_frontend.log_mel_rows(jnp.asarray(x16, jnp.float32), 61, spec)
  np.testing.assert_allclose(np.asarray(got), reference_log_mel(x16, 61, spec), rtol=0, atol=2e-4)


def test_log_mel_matches_librosa():
  librosa = pytest.importorskip('librosa', reason='librosa is not installed: pip install -e ".[test]"')
  np.testing.assert_allclose(musicnn_frontend.mel_matrix(96, 512, 16000, 0.0, 8000.0).T,
                             librosa.filters.mel(sr=16000, n_fft=512, n_mels=96), rtol=1e-5,
                             atol=1e-7)
  rng = np.random.default_rng(2)
  x16 = (0.1 * rng.standard_normal(8000)).astype(np.float32)
  # musicnn's extractor: melspectrogram (power 2) then log10(10000 x + 1); uncentred rows here.
  mel = librosa.feature.melspectrogram(y=x16, sr=16000, hop_length=256, n_fft=512, n_mels=96,
                                       center=False).T
  rows = mel.shape[0]
  got = musicnn_frontend.log_mel_rows(jnp.asarray(x16), rows, musicnn_frontend.MusicnnSpec())
  np.testing.assert_allclose(np.asarray(got), np.log10(10000 * mel + 1), rtol=0, atol=2e-4)


# MR's 300 ms (one resampled signal, rows per frame); 320 ms (shared rows); a hop off the
# resampler's blocks (each frame resampled on its own).
@pytest.mark.parametrize('hop', [13230, 14112, 13000])
def test_log_mel_frames_match_reference(hop):
  spec = musicnn_frontend.MusicnnSpec(patch_frames=40)
  assert musicnn_frontend.shares_rows(hop, spec) == (hop == 14112)
  num_frames = 3
  rng = np.random.default_rng(3)
  x = (0.2 * rng.standard_normal((1, 2, (num_frames - 1) * hop + spec.frame_input_samples)))
  got = np.asarray(jax.jit(musicnn_frontend.log_mel_frames, static_argnums=(1, 2, 3))(
      jnp.asarray(x, jnp.float32), num_frames, hop, spec))
  assert got.shape == (1, 2, num_frames, 40, 96)
  for j in range(num_frames):
    frame = x[0, 1, j * hop:j * hop + spec.frame_input_samples]
    x16 = reference_resample(frame, spec)[spec.patch_offset:]
    assert len(x16) == spec.patch_samples
    np.testing.assert_allclose(got[0, 1, j], reference_log_mel(x16, 40, spec), rtol=0, atol=3e-4)


def test_spec_for_f1_and_frame_checks():
  f1 = framing.ms_to_samples(3000, 44100)
  spec = musicnn_frontend.MusicnnSpec.for_f1(f1)
  assert spec.patch_frames == 186  # 3 s at 16 kHz: (48000 - 512) // 256 + 1
  musicnn_frontend.check_frame(f1, spec)
  with pytest.raises(ValueError, match='config.model.f1_ms'):
    musicnn_frontend.check_frame(f1, musicnn_frontend.MusicnnSpec(patch_frames=187))
  frame_spec = framing.FrameSpec(sample_rate=44100, f1=f1, f2=2205, stride=6)
  x, g = musicnn_frontend.frame_input(jnp.zeros((1, 2, 5 * 44100)), frame_spec, spec)
  assert x.shape[-1] == (g - 1) * 6 * 2205 + spec.frame_input_samples


# ---------------------------------------------------------------------------
# Instruments, through fluidsynth


def _vlq(n):
  out = [n & 0x7f]
  n >>= 7
  while n:
    out.append(0x80 | (n & 0x7f))
    n >>= 7
  return bytes(reversed(out))


def write_midi(path, notes, program, channel, tpq=480, bpm=120):
  """A format-0 MIDI file of notes (start beat, beats, pitch, velocity)."""
  events = []
  for start, beats, pitch, velocity in notes:
    events.append((int(start * tpq), 1, bytes([0x90 | channel, pitch, velocity])))
    events.append((int((start + beats) * tpq), 0, bytes([0x80 | channel, pitch, 0])))
  events.sort(key=lambda e: (e[0], e[1]))
  data = _vlq(0) + b'\xff\x51\x03' + int(60e6 / bpm).to_bytes(3, 'big')
  if program is not None:
    data += _vlq(0) + bytes([0xc0 | channel, program])
  now = 0
  for tick, _, message in events:
    data += _vlq(tick - now) + message
    now = tick
  data += _vlq(tpq) + b'\xff\x2f\x00'
  with open(path, 'wb') as f:
    f.write(b'MThd' + struct.pack('>IHHH', 6, 0, 1, tpq) + b'MTrk' + struct.pack('>I', len(data)) +
            data)


def parts():
  """{name: (notes, GM program, channel, accepted tags)}: 4 bars of I-vi-IV-V in C, twice."""
  chords = [(60, 64, 67), (57, 60, 64), (53, 57, 60), (55, 59, 62)] * 2
  piano, violin, drums = [], [], []
  for bar, chord in enumerate(chords):
    piano += [(bar * 4 + i * 0.5, 0.5, chord[i % 3] + 12 * (i // 3 % 2), 80) for i in range(8)]
    piano.append((bar * 4, 2, chord[0] - 12, 70))
    violin += [(bar * 4, 4, p + 12, 85) for p in chord + (chord[0] - 12,)]
    drums += [(bar * 4 + i * 0.5, 0.25, 42, 70) for i in range(8)]  # closed hi-hat
    drums += [(bar * 4 + b, 0.25, 36, 110) for b in (0, 2, 2.5)]  # kick
    drums += [(bar * 4 + b, 0.25, 38, 105) for b in (1, 3)]  # snare
  return {'drums': (drums, None, 9, {'drums'}), 'piano': (piano, 0, 0, {'piano'}),
          'violin': (violin, 40, 0, {'strings', 'violin', 'cello'})}


def test_knows_instruments(params, tmp_path):
  if shutil.which('fluidsynth') is None:
    pytest.skip('fluidsynth is not installed (apt-get install fluidsynth timgm6mb-soundfont)')
  soundfont = next((s for s in SOUNDFONTS if os.path.exists(s)), None)
  if soundfont is None:
    pytest.skip('no General MIDI soundfont: apt-get install timgm6mb-soundfont')
  spec = musicnn_frontend.MusicnnSpec()
  num_frames, hop = 2, 2 * 44100
  n = (num_frames - 1) * hop + spec.frame_input_samples
  audio = []
  for name, (notes, program, channel, _) in parts().items():
    write_midi(tmp_path / f'{name}.mid', notes, program, channel)
    subprocess.run(['fluidsynth', '-ni', '-q', '-g', '0.5', '-r', '44100', '-F',
                    str(tmp_path / f'{name}.wav'), soundfont, str(tmp_path / f'{name}.mid')],
                   check=True, capture_output=True, timeout=120)
    a, rate = sf.read(tmp_path / f'{name}.wav', dtype='float32', always_2d=True)
    assert rate == 44100 and len(a) >= n
    audio.append(a[:n].mean(axis=1))
  model = musicnn_network.Musicnn()

  @jax.jit
  def tag_logits(p, x):
    patches = musicnn_frontend.log_mel_frames(x, num_frames, hop, spec)
    return model.apply({'params': p}, patches.reshape(-1, spec.patch_frames, 96),
                       method=model.tag_logits)

  logits = tag_logits(params, jnp.asarray(np.stack(audio)))
  probs = np.asarray(jax.nn.sigmoid(logits)).reshape(len(audio), num_frames, -1).mean(axis=1)
  for (name, (_, _, _, accepted)), p in zip(parts().items(), probs):
    top5 = [musicnn_network.MTT_TAGS[i] for i in np.argsort(-p)[:5]]
    assert accepted & set(top5), f'{name} ({soundfont}): top-5 tags {top5}'


# ---------------------------------------------------------------------------
# Weight files


def test_missing_file_named(tmp_path):
  path = tmp_path / 'nothing.npz'
  with pytest.raises(FileNotFoundError, match='nothing.npz'):
    musicnn_weights.load_musicnn_params(path)
  with pytest.raises(FileNotFoundError, match=r'no \.index'):
    musicnn_weights.load_musicnn_params(tmp_path)


def test_truncated_file_named(tmp_path):
  with open(musicnn_weights.DEFAULT_WEIGHTS, 'rb') as f:
    head = f.read(100_000)
  path = tmp_path / 'cut.npz'
  path.write_bytes(head)
  with pytest.raises(ValueError, match='cut.npz.*not a readable'):
    musicnn_weights.load_musicnn_params(path)
  assert not zipfile.is_zipfile(path)


def test_wrong_network_named(release, tmp_path):
  # MTT_vgg's layout: five 3x3 conv layers named 1CNN ... 5CNN and one dense.
  vgg = {f'{i}CNN/kernel': np.zeros((3, 3, 1 if i == 1 else 128, 128), np.float32)
         for i in range(1, 6)}
  vgg.update({'dense/kernel': np.zeros((256, 50), np.float32), 'network': np.array('MTT_vgg')})
  path = tmp_path / 'vgg.npz'
  np.savez(path, **vgg)
  with pytest.raises(ValueError, match=r"vgg.npz does not hold the MTT_musicnn network \(it says "
                     r"network 'MTT_vgg'\)(.|\n)*missing: .*conv2d/kernel(.|\n)*unexpected: 1CNN"):
    musicnn_weights.load_musicnn_params(path)
  # musicnn_big-like mid-end width: shapes checked.
  big = dict(release)
  big['conv2d_5/kernel'] = np.zeros((7, 561, 1, 512), np.float32)
  path = tmp_path / 'big.npz'
  np.savez(path, **big)
  with pytest.raises(ValueError, match=r'big.npz(.|\n)*wrong shape: conv2d_5/kernel: '
                     r'\(7, 561, 1, 512\), expected \(7, 561, 1, 64\)'):
    musicnn_weights.load_musicnn_params(path)


def test_release_shapes_and_checkpoint_directory(release, params, tmp_path):
  expected = {f'{k}/kernel': s for k, s in CONVS.items()}
  expected.update({f'{k}/bias': (s[-1],) for k, s in CONVS.items()})
  expected.update({f'{k}/{leaf}': (n,) for k, n in BNS.items() for leaf in musicnn_weights.BN_LEAVES})
  assert musicnn_weights.release_shapes() == expected
  assert {k: v.shape for k, v in release.items() if k not in musicnn_weights.METADATA} == expected
  assert tuple(str(t) for t in release['tags']) == musicnn_network.MTT_TAGS
  notice = os.path.join(os.path.dirname(musicnn_weights.DEFAULT_WEIGHTS), 'LICENSE_musicnn.txt')
  with open(notice) as f:
    assert 'Permission to use, copy, modify, and/or distribute' in f.read()  # ISC, shipped beside
  # A TF1 Saver checkpoint whose prefix is the directory itself, as the wheel ships it.
  graph = tf.Graph()
  with graph.as_default():
    for name, value in expected.items():
      tf.compat.v1.get_variable(name, initializer=release[name])
    tf.compat.v1.get_variable('dense/kernel/Adam', initializer=release['dense/kernel'])
    with tf.compat.v1.Session() as sess:
      sess.run(tf.compat.v1.global_variables_initializer())
      tf.compat.v1.train.Saver().save(sess, str(tmp_path / 'MTT_musicnn') + '/')
  loaded = musicnn_weights.load_musicnn_params(tmp_path / 'MTT_musicnn')
  jax.tree.map(np.testing.assert_array_equal, loaded, params)


# ---- as the mixers' embedding ----------------------------------------------------------------


def _musicnn_alm(f1_ms=1000.0):
  tiny = TinyModel('mr')
  tiny.config.model.embedding.name = 'musicnn'
  tiny.config.model.embedding.dim = musicnn_network.EMBEDDING_DIM
  tiny.config.model.f1_ms = f1_ms
  tiny.model = build_model(tiny.config)
  tiny.spec = frames.FrameSpec.from_config(tiny.config.model)
  tiny.params = random_params(tiny.model, tiny.spec)
  return tiny


def test_alm_with_musicnn_starts_from_the_shipped_weights():
  tiny = _musicnn_alm()
  params = embeddings.load_pretrained(tiny.params, tiny.config.model.embedding)
  shipped = musicnn_weights.load_musicnn_params()
  np.testing.assert_array_equal(params['embedding']['tags']['kernel'], shipped['tags']['kernel'])
  tiny.config.model.embedding.weights = 'random'
  assert embeddings.load_pretrained(tiny.params, tiny.config.model.embedding) is tiny.params
  tiny.config.model.embedding.dim = 128
  with pytest.raises(ValueError, match='embedding.dim = 200'):
    build_model(tiny.config).init(jax.random.PRNGKey(0), np.zeros((1, 1, tiny.spec.f1), np.float32),
                                  np.ones((1, 1), bool))


@pytest.mark.slow
def test_alm_with_musicnn_steps_like_its_call():
  """The mixer protocol with musicnn: one step over whole hops = frame by frame = the model's call."""
  tiny = _musicnn_alm()
  params = embeddings.load_pretrained(tiny.params, tiny.config.model.embedding)
  mixer = build_mixer(tiny.config)
  hop = tiny.spec.stride * tiny.spec.f2
  audio = (np.random.default_rng(0).normal(size=(1, 2, 4 * hop)) * 0.1).astype(np.float32)
  mask = np.ones((1, 2), bool)
  ref = tiny.model.apply({'params': params}, audio, mask)
  step = jax.jit(mixer.step)
  _, _, whole = step(params, mixer.init_state(1, 2), audio, mask)
  np.testing.assert_allclose(whole, ref['mix'], rtol=1e-5, atol=1e-6)
  state, outs = mixer.init_state(1, 2), []
  f2 = tiny.spec.f2
  for k in range(audio.shape[-1] // f2):
    state, _, m = step(params, state, audio[..., k * f2:(k + 1) * f2], mask)
    outs.append(m)
  np.testing.assert_allclose(np.concatenate(outs, -1), ref['mix'], rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_alm_with_musicnn_freezes_then_fine_tunes(tmp_path):
  """Training starts from the shipped weights, keeps them for the frozen update, then tunes them."""
  from alm_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from alm_jax import train  # pylint: disable=g-import-not-at-top
  from tiny_training import FakeData, tiny_train_config  # pylint: disable=g-import-not-at-top
  config = tiny_train_config('mr', '', '')
  config.model.embedding.name = 'musicnn'
  config.model.embedding.dim = musicnn_network.EMBEDDING_DIM
  config.model.f1_ms = 1000.0
  config.train.num_epochs = 2  # update 1 frozen (freeze_embedding_epochs = 1), update 2 not
  data = FakeData()
  state = train.train_and_evaluate(config, str(tmp_path), make_train_iterator=data.make_train_iterator,
                                   make_eval_batches=data.make_eval_batches)
  shipped = jax.tree.leaves(musicnn_weights.load_musicnn_params())
  _, frozen, _ = restore.restore_params(os.path.join(tmp_path, 'checkpoints', '1'))
  assert all(np.array_equal(a, b) for a, b in zip(jax.tree.leaves(frozen['embedding']), shipped))
  tuned = jax.tree.leaves(jax.device_get(state.params)['embedding'])
  assert not all(np.array_equal(a, b) for a, b in zip(tuned, shipped))


@pytest.mark.slow
def test_alm_with_musicnn_exports_a_savedmodel_that_mixes_like_jax(tmp_path):
  """Offline SavedModel export of a musicnn mixer (its own front end inside) = the JAX mix."""
  from alm_jax import export  # pylint: disable=g-import-not-at-top
  from alm_jax.inference import offline  # pylint: disable=g-import-not-at-top
  from checkpoint_fixtures import parse_flags, save_checkpoint  # pylint: disable=g-import-not-at-top
  tiny = _musicnn_alm()
  params = embeddings.load_pretrained(tiny.params, tiny.config.model.embedding)
  save_checkpoint(tmp_path / 'run', tiny.config, params)
  assert export.run(parse_flags(export, f'--checkpoint={tmp_path / "run"}',
                                f'--output={tmp_path / "offline"}')) == 0
  rng = np.random.default_rng(3)
  audio = (0.1 * rng.normal(size=(1, 3, int(2.2 * 44100)))).astype(np.float32)
  mask = np.array([[True, True, False]])
  ref = offline.mix_arrays(models.load(tiny.config, params), audio, mask)
  loaded = tf.saved_model.load(str(tmp_path / 'offline'))
  out = loaded.signatures['serving_default'](audio=tf.constant(audio), channel_mask=tf.constant(mask))
  np.testing.assert_allclose(out['mix'].numpy(), ref['mix'], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out['gains'].numpy(), ref['gains'], rtol=1e-5, atol=1e-6)
