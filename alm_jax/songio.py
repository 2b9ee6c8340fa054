"""Song folders on disk: finding, checking, reading and writing them.

A song is a folder of per-channel audio files in any format libsndfile reads
(or audio files given one by one); a folder of such folders is a batch of
songs. `discover_songs` turns --input values into `Song`s and names every file
it leaves out; `validate_songs` checks every file, header and samples, before
any work, so a bad file fails the run up front naming the file and the fix;
`load_song` reads a whole song ([channels, samples], for live playback and
tests) and `open_song` opens it block by block (`audio_io.BlockReader`, for
mixing long songs in bounded memory). A song's results (mix.wav, optional
raw.wav, gains.csv, gains.png and the MIX_MARKER) are written aside and
renamed into place (`alm_jax.outputs`) by `SongWriter`/`write_song`;
`check_output` applies the output rules before any work. Mixing songs in
batches is `alm_jax.songs`.
"""

import contextlib
import csv
import dataclasses
import math
import os
import pathlib
from typing import Sequence

from absl import logging
import numpy as np
import soundfile as sf

from alm_jax import audio_io
from alm_jax import outputs
from alm_jax.evaluation import plots

# File extensions of the formats libsndfile reads (soundfile.available_formats()). Left out:
# RAW (header-less: any file would do), MAT4/MAT5 (.mat also holds non-audio data), HTK
# (speech features more often than audio) and MPC2K (.mpc is also Musepack, which it cannot read).
_FORMAT_EXTENSIONS = {
    'WAV': ('.wav', '.wave', '.bwf'), 'WAVEX': ('.wav',), 'RF64': ('.rf64',), 'W64': ('.w64',),
    'AIFF': ('.aif', '.aiff', '.aifc'), 'FLAC': ('.flac',), 'OGG': ('.ogg', '.oga', '.opus'),
    'MP3': ('.mp3',), 'CAF': ('.caf',), 'AU': ('.au', '.snd'), 'SVX': ('.iff', '.8svx', '.16sv'),
    'IRCAM': ('.sf', '.ircam'), 'VOC': ('.voc',), 'NIST': ('.nist', '.sph'), 'PAF': ('.paf',),
    'SD2': ('.sd2',), 'AVR': ('.avr',), 'SDS': ('.sds',), 'XI': ('.xi',), 'PVF': ('.pvf',),
    'WVE': ('.wve',),
}
AUDIO_EXTENSIONS = tuple(sorted({ext for name in sf.available_formats()
                                 for ext in _FORMAT_EXTENSIONS.get(name, ())}))
GAINS_TIME_COLUMN = 'time_s'
# gains.csv's channel columns are '<channel> (linear)': amplitude factors (20 log10 for dB).
GAINS_UNIT_SUFFIX = ' (linear)'
# Written into every song folder the mixer writes: what `--overwrite` may replace (alm_jax.outputs).
MIX_MARKER = 'alm_jax_mix.json'



class InputError(ValueError):
  """Input files that cannot be mixed; the message names them and the fix."""


@dataclasses.dataclass
class Song:
  """One multitrack recording: its name and its channel files."""
  name: str
  files: list[pathlib.Path]
  rate: int = 0
  frames: int = 0  # longest file, at its own rate
  pad_short: bool = False  # pad files shorter than their header says (validate_songs sets it)
  # Each file's length at its own rate as audio_io.check_file found it (validate_songs sets it).
  file_frames: dict = dataclasses.field(default_factory=dict)

  @property
  def channel_names(self) -> list[str]:
    """File stems, or file names where two files share a stem."""
    stems = [f.stem for f in self.files]
    return [f.name if stems.count(f.stem) > 1 else f.stem for f in self.files]


def _is_audio(path: pathlib.Path) -> bool:
  # Hidden files (.DS_Store, macOS's ._kick.wav resource forks) are never channels.
  return path.is_file() and not path.name.startswith('.') and path.suffix.lower() in AUDIO_EXTENSIONS


def _audio_files(folder: pathlib.Path) -> list[pathlib.Path]:
  return sorted(p for p in folder.iterdir() if _is_audio(p))


def _log_skipped(folder: pathlib.Path, skipped: list[pathlib.Path]) -> None:
  """Names every entry of a song folder (or of a folder of songs) that is not mixed."""
  if skipped:
    logging.warning('%s: skipped %d entr%s that %s not audio files libsndfile reads: %s '
                    '(read: %s).', folder, len(skipped), 'y' if len(skipped) == 1 else 'ies',
                    'is' if len(skipped) == 1 else 'are', ', '.join(p.name for p in skipped),
                    ' '.join(AUDIO_EXTENSIONS))


def discover_songs(inputs: Sequence[str]) -> list[Song]:
  """Turns the --input values into songs.

  * files only: one song made of those files (named after the first one's folder);
  * a folder holding audio files: one song (named after the folder);
  * a folder holding only song folders: one song per sub-folder (batch mode).

  Audio files are those of every format libsndfile reads (AUDIO_EXTENSIONS);
  anything else in a song folder (notes, images, hidden files) is named in a
  warning and left out.

  Raises:
    InputError: missing paths, files mixed with folders, or no audio found.
  """
  if not inputs:
    raise InputError('No --input given: pass a song folder, audio files or a folder of song folders.')
  paths = [pathlib.Path(p) for p in inputs]
  missing = [str(p) for p in paths if not p.exists()]
  if missing:
    raise InputError(f'Input path(s) do not exist: {", ".join(missing)}.')
  is_file = [p.is_file() for p in paths]
  if all(is_file):
    bad = [str(p) for p in paths if p.suffix.lower() not in AUDIO_EXTENSIONS]
    if bad:
      raise InputError(f'Not audio files libsndfile reads: {", ".join(bad)} (read: '
                       f'{" ".join(AUDIO_EXTENSIONS)}); convert them, e.g. `ffmpeg -i IN OUT.wav`.')
    return [Song(name=paths[0].resolve().parent.name or 'song', files=paths)]
  if any(is_file):
    raise InputError('Give either audio files (one song) or folders, not both: '
                     f'files {[str(p) for p, f in zip(paths, is_file) if f]}, '
                     f'folders {[str(p) for p, f in zip(paths, is_file) if not f]}.')
  songs = []
  for folder in paths:
    files = _audio_files(folder)
    if files:
      songs.append(Song(name=folder.resolve().name, files=files))
      _log_skipped(folder, sorted(p for p in folder.iterdir() if p not in files))
      continue
    subs = sorted(p for p in folder.iterdir() if p.is_dir() and _audio_files(p))
    if not subs:
      raise InputError(f'No audio files in {folder} nor in any folder inside it (read: '
                       f'{" ".join(AUDIO_EXTENSIONS)}).')
    _log_skipped(folder, sorted(p for p in folder.iterdir() if p not in subs))
    for s in subs:
      files = _audio_files(s)
      songs.append(Song(name=s.name, files=files))
      _log_skipped(s, sorted(p for p in s.iterdir() if p not in files))
  names = [s.name for s in songs]
  dups = sorted({n for n in names if names.count(n) > 1})
  if dups:
    raise InputError(f'Several songs are named {dups}: their outputs would collide; rename the '
                     'folders or mix them in separate runs.')
  return songs


def validate_songs(songs: list[Song], max_channels: int, pad_unequal: bool,
                   pad_short: bool = False) -> None:
  """Checks every file, header and samples, before any mixing, so a bad file fails the run up front.

  Besides the headers, every file is decoded once block by block
  (`audio_io.check_file`): data shorter than the header declares (refused
  unless `pad_short`), NaN/Inf, absurd values and random data are found here,
  not halfway through a batch. Fills `song.rate`, `song.frames` and
  `song.pad_short`. Raises InputError listing every problem.
  """
  problems = []
  for song in songs:
    if not song.files:
      problems.append(f'{song.name}: no audio files.')
      continue
    if len(song.files) > max_channels:
      problems.append(f'{song.name}: {len(song.files)} files but the model mixes at most '
                      f'{max_channels} channels (config.model.max_channels): premix or drop some of '
                      f'{", ".join(f.name for f in song.files)}.')
    infos = {}
    for f in song.files:
      try:
        infos[f] = sf.info(os.fspath(f))
      except (RuntimeError, sf.LibsndfileError, OSError) as e:
        problems.append(f'{song.name}: cannot read {f}: {e}')
    if len(infos) < len(song.files):
      continue
    song.pad_short = pad_short
    for f in song.files:
      try:
        song.file_frames[f] = audio_io.check_file(f, pad_short=pad_short)[1]
      except audio_io.AudioFileError as e:
        problems.append(f'{song.name}: {e}')
    for f, info in infos.items():
      if info.channels > 2:
        problems.append(f'{song.name}: {f} has {info.channels} channels; give mono or stereo files.')
      if info.frames == 0:
        problems.append(f'{song.name}: {f} holds no samples.')
    rates = {f: info.samplerate for f, info in infos.items()}
    if len(set(rates.values())) > 1:
      listing = ', '.join(f'{f.name}: {r} Hz' for f, r in rates.items())
      problems.append(f'{song.name}: files have different sample rates ({listing}); the tracks of '
                      'one recording share a rate, so one of them is likely from another session: '
                      'check them, or convert them to one rate (e.g. `sox IN -r 44100 OUT.wav`).')
      continue
    song.rate = next(iter(rates.values()))
    lengths = {f: info.frames for f, info in infos.items()}
    song.frames = max(lengths.values())
    if len(set(lengths.values())) > 1 and not pad_unequal:
      listing = ', '.join(f'{f.name}: {n}' for f, n in lengths.items())
      problems.append(f'{song.name}: files have different lengths in samples ({listing}); trim them '
                      'or pass --pad_unequal=true to pad the short ones with silence at the end.')
  if problems:
    raise InputError('Cannot mix:\n  ' + '\n  '.join(problems))


def load_song(song: Song, sample_rate: int) -> np.ndarray:
  """Reads a validated song as float32 [channels, samples] at `sample_rate`, mono per channel."""
  tracks = []
  for f in song.files:
    # Resampled with scipy.signal.resample_poly (see alm_jax.audio_io); raises
    # naming the file when it is unreadable, empty or holds NaN/Inf.
    audio, _ = audio_io.read_audio(f, sample_rate, pad_short=song.pad_short)
    if audio.shape[0] == 2:
      logging.info('%s is stereo: downmixed to mono as (left + right) / 2.', f)
    tracks.append(audio_io.to_mono(audio))
  n = max(t.shape[-1] for t in tracks)
  short = [(f, t.shape[-1]) for f, t in zip(song.files, tracks) if t.shape[-1] < n]
  for f, m in short:
    logging.warning('%s: %s is %.3f s shorter than the longest file: padded with silence at the end.',
                    song.name, f.name, (n - m) / sample_rate)
  out = np.zeros((len(tracks), n), np.float32)
  for i, t in enumerate(tracks):
    out[i, :t.shape[-1]] = t
  if song.rate != sample_rate:
    logging.info('%s: resampled from %d Hz to %d Hz (scipy.signal.resample_poly).', song.name,
                 song.rate, sample_rate)
  return out


# ---------------------------------------------------------------------------
# Writing results
# ---------------------------------------------------------------------------


def write_gains_csv(path, gains, frame_seconds: float, channel_names: Sequence[str]) -> None:
  """gains [channels, frames] -> CSV: `time_s` (start of the F2 frame), then `<channel> (linear)` each.

  The gains are linear amplitude factors, as applied (20 log10 of them is dB).
  """
  with open(path, 'w', newline='', encoding='utf-8') as fh:
    writer = csv.writer(fh)
    writer.writerow([GAINS_TIME_COLUMN] + [f'{name}{GAINS_UNIT_SUFFIX}' for name in channel_names])
    for t in range(gains.shape[1]):
      writer.writerow([f'{t * frame_seconds:.6f}'] + [f'{g:.7g}' for g in gains[:, t]])


def write_pans_csv(path, pans, frame_seconds: float, channel_names: Sequence[str]) -> None:
  """pans [channels, frames] -> CSV: `time_s`, then `<channel> (pan)` each (-1 left ... +1 right)."""
  with open(path, 'w', newline='', encoding='utf-8') as fh:
    writer = csv.writer(fh)
    writer.writerow([GAINS_TIME_COLUMN] + [f'{name} (pan)' for name in channel_names])
    for t in range(pans.shape[1]):
      writer.writerow([f'{t * frame_seconds:.6f}'] + [f'{p:.7g}' for p in pans[:, t]])


def marker_description(song: Song, source: str) -> dict:
  """What MIX_MARKER records: the tool, the song, its input files and the checkpoint."""
  return {'tool': 'alm_jax.mix', 'song': song.name, 'inputs': [os.fspath(f) for f in song.files],
          'checkpoint': source}


def write_song(out_dir: pathlib.Path, song: Song, mix, gains, raw, sample_rate: int, f2: int,
               overwrite: bool, source: str = '') -> pathlib.Path:
  """Writes one song's results (whole arrays) into a temporary folder, then renames it into place.

  A crash leaves only a hidden `.tmp-*` folder (removed by the next run,
  `outputs.clean_stale_temporaries`), never an incomplete song folder. The
  folder holds MIX_MARKER; an existing one is replaced only when it holds it
  too (and `overwrite`). `mix_songs` writes block by block instead
  (`SongWriter`), the same files.
  """
  with outputs.folder_written_aside(out_dir / song.name, replace=overwrite, marker=MIX_MARKER,
                                    description=marker_description(song, source)) as tmp:
    writer = SongWriter(tmp, song, len(gains), sample_rate, f2, raw is not None)
    try:
      writer.write(mix, gains, raw)
      writer.finish(len(mix))
    finally:
      writer.close()
  return out_dir / song.name


class SongWriter:
  """One song's results written block by block into `folder`: mix.wav, raw.wav, gains.csv/png.

  The mix and raw sum go to disk as they come; only the gains ([channels,
  frames], 40 frames per second) are kept for the CSV and the plot. With
  `stereo` (a mixer with pans) mix.wav is the stereo mix (left, right) and the
  pans go beside the gains: pans.csv and pans.png.
  """

  def __init__(self, folder: pathlib.Path, song: Song, channels: int, sample_rate: int, f2: int,
               raw: bool, stereo: bool = False):
    self.folder, self.song, self.channels = folder, song, channels
    self.sample_rate, self.f2 = sample_rate, f2
    self._gains = []
    self._pans = [] if stereo else None
    self._mix = audio_io.WavWriter(folder / 'mix.wav', sample_rate, channels=2 if stereo else 1)
    self._raw = audio_io.WavWriter(folder / 'raw.wav', sample_rate) if raw else None

  def write(self, mix, gains, raw=None, pans=None):
    """Appends mix [n] (stereo: [2, n]), gains and pans [channels, ceil(n / f2)] and raw [n]."""
    self._mix.write(mix)
    self._gains.append(np.asarray(gains[:self.channels], np.float32))
    if self._pans is not None:
      self._pans.append(np.asarray(pans[:self.channels], np.float32))
    if self._raw is not None:
      self._raw.write(raw)

  def finish(self, samples: int):
    """Closes the audio and writes the gains of `samples` samples (CSV and plot)."""
    self.close()
    gains = np.concatenate(self._gains, axis=-1)[:, :-(-samples // self.f2)]
    for name, writer in (('mix', self._mix), ('raw sum', self._raw)):
      peak = writer.peak if writer is not None else 0.0
      if peak > 1.0:
        logging.warning('%s: the %s peaks at %.2f (%.1f dBFS); it is written as float WAV, so '
                        'nothing is clipped, but players may clip it.', self.song.name, name, peak,
                        20 * math.log10(peak))
    frame_seconds = self.f2 / self.sample_rate
    write_gains_csv(self.folder / 'gains.csv', gains, frame_seconds, self.song.channel_names)
    plots.plot_gains(gains, frame_seconds, self.song.channel_names, self.folder / 'gains.png',
                     title=self.song.name)
    if self._pans is not None:
      pans = np.concatenate(self._pans, axis=-1)[:, :gains.shape[1]]
      write_pans_csv(self.folder / 'pans.csv', pans, frame_seconds, self.song.channel_names)
      plots.plot_gains(pans, frame_seconds, self.song.channel_names, self.folder / 'pans.png',
                       scale='pan', title=f'{self.song.name}: stereo placement')

  def close(self):
    self._mix.close()
    if self._raw is not None:
      self._raw.close()


def check_output(songs: list[Song], out_dir, overwrite: bool, inputs: Sequence[str] = ()
                 ) -> dict[str, bool]:
  """Checks, before any work, that the songs' results may be written under `out_dir`.

  Refuses (outputs.OutputError) an `out_dir` that equals, contains or lies
  inside a song's folder or one of `inputs` (the --input paths), and an
  existing `out_dir/<song>/` that this tool did not write or that needs
  `overwrite`. Returns {song name: whether its folder exists and is replaced}.
  """
  folders = {p for s in songs for f in s.files for p in (f.absolute().parent, f.resolve().parent)}
  outputs.check_apart_from_inputs(out_dir, [*inputs, *sorted(folders)])
  return {s.name: outputs.check_replaceable(pathlib.Path(out_dir) / s.name, MIX_MARKER,
                                            overwrite=overwrite, tool='alm_jax.mix')
          for s in songs}


def open_song(song: Song, sample_rate: int, stack: contextlib.ExitStack) -> list:
  """BlockReaders of a validated song's files at `sample_rate`, closed with `stack`; logs as load_song.

  Each reads mono float32 blocks, then silence past its end (shorter files are padded).
  """
  readers = [stack.enter_context(audio_io.BlockReader(f, sample_rate, song.file_frames[f]))
             for f in song.files]
  n = max(r.length for r in readers)
  for f, r in zip(song.files, readers):
    if r.channels == 2:
      logging.info('%s is stereo: downmixed to mono as (left + right) / 2.', f)
    if r.length < n:
      logging.warning('%s: %s is %.3f s shorter than the longest file: padded with silence at the '
                      'end.', song.name, f.name, (n - r.length) / sample_rate)
  if song.rate != sample_rate:
    logging.info('%s: resampled from %d Hz to %d Hz (scipy.signal.resample_poly).', song.name,
                 song.rate, sample_rate)
  return readers
