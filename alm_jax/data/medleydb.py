"""`medleydb`: a tfds builder for a manual download of MedleyDB V1/V2.

`Medleydb(max_raw_tracks=8, has_bleed=..., split_file=..., on_error=..., resample=...)`
reads `<manual_dir>/Audio/<TrackId>/` (MANUAL_DOWNLOAD_INSTRUCTIONS), every file name from the
song's YAML, and writes the alm_jax.data.common features (raw tracks as int16 [channels,
samples], the mono mix, at 44.1 kHz); the input pipeline prepares it on first use from
config.data.manual_dir. Bad input raises MedleyDBError naming the file and the fix (or skips
the song); splits come from medleydb_splits.json's hash rule (`split_of`) or a split file.
Layout, bad input, the split rule and the selections: docs/data.md ("MedleyDB").
"""

import dataclasses
import hashlib
import os

from absl import logging
import numpy as np
import tensorflow_datasets as tfds
import yaml

from alm_jax import audio_io
from alm_jax.data import common
# The song selection (splits, split files, has_bleed values) and the error type, re-exported.
# pylint: disable=unused-import
from alm_jax.data.medleydb_select import (HAS_BLEED, SPLITS, SPLITS_FILE, MedleyDBError,
                                          _read_bytes, assign_split, hash_fraction, listed_splits,
                                          read_split_file, split_of)
# pylint: enable=unused-import


MANUAL_DOWNLOAD_INSTRUCTIONS = """\
MedleyDB cannot be downloaded by code. Request access to MedleyDB V1 and V2 at
https://medleydb.weebly.com/ (Zenodo records 1649325 and 1715175), download the
archives, and extract them into one folder, e.g. /data/MedleyDB, so that
    /data/MedleyDB/Audio/<TrackId>/<TrackId>_MIX.wav
    /data/MedleyDB/Audio/<TrackId>/<TrackId>_RAW/<TrackId>_RAW_01_01.wav ...
    /data/MedleyDB/Audio/<TrackId>/<TrackId>_METADATA.yaml
(V1 and V2 may instead be /data/MedleyDB/V1/Audio and /data/MedleyDB/V2/Audio).
If the YAML files are not inside the track folders, put them in
/data/MedleyDB/Metadata/ (they are also in the medleydb repository,
github.com/marl/medleydb, under medleydb/data/Metadata/). Then point
config.data.manual_dir (or tfds's --manual_dir) at /data/MedleyDB.
Without MedleyDB, train on data made on this machine: configs/quickstart.py
(synthetic_live, generated) or configs/rendered_mr.py (rendered_live, rendered
with FluidSynth and Debian soundfonts; docs/data.md).
"""


@dataclasses.dataclass
class MedleydbConfig(tfds.core.BuilderConfig):
  """Selects the songs: at most `max_raw_tracks` raw files, the `has_bleed` flag, a split file."""
  max_raw_tracks: int = 8
  has_bleed: str = 'any'
  split_file: str = ''


def config_for(max_raw_tracks: int = 8, has_bleed: str = 'any',
               split_file: str = '') -> MedleydbConfig:
  """The config 'max_raw_<n>[_bleed_<yes|no>][_split_<hash>]'.

  The split file's name holds the first 10 hex digits of its contents' sha256,
  so a changed file is prepared anew, not read from an older build.
  """
  if int(max_raw_tracks) < 1:
    raise ValueError(f'max_raw_tracks must be >= 1, got {max_raw_tracks}.')
  if has_bleed not in HAS_BLEED:
    raise ValueError(f'config.data.has_bleed must be one of {HAS_BLEED}, got {has_bleed!r}.')
  name = f'max_raw_{int(max_raw_tracks)}'
  description = f'Songs with at most {int(max_raw_tracks)} raw tracks'
  if has_bleed != 'any':
    name += f'_bleed_{has_bleed}'
    description += f', has_bleed: {has_bleed}'
  if split_file:
    name += '_split_' + hashlib.sha256(_read_bytes(split_file)).hexdigest()[:10]
    description += f', splits from {split_file}'
  return MedleydbConfig(name=name, description=description + '.',
                        max_raw_tracks=int(max_raw_tracks), has_bleed=has_bleed,
                        split_file=str(split_file))


# ---- finding and checking songs ------------------------------------------------------


def _subdirs(path):
  return sorted(e.path for e in os.scandir(path) if e.is_dir() and not e.name.startswith('.'))


def find_songs(manual_dir: str) -> dict[str, tuple[str, str | None]]:
  """TrackId -> (song folder, metadata YAML path or None) for every song under manual_dir."""
  if not os.path.isdir(manual_dir):
    raise MedleyDBError(f'The MedleyDB manual dir {manual_dir} does not exist.\n'
                        + MANUAL_DOWNLOAD_INSTRUCTIONS)
  roots = [manual_dir] + _subdirs(manual_dir)
  audio_roots = [os.path.join(r, 'Audio') for r in roots if os.path.isdir(os.path.join(r, 'Audio'))]
  meta_roots = [os.path.join(r, 'Metadata') for r in roots
                if os.path.isdir(os.path.join(r, 'Metadata'))]
  if not audio_roots:
    raise MedleyDBError(f'No Audio/ folder in the MedleyDB manual dir {manual_dir} (nor one level '
                        'below it).\n' + MANUAL_DOWNLOAD_INSTRUCTIONS)
  songs = {}
  for root in audio_roots:
    for song_dir in _subdirs(root):
      song_id = os.path.basename(song_dir)
      if song_id in songs:
        raise MedleyDBError(f'Song {song_id} appears twice: {songs[song_id][0]} and {song_dir}. '
                            'Keep one copy.')
      candidates = [os.path.join(song_dir, f'{song_id}_METADATA.yaml')]
      candidates += [os.path.join(m, f'{song_id}_METADATA.yaml') for m in meta_roots]
      songs[song_id] = (song_dir, next((c for c in candidates if os.path.isfile(c)), None))
  return songs


def read_metadata(song_id: str, yaml_path: str | None) -> dict:
  if yaml_path is None:
    raise MedleyDBError(f'No metadata for song {song_id}: expected {song_id}_METADATA.yaml in its '
                        'track folder or in a Metadata/ folder. Copy it from the MedleyDB '
                        'download or from github.com/marl/medleydb (medleydb/data/Metadata/).')
  try:
    with open(yaml_path) as f:
      meta = yaml.safe_load(f)
  except (OSError, yaml.YAMLError) as e:
    raise MedleyDBError(f'Cannot parse {yaml_path}: {e}. Restore the file from the MedleyDB '
                        'download.') from e
  if not isinstance(meta, dict):
    raise MedleyDBError(f'{yaml_path} is not a MedleyDB metadata mapping; restore it from the '
                        'MedleyDB download.')
  return meta


def _yes(value) -> bool:
  # The YAML quotes 'yes'/'no', but an unquoted yes parses as a YAML 1.1 bool.
  if isinstance(value, bool):
    return value
  return str(value).strip().lower() in ('yes', 'true', '1')


def _instrument(value) -> str:
  if isinstance(value, (list, tuple)):
    return '/'.join(str(v) for v in value)
  return '' if value is None else str(value)


def raw_tracks(song_id: str, meta: dict, yaml_path: str) -> list[tuple[str, str]]:
  """[(raw file name, instrument)] in stem-key, raw-key order, names from the YAML."""
  stems = meta.get('stems') or {}
  if not isinstance(stems, dict):
    raise MedleyDBError(f'{yaml_path}: `stems` is not a mapping; restore the file.')
  tracks = []
  for stem_key in sorted(stems):
    raws = (stems[stem_key] or {}).get('raw') or {}
    for raw_key in sorted(raws):
      entry = raws[raw_key] or {}
      name = entry.get('filename')
      if not name:
        raise MedleyDBError(f'{yaml_path}: stems.{stem_key}.raw.{raw_key} has no filename; '
                            'restore the file.')
      tracks.append((str(name), _instrument(entry.get('instrument'))))
  return tracks


def _require(meta, key, yaml_path):
  value = meta.get(key)
  if not value:
    raise MedleyDBError(f'{yaml_path} has no `{key}`; restore the file from the MedleyDB download.')
  return str(value)


def _read_mono(path: str, resample: bool) -> np.ndarray:
  try:
    audio, _ = audio_io.read_audio(path, common.SAMPLE_RATE,
                                   on_rate_mismatch='resample' if resample else 'error')
  except (OSError, ValueError) as e:
    raise MedleyDBError(str(e)) from e
  return audio_io.to_mono(audio)


def load_song(song_id: str, song_dir: str, yaml_path: str | None, max_raw_tracks: int = 8,
              resample: bool = True) -> dict | None:
  """One example dict (common.features), or None when the song has too many raw tracks."""
  meta = read_metadata(song_id, yaml_path)
  tracks = raw_tracks(song_id, meta, yaml_path)
  if not tracks:
    raise MedleyDBError(f'Song {song_id} has zero raw tracks in {yaml_path}; nothing to mix. '
                        'Remove the song or restore its metadata.')
  if len(tracks) > max_raw_tracks:
    logging.info('medleydb: skipping %s (%d raw tracks > max_raw_tracks=%d).', song_id,
                 len(tracks), max_raw_tracks)
    return None
  raw_dir = os.path.join(song_dir, _require(meta, 'raw_dir', yaml_path))
  if not os.path.isdir(raw_dir):
    raise MedleyDBError(f'Raw folder {raw_dir} (raw_dir in {yaml_path}) is missing; extract the '
                        'song completely.')
  listed = [name for name, _ in tracks]
  if len(set(listed)) != len(listed):
    raise MedleyDBError(f'{yaml_path} lists a raw file twice; restore the file.')
  on_disk = {n for n in os.listdir(raw_dir)
             if not n.startswith('.') and n.lower().endswith(('.wav', '.flac', '.aif', '.aiff'))}
  missing = sorted(set(listed) - on_disk)
  extra = sorted(on_disk - set(listed))
  if missing:
    raise MedleyDBError(f'Song {song_id}: raw files listed in {yaml_path} are missing from '
                        f'{raw_dir}: {missing}. Extract the song completely.')
  if extra:
    raise MedleyDBError(f'Song {song_id}: {raw_dir} holds raw files not listed in {yaml_path}: '
                        f'{extra}. Remove them or restore the metadata, so no track is mixed in '
                        'unnoticed.')
  raws, scales, lengths = [], [], {}
  for name in listed:
    path = os.path.join(raw_dir, name)
    x = _read_mono(path, resample)
    q, s = common.quantize(x)
    raws.append(q)
    scales.append(s)
    lengths[name] = x.shape[-1]
  if len(set(lengths.values())) > 1:
    raise MedleyDBError(f'Song {song_id}: raw tracks in {raw_dir} have unequal lengths '
                        f'{lengths}; re-export them from one session so they stay aligned.')
  mix_path = os.path.join(song_dir, _require(meta, 'mix_filename', yaml_path))
  mix = _read_mono(mix_path, resample)
  n = next(iter(lengths.values()))
  if mix.shape[-1] != n:
    raise MedleyDBError(f'Song {song_id}: the mix {mix_path} has {mix.shape[-1]} samples but the '
                        f'raw tracks have {n}; the mix must be aligned with its raw tracks.')
  mix_q, mix_scale = common.quantize(mix)
  return {
      'song_id': song_id,
      'raw': np.stack(raws),
      'raw_scale': np.asarray(scales, np.float32),
      'mix': mix_q,
      'mix_scale': np.float32(mix_scale),
      'instruments': [inst for _, inst in tracks],
      'raw_files': listed,
      'has_bleed': _yes(meta.get('has_bleed', 'no')),
      'sample_rate': common.SAMPLE_RATE,
      'genre': str(meta.get('genre') or ''),
  }


# ---- the builder -------------------------------------------------------------------


class Medleydb(tfds.core.GeneratorBasedBuilder):
  """MedleyDB V1/V2 multitracks with their human mixes, from a manual download."""

  VERSION = tfds.core.Version('1.0.0')
  RELEASE_NOTES = {'1.0.0': 'Initial release.'}
  MANUAL_DOWNLOAD_INSTRUCTIONS = MANUAL_DOWNLOAD_INSTRUCTIONS
  BUILDER_CONFIGS = [config_for(8)]
  DEFAULT_CONFIG_NAME = 'max_raw_8'

  def __init__(self, *, max_raw_tracks: int | None = None, on_error: str = 'raise',
               resample: bool = True, has_bleed: str = 'any', split_file: str = '',
               config=None, **kwargs):
    """As any tfds builder, plus:

    Args:
      max_raw_tracks: builds the config from it, `has_bleed` and `split_file`
        (see config_for; instead of `config`).
      has_bleed: 'any', or keep only songs whose YAML has_bleed is 'yes' / 'no'.
      split_file: a JSON of track ids per split (read_split_file); '' = the hash
        split of medleydb_splits.json. Songs not in the file are left out.
      on_error: 'raise' a MedleyDBError on a bad song, or 'skip' it with a warning.
      resample: resample files not at 44.1 kHz (else they are bad input).
    """
    if on_error not in ('raise', 'skip'):
      raise ValueError(f"on_error must be 'raise' or 'skip', got {on_error!r}.")
    if max_raw_tracks is not None:
      if config is not None:
        raise ValueError('Give either `config` or `max_raw_tracks`, not both.')
      config = config_for(max_raw_tracks, has_bleed, split_file)
      # tfds refuses a new config object named like a predefined one: use that one.
      config = next((c for c in self.BUILDER_CONFIGS if c.name == config.name), config)
    self._on_error = on_error
    self._resample = bool(resample)
    super().__init__(config=config, **kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description='MedleyDB V1/V2 raw multitracks and mono mixes (see alm_jax.data.medleydb).',
        features=common.features(),
        homepage='https://medleydb.weebly.com/',
    )

  def _split_generators(self, dl_manager):
    try:
      manual_dir = os.fspath(dl_manager.manual_dir)
    except AssertionError as e:  # tfds' own check: missing or empty manual dir
      raise MedleyDBError(f'MedleyDB manual dir missing or empty ({e}).\n'
                          + MANUAL_DOWNLOAD_INSTRUCTIONS) from e
    songs = find_songs(manual_dir)
    if not songs:
      raise MedleyDBError(f'No song folders under the Audio/ folder(s) of {manual_dir}.\n'
                          + MANUAL_DOWNLOAD_INSTRUCTIONS)
    # Count raw tracks from the YAML first (cheap): tfds refuses empty splits, so
    # a split whose songs are all filtered out must not be declared at all.
    cfg = self.builder_config
    limit, bleed = cfg.max_raw_tracks, cfg.has_bleed
    chosen = read_split_file(cfg.split_file) if cfg.split_file else None
    if chosen is not None:
      unknown = sorted(set(chosen) - set(songs))
      if unknown:
        raise MedleyDBError(f'config.data.split_file {cfg.split_file} names track ids not found '
                            f'under {manual_dir}: {unknown}. Fix the ids (e.g. '
                            "'AimeeNorwich_Child') or add those songs to the manual dir.")
    by_split = {s: [] for s in SPLITS}
    counts = {'found': len(songs), 'too_many_raw': 0, 'bleed_filtered': 0, 'not_in_split_file': 0}
    for song_id in sorted(songs):
      song_dir, yaml_path = songs[song_id]
      if chosen is not None and song_id not in chosen:
        counts['not_in_split_file'] += 1
        continue
      try:
        meta = read_metadata(song_id, yaml_path)
        count = len(raw_tracks(song_id, meta, yaml_path))
      except MedleyDBError as e:
        if self._on_error != 'skip':
          raise
        logging.warning('medleydb: skipping song %s: %s', song_id, e)
        continue
      if count > limit:
        counts['too_many_raw'] += 1
      elif bleed != 'any' and _yes(meta.get('has_bleed', 'no')) != (bleed == 'yes'):
        counts['bleed_filtered'] += 1
      else:
        split = chosen[song_id] if chosen is not None else assign_split(song_id)
        by_split[split].append((song_id, song_dir, yaml_path))
    logging.info('medleydb: kept %s songs (<= %d raw tracks, has_bleed %s, splits from %s); '
                 'left out: %s.', {s: len(v) for s, v in by_split.items()}, limit, bleed,
                 cfg.split_file or 'the hash rule', counts)
    if not any(by_split.values()):
      raise MedleyDBError(f'No song under {manual_dir} has at most {limit} raw tracks with '
                          f'has_bleed {bleed!r} (left out: {counts}); raise max_raw_tracks '
                          '(config.data.max_raw_tracks) or set config.data.has_bleed to any.')
    return {s: self._generate_examples(s, v) for s, v in by_split.items() if v}

  def _generate_examples(self, split, songs):
    limit = self.builder_config.max_raw_tracks
    yielded = 0
    for song_id, song_dir, yaml_path in songs:
      try:
        example = load_song(song_id, song_dir, yaml_path, limit, self._resample)
      except MedleyDBError as e:
        if self._on_error != 'skip':
          raise
        logging.warning('medleydb: skipping song %s: %s', song_id, e)
        continue
      if example is not None:
        yielded += 1
        yield song_id, example
    if not yielded:
      raise MedleyDBError(f'Every song of the {split!r} split was skipped as bad input (see the '
                          'warnings above); fix those songs, or remove them from the manual dir.')
