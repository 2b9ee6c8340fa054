"""Reading and writing audio files, with errors that name the file and the fix.

    audio, rate = read_audio('song.wav')             # float32 [channels, samples], 44100
    mono = to_mono(audio)                            # float32 [samples]
    write_wav('mix.wav', mix, 44100)                 # [samples] or [channels, samples]

Resampling: a file at another rate is converted with
`scipy.signal.resample_poly(x, up, down)` where up/down = target/source reduced
by their gcd (44100/48000 -> 147/160): a polyphase FIR low-pass designed with a
Kaiser window (beta 5), zero-phase, so the output stays time-aligned with other
tracks of the same song. `on_rate_mismatch='error'` refuses such files instead.
"""

import math
import os

import numpy as np
import scipy.signal
import soundfile as sf

DEFAULT_RATE = 44100


class AudioFileError(ValueError):
  """An audio file is missing, unreadable, empty or holds non-finite samples."""


def resample(audio: np.ndarray, source_rate: int, target_rate: int) -> np.ndarray:
  """Polyphase resampling along the last axis (see the module docstring).

  Args:
    audio: float [..., samples] at `source_rate`.
  Returns:
    float32 [..., round(samples * target_rate / source_rate)].
  """
  source_rate, target_rate = int(source_rate), int(target_rate)
  if source_rate <= 0 or target_rate <= 0:
    raise ValueError(f'Sample rates must be positive, got {source_rate} -> {target_rate}.')
  if source_rate == target_rate:
    return np.asarray(audio, np.float32)
  g = math.gcd(source_rate, target_rate)
  out = scipy.signal.resample_poly(np.asarray(audio, np.float32), target_rate // g,
                                   source_rate // g, axis=-1)
  return out.astype(np.float32)


def read_audio(path, target_rate: int | None = DEFAULT_RATE, *,
               on_rate_mismatch: str = 'resample') -> tuple[np.ndarray, int]:
  """Reads an audio file as float32 [channels, samples] in [-1, 1] (integer formats).

  Args:
    path: a file soundfile/libsndfile can read (WAV, FLAC, AIFF, OGG, ...).
    target_rate: the rate to return; None keeps the file's own rate.
    on_rate_mismatch: 'resample' (polyphase, see module docstring) or 'error'.
  Returns:
    (audio float32 [channels, samples], rate).
  Raises:
    FileNotFoundError: no file at `path`.
    AudioFileError: unreadable, empty, or NaN/Inf samples.
    ValueError: the rate differs from `target_rate` and on_rate_mismatch='error'.
  """
  if on_rate_mismatch not in ('resample', 'error'):
    raise ValueError(f"on_rate_mismatch must be 'resample' or 'error', got {on_rate_mismatch!r}.")
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'Audio file not found: {path}. Check the path (and, for a dataset, '
                            'that it was copied completely).')
  try:
    data, rate = sf.read(path, dtype='float32', always_2d=True)
  except Exception as e:  # libsndfile raises several types for corrupt files
    raise AudioFileError(
        f'Could not read audio file {path}: {e}. The file is corrupt or not an audio format '
        'libsndfile reads; re-export it, or convert it with e.g. `ffmpeg -i IN -c:a pcm_s16le '
        'OUT.wav`.') from e
  if data.shape[0] == 0:
    raise AudioFileError(f'Audio file {path} holds no samples; re-export it or remove it.')
  audio = np.ascontiguousarray(data.T)  # [channels, samples]
  if not np.isfinite(audio).all():
    raise AudioFileError(f'Audio file {path} holds NaN or Inf samples; re-export it.')
  if target_rate is not None and rate != target_rate:
    if on_rate_mismatch == 'error':
      raise ValueError(f'Audio file {path} is at {rate} Hz, not {target_rate} Hz. Resample it '
                       f"(e.g. `sox IN -r {target_rate} OUT.wav`) or read it with "
                       "on_rate_mismatch='resample'.")
    audio, rate = resample(audio, rate, target_rate), target_rate
  return audio, int(rate)


def to_mono(audio: np.ndarray) -> np.ndarray:
  """Mean over channels: float32 [channels, samples] -> [samples]; [samples] passes through."""
  audio = np.asarray(audio, np.float32)
  if audio.ndim == 1:
    return audio
  if audio.ndim != 2 or audio.shape[0] == 0:
    raise ValueError(f'Expected audio [channels, samples], got shape {audio.shape}.')
  return audio.mean(axis=0)


def write_wav(path, audio, rate: int = DEFAULT_RATE, *, subtype: str = 'FLOAT') -> None:
  """Writes [samples] or [channels, samples] audio as a WAV file.

  The default 32-bit float subtype keeps levels above full scale intact (mixer
  outputs are not normalised); 'PCM_16'/'PCM_24' clip at +-1.
  """
  audio = np.asarray(audio, np.float32)
  if audio.ndim == 1:
    audio = audio[None]
  if audio.ndim != 2 or audio.shape[0] == 0 or audio.shape[1] == 0:
    raise ValueError(f'write_wav needs [samples] or [channels, samples] audio, got shape '
                     f'{audio.shape} for {path}.')
  if not np.isfinite(audio).all():
    raise ValueError(f'Refusing to write {path}: the audio holds NaN or Inf.')
  if int(rate) <= 0:
    raise ValueError(f'Sample rate must be positive, got {rate} for {path}.')
  parent = os.path.dirname(os.fspath(path))
  if parent:
    os.makedirs(parent, exist_ok=True)
  sf.write(os.fspath(path), audio.T, int(rate), subtype=subtype, format='WAV')
