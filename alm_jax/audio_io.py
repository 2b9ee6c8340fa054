"""Reading and writing audio files, with errors that name the file and the fix.

    audio, rate = read_audio('song.wav')             # float32 [channels, samples], 44100
    check_file('song.wav')                           # the same checks, block by block, no array kept
    mono = to_mono(audio)                            # float32 [samples]
    write_wav('mix.wav', mix, 44100)                 # [samples] or [channels, samples]
    with BlockReader('long.wav', 44100, frames) as r: block = r.read(441000)  # mono, bounded memory
    with WavWriter('mix.wav', 44100) as w: w.write(block)                     # block by block

A file that decodes is still refused when its data cannot be what a recording
holds: a header whose rate or length no recording has (`check_header`:
outside MIN_RATE-MAX_RATE, beyond MAX_HOURS; refused before anything is
allocated), fewer samples than its header declares (a truncated copy;
`pad_short` pads them with silence instead, unless under a tenth is there),
NaN/Inf, a sample beyond +-MAX_ABS_SAMPLE (+60 dBFS, a damaged or mis-scaled
float file), or full-scale white noise (a data chunk overwritten with random
bytes, see `_looks_random`). Resampling: a
file at another rate is converted with `scipy.signal.resample_poly(x, up,
down)` where up/down = target/source reduced by their gcd (44100/48000 ->
147/160): a polyphase FIR low-pass designed with a Kaiser window (beta 5),
zero-phase, so the output stays time-aligned with other tracks of the same
song. `on_rate_mismatch='error'` refuses such files instead. `BlockReader`
resamples block by block with enough overlap for the filter, so its output
equals resampling the whole file (tested sample for sample) while memory stays
one block whatever the file's length.
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
# Headers that lie: rates and lengths no recording has are refused before anything is
# allocated for them (a 1 Hz header resampled to 44.1 kHz, or a declared length padded
# with --pad_short, would allocate tens of GB).
MIN_RATE = 8000  # the lowest rate in use (telephony)
MAX_RATE = 768000  # 16x 48 kHz, above any converter
MAX_HOURS = 24.0  # a day: longer than any one recording mixed here
# --pad_short pads a copy cut short; a file holding under a tenth of its declared length
# (and missing over a minute) has a damaged header rather than a lost end.
MIN_HELD_FRACTION = 0.1
MAX_PAD_ALWAYS_S = 60.0


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


def check_header(path, rate: int, frames: int) -> None:
  """Refuses a header whose rate or length no recording has, before anything is allocated.

  Args:
    rate: the sample rate the header declares.
    frames: the samples per channel it declares (or libsndfile counts).
  Raises:
    AudioFileError: a rate outside [MIN_RATE, MAX_RATE] or a length beyond MAX_HOURS.
  """
  if not MIN_RATE <= rate <= MAX_RATE:
    raise AudioFileError(
        f'Audio file {path} declares a sample rate of {rate} Hz: no recording has that rate '
        f'(accepted: {MIN_RATE}-{MAX_RATE} Hz), so its header is damaged or it is not audio. '
        'Re-export it, or rewrite the header with the right rate (e.g. `sox -r 44100 IN OUT.wav`).')
  if frames > MAX_HOURS * 3600 * rate:
    raise AudioFileError(
        f'Audio file {path} declares {frames} samples per channel at {rate} Hz '
        f'({frames / rate / 3600:.1f} h), beyond the {MAX_HOURS:g} h accepted: its header is '
        'damaged (re-export it), or split a longer recording into parts.')


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
    check_header(path, rate, max(declared, f.frames))
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
    if missing > MAX_PAD_ALWAYS_S * rate and stats.frames < MIN_HELD_FRACTION * declared:
      raise TruncatedAudioError(
          f'Audio file {path} is truncated beyond padding: {what}. Less than '
          f'{MIN_HELD_FRACTION:.0%} of the declared length is there, so the header is more likely '
          f'damaged than the copy short, and --pad_short would add {missing / rate / 60:.1f} min '
          'of silence: re-copy or re-export it.')
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


class BlockReader:
  """Reads one file as mono float32 [samples] at `target_rate`, block by block.

  The same samples as `to_mono(read_audio(path, target_rate, pad_short=...))`,
  to float precision (stereo is averaged before resampling here, after it
  there; both are linear), followed by silence for as long as the caller
  reads: songs pad their shorter files so. Memory is one block of the file.

  Args:
    path: a file `check_file` has accepted.
    target_rate: the rate of the samples returned.
    frames: the file's length at its own rate as `check_file` returns it
      (a truncated file accepted with pad_short counts its declared length:
      the missing end reads as silence).
  """

  def __init__(self, path, target_rate: int, frames: int):
    self.path = os.fspath(path)
    self._file = _open(self.path)
    self.source_rate, self.channels = int(self._file.samplerate), int(self._file.channels)
    self.target_rate = int(target_rate)
    self._in_frames = int(frames)
    g = math.gcd(self.source_rate, self.target_rate)
    self._up, self._down = self.target_rate // g, self.source_rate // g
    # Output samples there are before the silence (resample_poly's length of the whole file).
    self.length = -(-self._in_frames * self._up // self._down)
    self._in_pos = 0  # input frames consumed from the file (past its data: zeros)
    self._out = np.zeros(0, np.float32)  # produced, not yet returned
    self._produced = 0  # output samples produced so far (returned + in self._out)
    self._block_in = 1 << 16
    if self._up != self._down:
      # resample_poly's filter reaches 10 * max(up, down) upsampled samples either side; blocks
      # overlap by `_margin` input samples (a multiple of `down`, so phases line up) beyond it.
      reach = -(-10 * max(self._up, self._down) // self._up) + 1
      self._margin = -(-reach // self._down) * self._down
      self._block_in = max(1, (1 << 16) // self._down) * self._down
      self._buf = np.zeros(0, np.float32)  # input from self._buf_start on
      self._buf_start = 0

  def _read_input(self, n: int) -> np.ndarray:
    """The next `n` mono input frames (fewer at the end of `frames`), zeros past the file's data."""
    n = max(0, min(n, self._in_frames - self._in_pos))
    block = self._file.read(n, dtype='float32', always_2d=True)
    mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
    if len(mono) < n:  # a truncated file accepted with pad_short
      mono = np.concatenate([mono, np.zeros(n - len(mono), np.float32)])
    self._in_pos += n
    return np.ascontiguousarray(mono, np.float32)

  def _produce(self) -> bool:
    """Appends the next block of output to self._out; False once the file's length is produced."""
    if self._produced >= self.length:
      return False
    if self._up == self._down:
      out = self._read_input(self._block_in)
    else:
      # Output block [o0, o1) needs input [i0 - margin, i1 + margin), i0 = o0 * down / up.
      i0 = self._produced // self._up * self._down
      i1 = i0 + self._block_in
      lo, hi = max(0, i0 - self._margin), min(self._in_frames, i1 + self._margin)
      if hi > self._buf_start + len(self._buf):
        self._buf = np.concatenate([self._buf, self._read_input(hi - self._buf_start - len(self._buf))])
      self._buf, self._buf_start = self._buf[lo - self._buf_start:], lo
      seg = resample(self._buf[:hi - lo], self.source_rate, self.target_rate)
      skip = (i0 - lo) // self._down * self._up
      out = seg[skip:skip + min(self._block_in // self._down * self._up, self.length - self._produced)]
    self._out = np.concatenate([self._out, out]) if len(self._out) else out
    self._produced += len(out)
    return len(out) > 0

  def read(self, n: int) -> np.ndarray:
    """The next `n` samples, float32 [n]: the file's, then silence."""
    while len(self._out) < n and self._produce():
      pass
    out, self._out = self._out[:n], self._out[n:]
    if len(out) < n:
      out = np.concatenate([out, np.zeros(n - len(out), np.float32)])
    return out

  def close(self):
    self._file.close()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


class WavWriter:
  """Writes float audio (mono, or `channels` > 1: a stereo mix) to a WAV file block by block.

  Refuses NaN/Inf as `write_wav` does.

  Keeps the peak written (`peak`), for the caller's clipping warning.
  """

  def __init__(self, path, rate: int, *, subtype: str = 'FLOAT', channels: int = 1):
    if int(rate) <= 0:
      raise ValueError(f'Sample rate must be positive, got {rate} for {path}.')
    self.path = os.fspath(path)
    self.peak = 0.0
    self.frames = 0
    self.channels = int(channels)
    self._file = sf.SoundFile(self.path, 'w', int(rate), self.channels, subtype=subtype,
                              format='WAV')

  def write(self, block) -> None:
    """Appends block [samples] (mono) or [channels, samples]."""
    block = np.asarray(block, np.float32)
    if self.channels > 1:
      if block.ndim != 2 or block.shape[0] != self.channels:
        raise ValueError(f'{self.path} has {self.channels} channels: write [channels, samples] '
                         f'blocks, got shape {block.shape}.')
      block = block.T  # soundfile takes [samples, channels]
    if not np.isfinite(block).all():
      raise ValueError(f'Refusing to write {self.path}: the audio holds NaN or Inf.')
    if block.size:
      self.peak = max(self.peak, float(np.max(np.abs(block))))
    try:
      self._file.write(block)
    except sf.LibsndfileError as e:
      raise self._os_error(e, 4 * block.size) from e
    self.frames += len(block)

  def _os_error(self, error, needed: int) -> OSError:
    """libsndfile says only 'System error.': an OSError naming the file, ENOSPC on a full disk."""
    import errno  # pylint: disable=g-import-not-at-top  (only on a failed write)
    import shutil  # pylint: disable=g-import-not-at-top
    try:
      full = shutil.disk_usage(os.path.dirname(os.path.abspath(self.path))).free < needed + (1 << 16)
    except OSError:
      full = False
    if full:
      return OSError(errno.ENOSPC, 'No space left on device', self.path)
    return OSError(errno.EIO, f'could not write audio ({error})', self.path)

  def close(self):
    try:
      self._file.close()
    except sf.LibsndfileError as e:
      raise self._os_error(e, 0) from e

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()


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
