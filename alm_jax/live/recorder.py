"""Streams a show to disk from a non-real-time thread: inputs, mix and gains.csv, valid if killed.

Each channel goes to a mono 32-bit float WAV written by `WavWriter`, the mix to
mix.wav (two channels, left and right, for a stereo engine, whose pans go to
pans.csv beside gains.csv):
samples are appended and, on every flush, the header's sizes are rewritten to
cover exactly the samples written so far. A process killed at any moment
(kill -9) leaves files whose headers describe the data up to the last flush
(every `flush_seconds`); bytes after it are ignored by readers. gains.csv (and
pans.csv) get whole lines, flushed with the audio. `take_folder` picks where a show goes:
`--record=DIR` writes DIR/take-001, then DIR/take-002, ..., never touching an
earlier take; only `--overwrite` records into DIR itself, replacing the one
recording it holds.
"""

import csv
import json
import os
import pathlib
import queue
import re
import struct
import threading
import time

import numpy as np

from alm_jax import outputs

_HEADER = 56  # RIFF + fmt (16) + fact + data chunk headers
TAKE_PREFIX = 'take-'
MARK = 'alm_jax.live recording'  # info.json's "written_by": what --overwrite may replace
_TAKE = re.compile(r'^take-(\d+)$')
_RECORDING_FILE = re.compile(r'^(in_\d+\.wav|mix\.wav|gains\.csv|pans\.csv|info\.json)$')


class RecordError(ValueError):
  """A --record folder that cannot or must not be written; the message names it and the fix."""


def holds_recording(folder) -> bool:
  """Whether `folder` holds a recording's files (ours or not) directly in it."""
  folder = pathlib.Path(folder)
  return folder.is_dir() and any(_RECORDING_FILE.match(p.name) for p in folder.iterdir())


def take_folder(record, *, overwrite: bool = False, inputs=()) -> pathlib.Path:
  """The folder a show recorded with `--record=record` goes to, created here.

  Without overwrite: a new numbered take, `record/take-NNN` one above the
  highest there (take-001 in a new or empty folder), made with an exclusive
  mkdir, so an earlier take is never written into. With overwrite: `record`
  itself, after removing the recording it holds; refused where it holds
  anything but one alm_jax.live recording (a folder of takes, other files).
  `inputs` are folders the show reads (--play): the recording may not equal,
  contain or lie inside one. Raises RecordError naming the folder and the fix.
  """
  try:
    root = outputs.check_writable(record, what='--record')
  except outputs.OutputError as e:
    raise RecordError(str(e)) from None
  for src in inputs:
    src = pathlib.Path(os.path.abspath(src))
    if root == src or src in root.parents or root in src.parents:
      raise RecordError(f'--record={record} overlaps the input folder {src} (--play): record '
                        'into a folder outside it.')
  try:
    if overwrite:
      return _replace_recording(root)
    root.mkdir(parents=True, exist_ok=True)
    while True:
      numbers = [int(m.group(1)) for m in map(_TAKE.match, os.listdir(root)) if m]
      take = root / f'{TAKE_PREFIX}{max(numbers, default=0) + 1:03d}'
      try:
        take.mkdir()
        return take
      except FileExistsError:  # another mixer took this number just now
        continue
  except OSError as e:
    raise RecordError(f'--record={record}: cannot create {e.filename or root} ({e.strerror}): '
                      'choose a folder you can write.') from None


def _replace_recording(root: pathlib.Path) -> pathlib.Path:
  if not root.exists():
    root.mkdir(parents=True)
    return root
  names = sorted(p.name for p in root.iterdir())
  others = [n for n in names if not _RECORDING_FILE.match(n)]
  info = root / 'info.json'
  ours = False
  if info.is_file():
    try:
      ours = json.loads(info.read_text(encoding='utf-8')).get('written_by') == MARK
    except (ValueError, OSError, AttributeError):
      ours = False
  if names and (others or not ours):
    what = (f'holds {", ".join(others[:5])}' + (' ...' if len(others) > 5 else '')
            if others else 'holds files that no alm_jax.live recording wrote')
    raise RecordError(f'--record={root} --overwrite: the folder {what}; --overwrite replaces only '
                      'a folder holding one alm_jax.live recording. Drop --overwrite (the show '
                      f'goes to a new {root}/take-NNN) or choose a new folder.')
  for n in names:  # every file of the old recording: no old in_NN.wav left beside the new ones
    (root / n).unlink()
  return root


class WavWriter:
  """An IEEE-float WAV file whose header is rewritten on each `flush` (valid up to the last one).

  Mono, or `channels` > 1 (the stereo mix): `write` then takes [channels, n]
  and interleaves it, as WAV stores frames.
  """

  def __init__(self, path, rate: int, channels: int = 1):
    self.path, self.rate, self.frames, self.channels = path, int(rate), 0, int(channels)
    self._fh = open(path, 'wb')
    self._fh.write(self._header())
    self._fh.flush()

  def _header(self) -> bytes:
    align = 4 * self.channels  # bytes per frame: one float32 per channel
    data = align * self.frames
    return (b'RIFF' + struct.pack('<I', _HEADER - 8 + data) + b'WAVE'
            + b'fmt ' + struct.pack('<IHHIIHH', 16, 3, self.channels, self.rate,
                                    align * self.rate, align, 32)
            + b'fact' + struct.pack('<II', 4, self.frames)
            + b'data' + struct.pack('<I', data))

  def write(self, samples):
    """samples: [n] (mono) or [channels, n]."""
    samples = np.asarray(samples, np.float32)
    if self.channels > 1:
      if samples.ndim != 2 or samples.shape[0] != self.channels:
        raise ValueError(f'{self.path} has {self.channels} channels: write [channels, n], got '
                         f'{samples.shape}')
      samples = samples.T  # [n, channels]: frames interleaved
    self._fh.write(np.ascontiguousarray(samples).tobytes())
    self.frames += samples.shape[0]

  def flush(self):
    """Data first, then the header that covers it: a kill between the two loses only the new data."""
    self._fh.flush()
    self._fh.seek(0)
    self._fh.write(self._header())
    self._fh.flush()
    self._fh.seek(0, os.SEEK_END)

  def close(self):
    self.flush()
    self._fh.close()


class Recorder(threading.Thread):
  """Copies the engine's input and mix rings to DIR/in_XX.wav and DIR/mix.wav, gain rows to DIR/gains.csv.

  A stereo engine's mix.wav has two channels (left, right) and its pan rows go
  to DIR/pans.csv (`frame`, `time_s`, `pred_pan_<name>`: the model's,
  `pan_<name>`: the one applied, -1 left ... +1 right).

  Attributes:
    lost: samples the recorder could not read in time (written as silence so
      the files stay aligned).
  """

  def __init__(self, engine, out_dir, channel_names, *, flush_seconds: float = 0.25, info=None):
    super().__init__(name='alm-live-recorder', daemon=True)
    os.makedirs(out_dir, exist_ok=True)
    self.engine, self.out_dir, self.flush_seconds = engine, out_dir, flush_seconds
    rate = engine.sample_rate
    self.inputs = [WavWriter(os.path.join(out_dir, f'in_{i + 1:02d}.wav'), rate)
                   for i in range(engine.channels)]
    self.mix = WavWriter(os.path.join(out_dir, 'mix.wav'), rate, channels=engine.buses)
    self._csv_fh = open(os.path.join(out_dir, 'gains.csv'), 'w', newline='', encoding='utf-8')
    self._csv = csv.writer(self._csv_fh)
    names = list(channel_names)
    self._csv.writerow(['frame', 'time_s'] + [f'pred_{n}' for n in names]
                       + [f'gain_{n}' for n in names] + [f'held_{n}' for n in names])
    self._csv_fh.flush()
    self._pans_fh = self._pans = None
    if engine.stereo:
      self._pans_fh = open(os.path.join(out_dir, 'pans.csv'), 'w', newline='', encoding='utf-8')
      self._pans = csv.writer(self._pans_fh)
      self._pans.writerow(['frame', 'time_s'] + [f'pred_pan_{n}' for n in names]
                          + [f'pan_{n}' for n in names])
      self._pans_fh.flush()
    self._rows = queue.SimpleQueue()
    self.pos = 0
    self.lost = 0
    self.info = {'written_by': MARK, **dict(info or {})}
    self._halt = threading.Event()
    self.rt_priority = 0
    self.write_info()

  def write_info(self, **extra):
    self.info.update(extra)
    outputs.atomic_write_text(os.path.join(self.out_dir, 'info.json'),
                              json.dumps(self.info, indent=1))

  def add_gains(self, frame, predicted, applied, held, predicted_pans=None, pans=None):
    """Called by the worker once per frame (a queue put: no file work on that thread).

    predicted, applied: [c] gains; held: [c] bool; predicted_pans, pans: [c]
    (written to pans.csv on a stereo engine).
    """
    both = self._pans is not None and pans is not None
    self._rows.put((frame, predicted.copy(), applied.copy(), held.copy(),
                    (predicted_pans.copy(), pans.copy()) if both else None))

  def stop(self):
    self._halt.set()

  def run(self):
    from alm_jax.live import engine  # pylint: disable=g-import-not-at-top
    engine.set_realtime(self.rt_priority)
    while not self._halt.wait(self.flush_seconds):
      self._drain()
    self._drain()
    for w in self.inputs + [self.mix]:
      w.close()
    self._csv_fh.close()
    if self._pans_fh is not None:
      self._pans_fh.close()

  def _drain(self):
    eng = self.engine
    end = eng.written
    if end - self.pos > eng.ring_size - 8192:  # overwritten before we got to it
      skip = end - (eng.ring_size - 8192) - self.pos
      self.lost += skip
      for w in self.inputs:
        w.write(np.zeros(skip, np.float32))
      self.mix.write(np.zeros(eng.mix_ring.shape[:-1] + (skip,), np.float32))
      self.pos += skip
    n = end - self.pos
    if n > 0:
      x = eng.read(self.pos, n)
      m = eng.read(self.pos, n, mix=True)
      for ch, w in enumerate(self.inputs):
        w.write(x[ch])
      self.mix.write(m)
      self.pos = end
    frame_s = eng.f2 / eng.sample_rate
    while True:
      try:
        frame, pred, applied, held, pans = self._rows.get_nowait()
      except queue.Empty:
        break
      self._csv.writerow([frame, f'{frame * frame_s:.6f}'] + [f'{v:.9g}' for v in pred]
                         + [f'{v:.9g}' for v in applied] + [int(h) for h in held])
      if pans is not None:
        self._pans.writerow([frame, f'{frame * frame_s:.6f}'] + [f'{v:.9g}' for v in pans[0]]
                            + [f'{v:.9g}' for v in pans[1]])
    for w in self.inputs + [self.mix]:
      w.flush()
    self._csv_fh.flush()
    if self._pans_fh is not None:
      self._pans_fh.flush()


def _read_frame_csv(path):
  """A recorder CSV -> (header, rows [T, columns] float64); a torn last line is dropped."""
  with open(path, newline='', encoding='utf-8') as fh:
    rows = list(csv.reader(fh))
  header, rows = rows[0], rows[1:]
  rows = [r for r in rows if len(r) == len(header)]
  return header, np.array([[float(v) for v in r] for r in rows]).reshape(-1, len(header))


def read_gains_csv(path):
  """gains.csv -> (frames [T] int, predicted [T, c], applied [T, c], held [T, c] bool); a torn last line is dropped."""
  header, a = _read_frame_csv(path)
  c = (len(header) - 2) // 3
  return (a[:, 0].astype(int), a[:, 2:2 + c].astype(np.float32),
          a[:, 2 + c:2 + 2 * c].astype(np.float32), a[:, 2 + 2 * c:].astype(bool))


def read_pans_csv(path):
  """pans.csv -> (frames [T] int, predicted [T, c], applied [T, c]); a torn last line is dropped."""
  header, a = _read_frame_csv(path)
  c = (len(header) - 2) // 2
  return a[:, 0].astype(int), a[:, 2:2 + c].astype(np.float32), a[:, 2 + c:].astype(np.float32)


def wait_until(predicate, timeout: float, interval: float = 0.05) -> bool:
  """Polls `predicate` until true or `timeout` seconds; returns its last value."""
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if predicate():
      return True
    time.sleep(interval)
  return bool(predicate())
