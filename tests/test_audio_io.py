"""Tests for alm_jax/audio_io.py."""

import numpy as np
import pytest
import soundfile as sf

from alm_jax import audio_io


def _sine(freq, rate, seconds=0.5, channels=1):
  t = np.arange(int(rate * seconds)) / rate
  x = 0.5 * np.sin(2 * np.pi * freq * t).astype(np.float32)
  return np.stack([x * (c + 1) / channels for c in range(channels)])


def _peak_hz(x, rate):
  spec = np.abs(np.fft.rfft(x * np.hanning(x.size)))
  return np.argmax(spec) * rate / x.size


def test_write_read_round_trip_float_and_pcm(tmp_path):
  audio = _sine(440, 44100, channels=2)
  audio[0, :10] = 1.5  # above full scale survives the float format
  audio_io.write_wav(tmp_path / 'f.wav', audio, 44100)
  back, rate = audio_io.read_audio(tmp_path / 'f.wav')
  assert rate == 44100 and back.dtype == np.float32 and back.shape == audio.shape
  np.testing.assert_array_equal(back, audio)
  audio_io.write_wav(tmp_path / 'sub/p.wav', audio[1], 44100, subtype='PCM_16')
  back, _ = audio_io.read_audio(tmp_path / 'sub/p.wav')
  assert back.shape == (1, audio.shape[1])
  np.testing.assert_allclose(back[0], audio[1], atol=1 / 32767 + 1e-6)


def test_other_rate_is_resampled_in_time_and_frequency(tmp_path):
  x = _sine(1000, 48000, seconds=1.0)
  sf.write(tmp_path / 'a.wav', x.T, 48000)
  y, rate = audio_io.read_audio(tmp_path / 'a.wav', 44100)
  assert rate == 44100 and y.shape == (1, 44100)
  assert abs(_peak_hz(y[0], 44100) - 1000) < 2
  # Zero-phase: the resampled sine is aligned with the sine sampled at 44.1 kHz.
  ref = _sine(1000, 44100, seconds=1.0)[0]
  assert np.corrcoef(y[0, 1000:-1000], ref[1000:-1000])[0, 1] > 0.999
  native, rate = audio_io.read_audio(tmp_path / 'a.wav', None)
  assert rate == 48000 and native.shape == (1, 48000)


def test_wrong_rate_error_names_file_and_fix(tmp_path):
  sf.write(tmp_path / 'b.wav', _sine(440, 22050).T, 22050)
  with pytest.raises(ValueError, match=r'b\.wav.*22050 Hz.*44100') as e:
    audio_io.read_audio(tmp_path / 'b.wav', 44100, on_rate_mismatch='error')
  assert 'Resample' in str(e.value)
  with pytest.raises(ValueError, match='on_rate_mismatch'):
    audio_io.read_audio(tmp_path / 'b.wav', on_rate_mismatch='ignore')


def test_missing_corrupt_empty_and_nan_files(tmp_path):
  with pytest.raises(FileNotFoundError, match='nothere.wav'):
    audio_io.read_audio(tmp_path / 'nothere.wav')
  (tmp_path / 'junk.wav').write_bytes(b'RIFF\x00\x00not really a wave file' * 10)
  with pytest.raises(audio_io.AudioFileError, match=r'junk\.wav.*ffmpeg'):
    audio_io.read_audio(tmp_path / 'junk.wav')
  sf.write(tmp_path / 'empty.wav', np.zeros((0, 1), np.float32), 44100)
  with pytest.raises(audio_io.AudioFileError, match=r'empty\.wav holds no samples'):
    audio_io.read_audio(tmp_path / 'empty.wav')
  bad = _sine(440, 44100)
  bad[0, 5] = np.nan
  sf.write(tmp_path / 'nan.wav', bad.T, 44100, subtype='FLOAT')
  with pytest.raises(audio_io.AudioFileError, match=r'nan\.wav.*NaN'):
    audio_io.read_audio(tmp_path / 'nan.wav')


def test_to_mono_and_write_checks(tmp_path):
  stereo = np.array([[1.0, 0.0, -1.0], [0.0, 0.5, 1.0]], np.float32)
  np.testing.assert_allclose(audio_io.to_mono(stereo), [0.5, 0.25, 0.0])
  np.testing.assert_array_equal(audio_io.to_mono(stereo[0]), stereo[0])
  with pytest.raises(ValueError, match='channels, samples'):
    audio_io.to_mono(np.zeros((2, 2, 2)))
  with pytest.raises(ValueError, match='NaN'):
    audio_io.write_wav(tmp_path / 'x.wav', np.array([0.0, np.nan]), 44100)
  with pytest.raises(ValueError, match='shape'):
    audio_io.write_wav(tmp_path / 'x.wav', np.zeros((1, 0)), 44100)
  assert not (tmp_path / 'x.wav').exists()


@pytest.mark.parametrize('rate,channels,frames', [
    (44100, 1, 200001), (48000, 2, 300007), (22050, 1, 70001), (96000, 2, 150000),
    (8000, 1, 5)])
@pytest.mark.parametrize('read_size', [1000, 44100, 100000])
def test_block_reader_equals_reading_the_whole_file(tmp_path, rate, channels, frames, read_size):
  """Block by block, resampling included, the samples of read_audio + to_mono, then silence."""
  rng = np.random.default_rng(rate + channels)
  path = tmp_path / 'a.wav'
  sf.write(path, (rng.normal(size=(frames, channels)) * 0.1).astype(np.float32), rate,
           subtype='FLOAT')
  ref = audio_io.to_mono(audio_io.read_audio(path, 44100)[0])
  _, declared, _ = audio_io.check_file(path)
  with audio_io.BlockReader(path, 44100, declared) as reader:
    assert reader.length == len(ref)
    out = np.concatenate([reader.read(read_size) for _ in range(len(ref) // read_size + 3)])
  np.testing.assert_allclose(out[:len(ref)], ref, rtol=1e-6, atol=1e-7)
  assert not out[len(ref):].any() and len(out) > len(ref)


def test_block_reader_pads_a_truncated_file_as_read_audio_does(tmp_path):
  path = tmp_path / 't.wav'
  sf.write(path, np.full(20000, 0.25, np.float32), 48000, subtype='FLOAT')
  data = path.read_bytes()
  path.write_bytes(data[:-4 * 5000])  # the header still declares 20000 samples
  ref = audio_io.to_mono(audio_io.read_audio(path, 44100, pad_short=True)[0])
  _, declared, _ = audio_io.check_file(path, pad_short=True)
  assert declared == 20000
  with audio_io.BlockReader(path, 44100, declared) as reader:
    out = reader.read(len(ref) + 10)
  np.testing.assert_allclose(out[:len(ref)], ref, rtol=1e-6, atol=1e-7)


def test_wav_writer_writes_blocks_and_refuses_nan(tmp_path):
  with audio_io.WavWriter(tmp_path / 'm.wav', 44100) as writer:
    writer.write(np.full(100, 0.5, np.float32))
    writer.write(np.full(50, -2.0, np.float32))
    with pytest.raises(ValueError, match='m.wav.*NaN'):
      writer.write(np.array([np.nan], np.float32))
  assert writer.peak == 2.0 and writer.frames == 150
  back, rate = sf.read(tmp_path / 'm.wav', dtype='float32')
  assert rate == 44100 and sf.info(tmp_path / 'm.wav').subtype == 'FLOAT'
  np.testing.assert_array_equal(back, np.r_[np.full(100, 0.5), np.full(50, -2.0)].astype(np.float32))
