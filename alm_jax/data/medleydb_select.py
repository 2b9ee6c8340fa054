"""Which MedleyDB songs a build uses, and in which split (used by alm_jax.data.medleydb).

The default is the hash rule of medleydb_splits.json (docs/data.md, "MedleyDB");
`read_split_file` reads a user's JSON of track ids per split instead
(config.data.split_file). HAS_BLEED lists the values of config.data.has_bleed.
"""

import functools
import hashlib
import json
import os

SPLITS_FILE = os.path.join(os.path.dirname(__file__), 'medleydb_splits.json')
SPLITS = ('train', 'validation', 'test')
HAS_BLEED = ('any', 'yes', 'no')


class MedleyDBError(ValueError):
  """A song or the manual download is unusable; the message names the file and the fix."""


def _read_bytes(path: str) -> bytes:
  try:
    with open(path, 'rb') as f:
      return f.read()
  except OSError as e:
    raise MedleyDBError(f'Cannot read config.data.split_file {path}: {e}.') from e


# ---- splits ---------------------------------------------------------------------


def hash_fraction(song_id: str) -> float:
  """u in [0, 1): the first 8 bytes of sha256('medleydb-split:' + id) over 2^64."""
  digest = hashlib.sha256(f'medleydb-split:{song_id}'.encode()).digest()
  return int.from_bytes(digest[:8], 'big') / 2.0 ** 64


@functools.lru_cache(maxsize=1)
def _split_file() -> dict:
  with open(SPLITS_FILE) as f:
    return json.load(f)


def split_of(song_id: str) -> str:
  """The split of a song id by the hash rule (see module docstring)."""
  lo, hi = _split_file()['edges']
  u = hash_fraction(song_id)
  return SPLITS[0] if u < lo else SPLITS[1] if u < hi else SPLITS[2]


@functools.lru_cache(maxsize=1)
def listed_splits() -> dict[str, str]:
  """song id -> split, from medleydb_splits.json."""
  splits = _split_file()['splits']
  return {song: split for split in SPLITS for song in splits[split]}


def assign_split(song_id: str) -> str:
  return listed_splits().get(song_id) or split_of(song_id)


def read_split_file(path: str) -> dict[str, str]:
  """song id -> split from a JSON {"train": [ids], "validation": [ids], "test": [ids]}.

  Any of the three keys may be absent; an id listed twice, another key, or a
  non-list raises MedleyDBError naming it.
  """
  try:
    spec = json.loads(_read_bytes(path))
  except ValueError as e:
    raise MedleyDBError(f'config.data.split_file {path} is not valid JSON: {e}.') from e
  if not isinstance(spec, dict) or set(spec) - set(SPLITS):
    raise MedleyDBError(f'config.data.split_file {path} must be a JSON object with keys among '
                        f'{list(SPLITS)}, got '
                        f'{sorted(spec) if isinstance(spec, dict) else spec!r}.')
  out = {}
  for split, ids in spec.items():
    if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
      raise MedleyDBError(f'config.data.split_file {path}: {split!r} must be a list of track ids.')
    for song_id in ids:
      if song_id in out:
        raise MedleyDBError(f'config.data.split_file {path} lists {song_id} in both '
                            f'{out[song_id]!r} and {split!r}; keep one.')
      out[song_id] = split
  return out
