"""Reading and writing audio files, with errors that name the file and the fix.

    audio, rate = read_audio('song.wav')             # float32 [channels, samples], 44100
    check_file('song.wav')                           # the same checks, block by block, no array kept
    mono = to_mono(audio)                            # float32 [samples]
    write_wav('mix.wav', mix, 44100)                 # [samples] or [channels, samples]

A file that decodes is still refused when its data cannot be what a recording
holds: fewer samples than its header declares (a truncated copy; `pad_short`
pads them with silence instead), NaN/Inf, a sample beyond +-MAX_ABS_SAMPLE
(+60 dBFS, a damaged or mis-scaled float file), or full-scale white noise (a
data chunk overwritten with random bytes, see `_looks_random`). Resampling: a
file at another rate is converted with `scipy.signal.resample_poly(x, up,
down)` where up/down = target/source reduced by their gcd (44100/48000 ->
147/160): a polyphase FIR low-pass designed with a Kaiser window (beta 5),
zero-phase, so the output stays time-aligned with other tracks of the same
song. `on_rate_mismatch='error'` refuses such files instead.
"""

import dataclasses
import math
import os
import struct

from absl import logging
import numpy as np
import scipy.signal
import soundfile as sf

DEFAULT_RATE = 44100
MAX_ABS_SAMPLE = 1000.0  # +60 dBFS: far above any real float recording, far below overflow
# Random bytes as PCM decode to uniform full-scale noise (RMS -4.8 dBFS, neighbours
# uncorrelated); no recording is that loud and that white.
_RANDOM_MIN_RMS = 10.0 ** (-7.0 / 20.0)
_RANDOM_MAX_CORRELATION = 0.05
_RANDOM_MIN_SAMPLES = 4096
_BLOCK_FRAMES = 1 << 18


class AudioFileError(ValueError):
  """An audio file is missing, unreadable, empty, truncated or holds impossible samples."""


class TruncatedAudioError(AudioFileError):
  """An audio file holds fewer samples than its header declares."""


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


def declared_frames(path) -> int | None:
  """The frame count a WAV file's header declares (its data chunk size), None for other formats.

  libsndfile reports the frames actually present, so a truncated WAV would read
  silently shorter; FLAC's declared count is libsndfile's own (`sf.info().frames`).
  """
  with open(path, 'rb') as fh:
    head = fh.read(12)
    if len(head) < 12 or head[:4] != b'RIFF' or head[8:12] != b'WAVE':
      return None
    block_align = None
    while True:
      chunk = fh.read(8)
      if len(chunk) < 8:
        return None
      name, size = chunk[:4], struct.unpack('<I', chunk[4:])[0]
      if name == b'fmt ':
        fmt = fh.read(size + (size & 1))
        block_align = struct.unpack('<H', fmt[12:14])[0] if len(fmt) >= 14 else None
      elif name == b'data':
        # 0 and 0xFFFFFFFF: written by a recorder that never finalised the header.
        if not block_align or size in (0, 0xFFFFFFFF):
          return None
        return size // block_align
      else:
        fh.seek(size + (size & 1), os.SEEK_CUR)


@dataclasses.dataclass
class _Stats:
  """Running sums per channel over the blocks of one file ([channels] each)."""
  frames: int = 0
  energy: np.ndarray | None = None  # sum of x[t]^2
  lag1: np.ndarray | None = None  # sum of x[t] * x[t - 1]
  last: np.ndarray | None = None  # the previous block's last frame


def _check_block(block: np.ndarray, path: str, stats: _Stats, rate: int):
  """Raises AudioFileError for non-finite or absurd samples; adds `block` [frames, channels] to stats."""
  finite = np.isfinite(block)
  if not finite.all():
    t, c = np.argwhere(~finite)[0]
    raise AudioFileError(f'Audio file {path} holds NaN or Inf samples (first at '
                         f'{(stats.frames + t) / rate:.3f} s, channel {c + 1}); re-export it.')
  peak = np.abs(block)
  if peak.size and peak.max() > MAX_ABS_SAMPLE:
    t, c = np.unravel_index(np.argmax(peak), peak.shape)
    v = float(block[t, c])
    raise AudioFileError(
        f'Audio file {path} holds a sample of {v:.3g} ({20 * math.log10(abs(v)):+.0f} dBFS) at '
        f'{(stats.frames + t) / rate:.3f} s, channel {c + 1}: beyond +-{MAX_ABS_SAMPLE:g} '
        f'(+{20 * math.log10(MAX_ABS_SAMPLE):.0f} dBFS) a float file is damaged or mis-scaled. '
        'Re-export it, or normalise it to full scale.')
  x = block.astype(np.float64)
  prev = x[:-1] if stats.last is None else np.concatenate([stats.last, x[:-1]])
  cur = x if stats.last is not None else x[1:]
  energy, lag1 = np.sum(x * x, axis=0), np.sum(prev * cur, axis=0)
  stats.energy = energy if stats.energy is None else stats.energy + energy
  stats.lag1 = lag1 if stats.lag1 is None else stats.lag1 + lag1
  stats.last = x[-1:] if len(x) else stats.last
  stats.frames += len(block)


def _looks_random(stats: _Stats, path: str):
  """Raises AudioFileError when a channel is full-scale white noise (random bytes decoded as PCM)."""
  if stats.frames < _RANDOM_MIN_SAMPLES or stats.energy is None:
    return
  rms = np.sqrt(stats.energy / stats.frames)
  corr = stats.lag1 / np.maximum(stats.energy, 1e-30)
  for c in np.flatnonzero((rms > _RANDOM_MIN_RMS) & (np.abs(corr) < _RANDOM_MAX_CORRELATION)):
    raise AudioFileError(
        f'Audio file {path} looks like random data, not a recording: channel {c + 1} is white noise '
        f'at {20 * math.log10(rms[c]):.1f} dBFS RMS (neighbouring samples uncorrelated, '
        f'{corr[c]:+.3f}), as when the data were overwritten or the file is not audio. Check or '
        're-export it; a genuine full-scale noise track must be below '
        f'{20 * math.log10(_RANDOM_MIN_RMS):.0f} dBFS RMS.')


def _open(path: str) -> sf.SoundFile:
  try:
    return sf.SoundFile(path)
  except Exception as e:  # libsndfile raises several types for corrupt files
    raise AudioFileError(
        f'Could not read audio file {path}: {e}. The file is corrupt or not an audio format '
        'libsndfile reads; re-export it, or convert it with e.g. `ffmpeg -i IN -c:a pcm_s16le '
        'OUT.wav`.') from e


def _decode(path, pad_short: bool, keep: bool):
  """Reads `path` block by block, checking every block; (blocks or None, rate, frames, channels)."""
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'Audio file not found: {path}. Check the path (and, for a dataset, '
                            'that it was copied completely).')
  try:
    declared = declared_frames(path)
  except OSError as e:
    raise AudioFileError(f'Could not read audio file {path}: {e}.') from e
  stats, blocks, error = _Stats(), [], None
  with _open(path) as f:
    rate, channels = int(f.samplerate), int(f.channels)
    declared = f.frames if declared is None else declared
    while True:
      try:
        block = f.read(_BLOCK_FRAMES, dtype='float32', always_2d=True)
      except Exception as e:  # pylint: disable=broad-except  (a decoder error mid-file)
        error = e
        break
      if not len(block):
        break
      _check_block(block, path, stats, rate)
      if keep:
        blocks.append(block)
  if stats.frames == 0 and error is None and not declared:
    raise AudioFileError(f'Audio file {path} holds no samples; re-export it or remove it.')
  if stats.frames < declared:
    missing = declared - stats.frames
    what = (f'its header declares {declared} samples per channel ({declared / rate:.3f} s) but only '
            f'{stats.frames} ({stats.frames / rate:.3f} s) '
            + (f'decode ({error})' if error is not None else 'are in the file'))
    if not pad_short:
      raise TruncatedAudioError(
          f'Audio file {path} is truncated: {what}. Re-copy or re-export it, or pass --pad_short to '
          'mix it with the missing end as silence.')
    logging.warning('%s is truncated: %s; the missing %.3f s are silence (--pad_short).', path, what,
                    missing / rate)
    if keep:
      blocks.append(np.zeros((missing, channels), np.float32))
  elif error is not None:
    raise AudioFileError(f'Could not decode audio file {path} after {stats.frames} samples: {error}. '
                         'Re-export it.') from error
  _looks_random(stats, path)
  return blocks if keep else None, rate, max(stats.frames, declared), channels


def check_file(path, pad_short: bool = False) -> tuple[int, int, int]:
  """Every check of `read_audio`, block by block without keeping the samples.

  For checking all inputs before any work: memory stays one block whatever the
  file's length. Returns (rate, frames, channels), frames counting the padding
  of a truncated file when `pad_short`. Raises as `read_audio`.
  """
  _, rate, frames, channels = _decode(path, pad_short, keep=False)
  return rate, frames, channels


def read_audio(path, target_rate: int | None = DEFAULT_RATE, *,
               on_rate_mismatch: str = 'resample', pad_short: bool = False
               ) -> tuple[np.ndarray, int]:
  """Reads an audio file as float32 [channels, samples] in [-1, 1] (integer formats).

  Args:
    path: a file soundfile/libsndfile can read (WAV, FLAC, AIFF, OGG, ...).
    target_rate: the rate to return; None keeps the file's own rate.
    on_rate_mismatch: 'resample' (polyphase, see module docstring) or 'error'.
    pad_short: a file with fewer samples than its header declares is padded
      with silence to the declared length (with a warning) instead of refused.
  Returns:
    (audio float32 [channels, samples], rate).
  Raises:
    FileNotFoundError: no file at `path`.
    AudioFileError: unreadable, empty, truncated (TruncatedAudioError), NaN/Inf,
      beyond +-MAX_ABS_SAMPLE, or random data (see the module docstring).
    ValueError: the rate differs from `target_rate` and on_rate_mismatch='error'.
  """
  if on_rate_mismatch not in ('resample', 'error'):
    raise ValueError(f"on_rate_mismatch must be 'resample' or 'error', got {on_rate_mismatch!r}.")
  path = os.fspath(path)
  blocks, rate, _, channels = _decode(path, pad_short, keep=True)
  audio = np.ascontiguousarray(np.concatenate(blocks).T if blocks else
                               np.zeros((channels, 0), np.float32))  # [channels, samples]
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
