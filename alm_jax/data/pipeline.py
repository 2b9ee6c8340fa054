"""The input pipeline: fixed-shape numpy batches of random song segments, with bleed.

`make_train_iterator(config, start_step=s)` is an endless, deterministic stream
(batch `s` first, so a resumed run continues the same sequence) of
{'audio' f32 [b, C, S], 'channel_mask' bool [b, C], 'target' f32 [b, S],
'bleed_severity' f32 [b], 'ideal_gains' f32 [b, C]} (for a model with pans also
'target_stereo' f32 [b, 2, S] and 'ideal_pans' f32 [b, C]); `make_eval_batches(config, split)` is the fixed
list of evaluation batches, with 'example_mask', 'song_id' and per-channel
metadata. Songs stay in memory as int16; batches are built on a thread pool in
step order. The sampling rules, the metadata and the multi-host split are in
docs/data.md ("The input pipeline").
"""

import dataclasses
import math
import os
from typing import Optional

from absl import logging
import numpy as np
import tensorflow_datasets as tfds

from alm_jax import metrics
from alm_jax import paths
from alm_jax import stereo
from alm_jax.data import bleed
from alm_jax.data import common
from alm_jax.data import datasets
from alm_jax.data import placement
from alm_jax.data import prefetch
from alm_jax.data import rooms
from alm_jax.data import stage
from alm_jax.data import timbre

_TRAIN, _ORDER, _EVAL = 0, 1, 2  # rng stream tags
_SILENCE_TRIES = 10
_SPLIT_IDS = {'train': 0, 'validation': 1, 'test': 2}


@dataclasses.dataclass(frozen=True)
class Song:
  song_id: str
  raw: np.ndarray        # int16 [c, n]
  raw_scale: np.ndarray  # float32 [c]
  mix: np.ndarray        # int16 [n]
  mix_scale: float
  instruments: tuple
  mix_gains: Optional[np.ndarray] = None  # float32 [c]: mix = sum_c mix_gains[c] * raw track c
  pans: Optional[np.ndarray] = None  # float32 [c]: the designed placement (alm_jax.data.placement)

  @property
  def num_channels(self) -> int:
    return self.raw.shape[0]

  @property
  def num_samples(self) -> int:
    return self.raw.shape[1]

  def raw_segment(self, start: int, length: int) -> np.ndarray:
    """float32 [c, length] from sample `start` (may be negative or run past the end: zeros)."""
    return common.dequantize(_window(self.raw, start, length), self.raw_scale)

  def mix_segment(self, start: int, length: int) -> np.ndarray:
    """float32 [length], zero outside the song."""
    return common.dequantize(_window(self.mix, start, length), self.mix_scale)


def _window(x: np.ndarray, start: int, length: int) -> np.ndarray:
  n = x.shape[-1]
  lo, hi = max(start, 0), min(start + length, n)
  if lo == start and hi == start + length:
    return x[..., lo:hi]
  out = np.zeros(x.shape[:-1] + (length,), x.dtype)
  if hi > lo:
    out[..., lo - start:hi - start] = x[..., lo:hi]
  return out


# ---- datasets -------------------------------------------------------------------------


def segment_samples(seconds: float) -> int:
  return int(round(float(seconds) * common.SAMPLE_RATE))


def get_builder(config):
  """The tfds builder named by config.data.name (not necessarily prepared; `datasets.builder`)."""
  return datasets.builder(config)


def prepared_builder(config):
  """get_builder(config), generated/prepared first if needed."""
  builder = get_builder(config)
  if builder.is_prepared():
    return builder
  entry = datasets.get(config)
  download_config = None
  if entry.manual_download:
    manual_dir = str(config.data.manual_dir)
    if not manual_dir:
      error = entry.user_errors[0] if entry.user_errors else ValueError
      raise error(entry.missing_manual.format(data_dir=builder.data_dir))
    download_config = tfds.download.DownloadConfig(manual_dir=manual_dir)
  logging.info('Preparing %s in %s.', builder.info.full_name, builder.data_dir)
  builder.download_and_prepare(download_config=download_config)
  return builder


def _split_size(builder, split: str) -> int:
  try:
    return int(builder.info.splits[split].num_examples)
  except (KeyError, ValueError) as e:
    raise ValueError(f'{builder.info.full_name} has no {split!r} split (it has '
                     f'{sorted(builder.info.splits.keys())}).') from e


_SONGS: dict = {}


def load_songs(config, split: str, process_index: int = 0, process_count: int = 1) -> list[Song]:
  """This process's songs of `split`, sorted by id, kept in memory (cached per process)."""
  builder = prepared_builder(config)
  key = (builder.info.full_name, str(builder.data_dir), split, process_index, process_count)
  if key not in _SONGS:
    _SONGS[key] = _read_songs(builder, split, process_index, process_count)
  songs = _SONGS[key]
  cmax = int(config.model.max_channels)
  for s in songs:
    if s.num_channels > cmax:
      raise ValueError(f'Song {s.song_id} of {builder.info.full_name} has {s.num_channels} '
                       f'channels, more than config.model.max_channels={cmax}; raise it or lower '
                       'config.data.max_raw_tracks.')
  return songs


def _read_songs(builder, split: str, process_index: int, process_count: int) -> list[Song]:
  n = _split_size(builder, split)
  if n == 0:
    return []
  if n >= process_count:
    sub = tfds.even_splits(split, n=process_count)[process_index]
  else:  # more processes than songs: each process takes one song, some twice
    sub = f'{split}[{process_index % n}:{process_index % n + 1}]'
  songs = []
  for ex in tfds.as_numpy(builder.as_dataset(split=sub, shuffle_files=False)):
    song = Song(song_id=ex['song_id'].decode(), raw=ex['raw'], raw_scale=ex['raw_scale'],
                mix=ex['mix'], mix_scale=float(ex['mix_scale']),
                instruments=tuple(i.decode() for i in ex['instruments']),
                mix_gains=(np.asarray(ex['mix_gains'], np.float32) if 'mix_gains' in ex
                           else None))
    if song.num_channels == 0:
      raise ValueError(f'Song {song.song_id} of {builder.info.full_name} has no channels; '
                       'rebuild the dataset.')
    for name, n in (('instruments', len(song.instruments)),
                    ('mix_gains', None if song.mix_gains is None else song.mix_gains.size)):
      if n is not None and n != song.num_channels:
        raise ValueError(f'Song {song.song_id} of {builder.info.full_name} has {n} {name} for '
                         f'{song.num_channels} raw tracks; rebuild the dataset (delete it from '
                         f'{builder.data_dir}).')
    if song.mix_gains is not None and placement.known(song.instruments):
      # A designed mix has a designed placement too: derived, not stored (docs/data.md).
      song = dataclasses.replace(song, pans=placement.designed_pans(song.song_id,
                                                                    song.instruments, song.raw))
    songs.append(song)
  songs.sort(key=lambda s: s.song_id)
  logging.info('Loaded %d %s songs of %s (process %d of %d).', len(songs), split,
               builder.info.full_name, process_index, process_count)
  return songs


def prepare(config, workdir=None):
  """Builds what the pipeline reads from disk: the tfds dataset and, with bleed on, the RIR bank.

  Run once (one process) before several processes read them; the pipeline
  would otherwise prepare them on first use in every process.
  """
  builder = prepared_builder(config)
  for other in corpora(config)[1:]:
    prepared_builder(other)
  rooms.bank_for_config(config, _bank_dir(config, workdir))
  return builder


def corpora(config) -> list:
  """The configs whose training splits train: config itself, then one per config.data.train_also.

  config.data.train_also names further datasets (e.g. ('rendered_live/stage',)) whose train
  splits join config.data.name's; validation and test stay config.data.name's alone. Each copy
  differs from config in data.name only, so every other data setting (bleed, levels) applies.
  """
  configs = [config]
  for name in tuple(config.data.get('train_also', ())):
    other = config.copy_and_resolve_references()
    other.data.name = str(name)
    configs.append(other)
  return configs


def num_train_songs(config) -> int:
  """Songs in the training splits of `corpora(config)` (all processes together)."""
  return sum(_split_size(prepared_builder(c), 'train') for c in corpora(config))


def local_batch_size(config, process_count: int) -> int:
  bsz = int(config.train.batch_size)
  if bsz % process_count:
    raise ValueError(f'config.train.batch_size={bsz} is not divisible by the {process_count} '
                     'processes; make it a multiple.')
  return bsz // process_count


def _bank_dir(config, workdir):
  """Where the RIR bank is cached: a local path or a URL (gs://...)."""
  if config.data.bleed.get('cache_dir', ''):
    return paths.as_path(str(config.data.bleed.cache_dir))
  if workdir:
    return paths.as_path(workdir) / 'rir_bank'
  root = str(config.data.data_dir) or os.environ.get('TFDS_DATA_DIR') or tfds.core.constants.DATA_DIR
  return paths.as_path(root) / 'alm_jax_rir_bank'


def num_workers(config) -> int:
  """config.data.num_workers resolved (-1: one per usable core but one, at most 16; see prefetch)."""
  return prefetch.num_workers(config.data.get('num_workers', 0))


# ---- examples --------------------------------------------------------------------------


def _rms_db(x: np.ndarray) -> float:
  ms = float(np.mean(np.square(x, dtype=np.float64))) if x.size else 0.0
  return 10 * math.log10(ms) if ms > 0 else -math.inf


def _random_start(song: Song, length: int, rng, silence_db: float) -> int:
  span = song.num_samples - length
  if span <= 0:
    return 0
  best, best_db = 0, -math.inf
  for _ in range(_SILENCE_TRIES):
    start = int(rng.integers(0, span + 1))
    level = _rms_db(song.mix_segment(start, length))
    if level >= silence_db:
      return start
    if level > best_db:
      best, best_db = start, level
  return best


def _eval_starts(song: Song, length: int, count: int, silence_db: float) -> list[int]:
  windows = max(1, song.num_samples // length)
  starts = [w * length for w in range(windows)]
  loud = [s for s in starts if _rms_db(song.mix_segment(s, length)) >= silence_db] or starts
  picks = np.unique(np.round(np.linspace(0, len(loud) - 1, min(count, len(loud)) + 2)[1:-1]))
  return [loud[int(i)] for i in picks]


class _Maker:
  """Builds examples: segment, channel shuffle, bleed and levels, padding."""

  def __init__(self, config, workdir):
    self.cmax = int(config.model.max_channels)
    self.stereo = stereo.has_pans(config.model)  # training batches carry the stereo target
    self.settings = bleed.Settings.from_config(config.data)
    self.bank = rooms.bank_for_config(config, _bank_dir(config, workdir))
    self.preroll = self.bank.rirs.shape[-1] if self.bank is not None else 0
    self.max_order = rooms.BankSpec.from_config(config).max_order if self.bank is not None else 0
    self.timbre = timbre.Settings.from_config(config.data)

  def stage_responses(self, song: Song, perm: np.ndarray) -> Optional[np.ndarray]:
    """float32 [c, c, L]: the song's stage responses in `perm`'s channel order (None: no stage)."""
    if self.bank is None or not stage.has_layout(song.song_id):
      return None
    h = stage.song_responses(song.song_id, tuple(song.instruments), self.preroll,
                             common.SAMPLE_RATE, self.max_order)
    return h[np.ix_(perm, perm)].astype(np.float32)

  def batch(self, picks, length: int, metadata: bool = True, equalise: bool = False) -> dict:
    """picks: [(song, start, rng)] -> the batch arrays, plus the metadata (module docstring).

    equalise: each source through its own random equaliser (`alm_jax.data.timbre`), the target
    re-summed from them; the songs must have designed gains (`check_timbre`).
    """
    bsz = len(picks)
    audio = np.zeros((bsz, self.cmax, length), np.float32)
    mask = np.zeros((bsz, self.cmax), bool)
    target = np.zeros((bsz, length), np.float32)
    severity = np.zeros((bsz,), np.float32)
    source = np.full((bsz, self.cmax), -1, np.int32)
    gain_db = np.zeros((bsz, self.cmax), np.float32)
    target_gains = np.zeros((bsz, self.cmax), np.float32)
    target_stereo = np.zeros((bsz, 2, length), np.float32)
    ideal_pans = np.full((bsz, self.cmax), np.nan, np.float32)
    starts = np.array([start for _, start, _ in picks], np.float64)
    draws, sources, instruments = [], [], []
    for e, (song, start, rng) in enumerate(picks):
      c = song.num_channels
      # Draw order (channel permutation, then bleed.draw's, then the equaliser's curves, last
      # so that switching it on leaves the others) is part of what a seed means: changing it
      # changes every stream, so resumed runs and repeated evaluations would no longer see the
      # same data.
      perm = rng.permutation(c)
      x = song.raw_segment(start - self.preroll, length + self.preroll)[perm]
      # A song laid out on a stage bleeds by its own geometry, the others through a bank room.
      d = bleed.draw(rng, c, self.bank, self.settings, self.stage_responses(song, perm))
      if equalise:  # the callers checked the songs' designed gains (check_timbre)
        x = timbre.apply(x, rng, self.timbre)
        # The stored mix is of the tracks as recorded: re-sum the designed mix from the
        # equalised ones, over the samples the inputs keep (after the preroll).
        target[e] = np.tensordot(song.mix_gains[perm], x[:, self.preroll:], axes=1)
      else:
        target[e] = song.mix_segment(start, length)
      draws.append(d)
      sources.append(x)
      mask[e, :c] = True
      severity[e] = d.severity_db
      source[e, :c] = perm
      gain_db[e, :c] = 20 * (np.log10(d.pre_gain.astype(np.float64))
                             + np.log10(d.post_gain.astype(np.float64)))
      target_gains[e, :c] = song.mix_gains[perm] if song.mix_gains is not None else np.nan
      if self.stereo or metadata:
        if song.pans is not None and song.mix_gains is not None:  # the clean tracks, designed
          ideal_pans[e, :c] = song.pans[perm]
          target_stereo[e] = stereo.mix_numpy(x[:, self.preroll:], song.mix_gains[perm],
                                              song.pans[perm])
        else:  # no designed placement: the mono target at the centre (no side, no pan term)
          target_stereo[e] = stereo.centred(target[e])
      instruments.append([song.instruments[p] for p in perm] + [''] * (self.cmax - c))
    if self.settings.backend == 'jax' and self.bank is not None:
      full = np.zeros((bsz, self.cmax, length + self.preroll), np.float32)
      for e, x in enumerate(sources):
        full[e, :x.shape[0]] = x
      audio[:] = bleed.apply_batch_jax(full, draws, max(self.preroll, 1))[:, :, self.preroll:]
    else:
      for e, (x, d) in enumerate(zip(sources, draws)):
        audio[e, :x.shape[0]] = bleed.apply_numpy(x, d, self.settings.workers)[:, self.preroll:]
    # The gains that put each input's own source at its target level (NaN where unknown), for
    # the loss's optional balance term and the balance error.
    ideal = np.where(mask, metrics.ideal_input_gains(target_gains, gain_db), np.nan)
    out = {'audio': audio, 'channel_mask': mask, 'target': target, 'bleed_severity': severity,
           'ideal_gains': ideal.astype(np.float32)}
    if self.stereo or metadata:
      out.update(target_stereo=target_stereo, ideal_pans=ideal_pans)
    if metadata:
      out.update({
          'channel_source': source,
          'input_gain_db': gain_db,
          'target_gains': target_gains,
          'segment_start': (starts / common.SAMPLE_RATE).astype(np.float32),
          'instruments': instruments,
      })
    return out


def check_timbre(songs) -> None:
  """Raises ValueError naming the songs the timbre augmentation cannot equalise (no designed gains)."""
  bad = [s.song_id for s in songs if s.mix_gains is None]
  if bad:
    raise ValueError(f'config.data.timbre needs designed mix gains, and {len(bad)} song(s) have none '
                     f'(their mix is not a sum of their tracks, e.g. MedleyDB), first {bad[:3]}: set '
                     'config.data.timbre.enabled = False, or leave their dataset out of '
                     'config.data.name / train_also.')


# ---- training stream --------------------------------------------------------------------


def _epoch_order(seed, epoch: int, process_index: int, num_songs: int, slots: int) -> np.ndarray:
  rng = np.random.default_rng(seed + [_ORDER, epoch, process_index])
  reps = -(-slots // num_songs)
  return np.concatenate([rng.permutation(num_songs) for _ in range(reps)])[:slots]


def make_train_iterator(config, *, steps_per_epoch: int, start_step: int = 0,
                        process_index: int = 0, process_count: int = 1, workdir=None,
                        metadata: bool = False):
  """Endless iterator of training batches, the batch of `start_step` first (module docstring).

  steps_per_epoch: batches per epoch, as the training loop computed it
    (`alm_jax.optimizer.steps_per_epoch`): every song is drawn once per epoch
    (more than once when an epoch has more slots than songs).

  workdir: where the RIR bank is cached when config.data.bleed.cache_dir is ''
    (local path or URL, str or path object).
  metadata: also yield the per-example metadata (module docstring). Off by
  default: the training loop hands every array of a batch to the device.
  Returns an iterator with a `close()` that stops its threads.
  """
  bsz = local_batch_size(config, process_count)
  songs = [song for c in corpora(config)
           for song in load_songs(c, 'train', process_index, process_count)]
  if not songs:
    raise ValueError(f'The training split of {config.data.name!r} has no songs; check '
                     'config.data (dataset name, train_also, max_raw_tracks, manual_dir).')
  spe = int(steps_per_epoch)
  length = segment_samples(config.data.segment_seconds)
  maker = _Maker(config, workdir)
  if maker.timbre.enabled:
    check_timbre(songs)  # here, not on a worker thread at the first such song drawn
  seed = [int(config.seed), int(config.data.shuffle_seed)]
  silence_db = float(config.data.silence_db)

  def build(step: int) -> dict:
    # A pure function of `step` (and the config): safe to run on any thread, in any order.
    epoch, k = divmod(step, spe)
    order = _epoch_order(seed, epoch, process_index, len(songs), spe * bsz)
    picks = []
    for e, i in enumerate(order[k * bsz:(k + 1) * bsz]):
      rng = np.random.default_rng(seed + [_TRAIN, step, process_index, e])
      song = songs[int(i)]
      picks.append((song, _random_start(song, length, rng, silence_db), rng))
    return maker.batch(picks, length, metadata, equalise=maker.timbre.enabled)

  return prefetch.ordered(build, int(start_step), num_workers(config),
                         int(config.data.get('prefetch', 2)))


# ---- evaluation ---------------------------------------------------------------------------


def make_eval_batches(config, split: str, *, process_index: int = 0, process_count: int = 1,
                      workdir=None) -> list[dict]:
  """Fixed evaluation batches of `split` for this process, with metadata (module docstring).

  Returns [] if the split has no songs.
  """
  bsz = local_batch_size(config, process_count)
  global_bsz = bsz * process_count
  songs = load_songs(config, split)
  length = segment_samples(config.data.eval_segment_seconds)
  count = int(config.data.get('eval_segments_per_song', 1))
  silence_db = float(config.data.silence_db)
  seed = [int(config.seed), int(config.data.shuffle_seed)]
  split_id = _SPLIT_IDS.get(split, 3)
  examples = []
  for si, song in enumerate(songs):
    for w, start in enumerate(_eval_starts(song, length, count, silence_db)):
      examples.append((song, start, [_EVAL, split_id, si, w]))
  if not examples:
    return []
  maker = _Maker(config, workdir)
  equalise = maker.timbre.equalises_evaluation
  if equalise:
    check_timbre(songs)

  def build(j: int) -> dict:
    chunk = examples[j * global_bsz:(j + 1) * global_bsz]
    real = chunk[process_index * bsz:(process_index + 1) * bsz]
    # Padding repeats a real example: an all-zero target would make the
    # spectral-convergence loss NaN, and NaN * 0 still poisons a masked mean.
    padded = real + [chunk[0]] * (bsz - len(real))
    picks = [(song, start, np.random.default_rng(seed + key)) for song, start, key in padded]
    batch = maker.batch(picks, length, equalise=equalise)
    batch['example_mask'] = np.arange(bsz) < len(real)
    batch['song_id'] = [s.song_id for s, _, _ in real] + [''] * (bsz - len(real))
    return batch

  # Each batch depends on its index only: the same list, built in parallel.
  return prefetch.map_ordered(build, -(-len(examples) // global_bsz), num_workers(config))
