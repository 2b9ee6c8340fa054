"""Mixing song folders in batches, block by block, with a loaded mixer.

Songs (`alm_jax.songio`: found, checked, read and written there) are mixed in
padded batches of the same shape, so the offline engine
(`alm_jax.inference.offline`) compiles once per run. Each batch is read, mixed
and written block by block (whole engine pieces, a causal engine carrying its
state), so the result equals mixing whole songs while memory stays bounded
whatever their length.
"""

import contextlib
import pathlib

from absl import logging
import numpy as np
from tqdm import tqdm

from alm_jax import outputs
from alm_jax import songio
from alm_jax.inference import offline

BLOCK_SECONDS = 30.0  # audio read, mixed and written at a time (rounded to whole engine pieces)


def mix_songs(loaded, songs: list[songio.Song], out_dir, *, batch_songs: int = 4,
              chunk_seconds: float = offline.DEFAULT_CHUNK_SECONDS, raw: bool = False,
              pad_unequal: bool = True, overwrite: bool = False, progress: bool = True,
              segment_seconds: float | None = None, engine=None,
              pad_short: bool = False, source: str = '') -> list[pathlib.Path]:
  """Mixes songs in batches of `batch_songs` and writes their results under `out_dir/<song>/`.

  Nothing the user had is touched (`alm_jax.outputs`): `out_dir` may not
  equal, contain or lie inside a song's folder, and an existing
  `out_dir/<song>/` is replaced only when an earlier run of this tool wrote it
  (it holds songio.MIX_MARKER) and `overwrite`. `source` (the checkpoint) is recorded
  in the marker.

  Every batch is padded to [min(batch_songs, len(songs)), max_channels, block],
  so the offline engine the mixer's capabilities call for
  (`offline.get_offline_mixer`; or `engine`) compiles once for the whole run.
  The files are read, mixed and written block by block (BLOCK_SECONDS,
  whole engine pieces; a causal engine carries its state across blocks), so
  the result equals mixing whole songs while memory stays bounded whatever
  their length. Per-segment mixers' gains are written per F2 frame like the
  others', constant within a segment.

  Returns:
    The song folders written, in the order of `songs`.
  """
  if batch_songs < 1:
    raise ValueError(f'--batch_songs must be >= 1, got {batch_songs}.')
  # Built first: a checkpoint or setting that cannot be mixed fails before anything is written.
  if engine is None:
    engine = offline.get_offline_mixer(loaded, chunk_seconds=chunk_seconds,
                                       segment_seconds=segment_seconds)
  caps = loaded.capabilities
  if caps.per_segment:
    logging.warning('Mixing with a %s (--chunk_seconds does not apply.)',
                    offline.describe_per_segment(loaded, segment_seconds))
  max_channels = caps.max_channels
  out_dir = outputs.check_writable(out_dir, what='--output')
  replace = songio.check_output(songs, out_dir, overwrite)
  songio.validate_songs(songs, max_channels, pad_unequal, pad_short)
  out_dir.mkdir(parents=True, exist_ok=True)
  for leftover in outputs.clean_stale_temporaries(out_dir):
    logging.info('Removed %s, left by an interrupted run.', leftover)
  sample_rate, f2 = caps.sample_rate, caps.f2
  # Audio is read, mixed and written one block at a time (whole engine pieces, so the result is
  # the engine's on the whole song): memory stays a few blocks whatever the songs' lengths.
  piece = engine.segment_samples if caps.per_segment else engine.chunk_samples
  block = piece * max(1, round(BLOCK_SECONDS * sample_rate / piece))
  # Every batch has the same shape (one compilation); a run of fewer songs uses fewer rows.
  rows = min(batch_songs, len(songs))
  # Similar lengths share a batch, so little time is spent mixing padding.
  order = sorted(range(len(songs)), key=lambda i: songs[i].frames / max(songs[i].rate, 1))
  written = {}
  with tqdm(total=len(songs), unit='song', disable=not progress) as bar:
    for start in range(0, len(order), rows):
      batch = [songs[i] for i in order[start:start + rows]]
      _mix_batch(engine, loaded.params, batch, rows, max_channels, sample_rate, f2, block,
                 caps.per_segment, out_dir, replace, raw, source)
      written.update((song.name, out_dir / song.name) for song in batch)
      bar.update(len(batch))
  return [written[s.name] for s in songs]


def _stereo(engine) -> bool:
  """Whether the engine's mixer pans (a stereo mix.wav, pans.csv and pans.png)."""
  mixer = getattr(engine, 'mixer', None)
  return bool(mixer is not None and mixer.capabilities.stereo)


def _mix_batch(engine, params, batch: list[songio.Song], rows: int, max_channels: int,
               sample_rate: int, f2: int, block: int, per_segment: bool, out_dir, replace: dict,
               raw: bool, source: str) -> None:
  """Mixes one batch block by block and writes each song's folder.

  Audio [rows, max_channels, block] is read from the files, mixed (a causal
  engine carries its state from block to block; a per-segment one mixes whole
  segments) and each song's share written, until the longest song ends.
  """
  mask = np.zeros((rows, max_channels), bool)
  mask[len(batch):, 0] = True  # unused rows get one silent active channel: every row needs one
  with contextlib.ExitStack() as stack:
    readers = [songio.open_song(song, sample_rate, stack) for song in batch]
    lengths = [max(r.length for r in rs) for rs in readers]
    writers = []
    for song, rs in zip(batch, readers):
      mask[len(writers), :len(rs)] = True
      tmp = stack.enter_context(outputs.folder_written_aside(
          out_dir / song.name, replace=replace[song.name], marker=songio.MIX_MARKER,
          description=songio.marker_description(song, source)))
      writers.append(songio.SongWriter(tmp, song, len(rs), sample_rate, f2, raw,
                                       stereo=_stereo(engine)))
      stack.callback(writers[-1].close)  # closed before the folder is renamed or removed
    n = max(lengths)
    state = None
    for start in range(0, n, block):
      size = min(block, n - start)
      audio = np.zeros((rows, max_channels, size), np.float32)
      for i, rs in enumerate(readers):
        for j, r in enumerate(rs):
          audio[i, j] = r.read(size)
      if per_segment:
        out = engine(params, audio, mask)
      elif start + size < n:
        out, state = engine(params, audio, mask, state=state, return_state=True)
      else:
        out = engine(params, audio, mask, state=state)
      for i, (w, m) in enumerate(zip(writers, lengths)):
        keep = max(0, min(size, m - start))
        if keep:
          c = len(readers[i])
          frames = -(-keep // f2)
          if 'stereo' in out:  # a mixer with pans: the stereo mix and the pans
            w.write(out['stereo'][i, :, :keep], out['gains'][i, :c, :frames],
                    audio[i, :c, :keep].sum(axis=0) if raw else None, out['pans'][i, :c, :frames])
          else:
            w.write(out['mix'][i, :keep], out['gains'][i, :c, :frames],
                    audio[i, :c, :keep].sum(axis=0) if raw else None)
    for w, m in zip(writers, lengths):
      w.finish(m)
