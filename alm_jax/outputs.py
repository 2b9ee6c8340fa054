"""Writing results safely: check an output location before any work, write aside, rename into place.

Every command that writes files or folders (mix, export, evaluate, the
listening page, config.json, the RIR cache) goes through these helpers, so the
rules are written once: an output path that is a file, lies under a file, or
sits in a folder the user cannot write is refused with one line before any
work is done; a folder is written under a hidden `.tmp-*` name beside its
final place, given a normal folder's permissions (not mkdtemp's 0700) and
renamed into place, so a crash never leaves a half-written result under the
final name; and an existing folder is only replaced when the caller says it
may be (a previous output of the same tool, with `--overwrite`). Leftover
`.tmp-*` folders of a killed run are removed by the next run
(`clean_stale_temporaries`).
"""

import contextlib
import os
import pathlib
import shutil
import tempfile
import time
import uuid

from alm_jax import paths

TMP_PREFIX = '.tmp-'
OLD_PREFIX = '.old-'
# Leftovers younger than this may belong to a run still going in another process.
STALE_AFTER_S = 60.0


class OutputError(ValueError):
  """An output location that cannot or must not be written; the message names it and the fix."""


def _mode_for_folders() -> int:
  umask = os.umask(0)
  os.umask(umask)
  return 0o777 & ~umask


def check_writable(path, *, what: str = 'output') -> pathlib.Path:
  """Checks, before any work, that `path` can be created or written as a folder.

  Args:
    path: the folder to be written (it may not exist yet).
    what: how the message names it ('--output', ...).
  Returns:
    `path` as an absolute pathlib.Path.
  Raises:
    OutputError: `path` is a file, lies under a file, or its first existing
      folder is not writable by this user.
  """
  path = pathlib.Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
  if path.exists() and not path.is_dir():
    raise OutputError(f'{what} {path} is a file, not a folder: choose a folder path.')
  probe = path
  while not probe.exists():
    probe = probe.parent
  if not probe.is_dir():
    raise OutputError(f'{what} {path} lies under {probe}, which is a file, not a folder: '
                      'choose another path.')
  if not os.access(probe, os.W_OK | os.X_OK):
    raise OutputError(f'{what} {path}: {probe} is not writable by this user: choose a folder you '
                      'can write, or fix its permissions.')
  return path


def atomic_write_bytes(path, data: bytes):
  """Writes a file through a uniquely named temporary beside it and a rename.

  `path` may be local or a bucket URL (gs://...; etils.epath), as workdirs
  and caches are; a local file gets a normal file's permissions.
  """
  if paths.is_url(path):
    path = paths.as_path(path)
    tmp = path.parent / f'{TMP_PREFIX}{path.name}-{uuid.uuid4().hex}'
    try:
      tmp.write_bytes(data)
      tmp.replace(path)
    finally:
      if tmp.exists():
        tmp.unlink()
    return path
  path = pathlib.Path(path)
  fd, tmp = tempfile.mkstemp(prefix=f'{TMP_PREFIX}{path.name}-', dir=path.parent)
  try:
    with os.fdopen(fd, 'wb') as f:
      f.write(data)
    os.chmod(tmp, 0o666 & _mode_for_folders())
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.unlink(tmp)
  return path


def atomic_write_text(path, text: str):
  """`atomic_write_bytes` for UTF-8 text."""
  return atomic_write_bytes(path, text.encode('utf-8'))


@contextlib.contextmanager
def folder_written_aside(final, *, replace: bool = False):
  """Yields a fresh temporary folder beside `final`, renamed to `final` when the block succeeds.

  Args:
    final: the folder to produce.
    replace: whether an existing `final` may be replaced (the caller has
      checked that it is its own earlier output and the user asked for it).
      It is moved aside first and removed only once the new folder is in place.
  Raises:
    FileExistsError: `final` exists and `replace` is False.
  On an exception inside the block, the temporary folder is removed and
  `final` is left as it was.
  """
  final = pathlib.Path(final)
  final.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(prefix=f'{TMP_PREFIX}{final.name}-', dir=final.parent))
  try:
    os.chmod(tmp, _mode_for_folders())
    yield tmp
    if final.exists():
      if not replace:
        raise FileExistsError(f'{final} exists; pass --overwrite or choose another --output.')
      old = pathlib.Path(tempfile.mkdtemp(prefix=f'{OLD_PREFIX}{final.name}-', dir=final.parent))
      os.replace(final, old / final.name)
      os.replace(tmp, final)
      shutil.rmtree(old, ignore_errors=True)
    else:
      os.replace(tmp, final)
  finally:
    if tmp.exists():
      shutil.rmtree(tmp, ignore_errors=True)


def clean_stale_temporaries(folder, *, older_than_s: float = STALE_AFTER_S) -> list[pathlib.Path]:
  """Removes `.tmp-*` / `.old-*` entries a killed run left in `folder`; returns what was removed.

  Only entries older than `older_than_s` go: a younger one may belong to a
  run still writing into the same folder from another process.
  """
  folder = pathlib.Path(folder)
  if not folder.is_dir():
    return []
  removed = []
  now = time.time()
  for entry in folder.iterdir():
    if not entry.name.startswith((TMP_PREFIX, OLD_PREFIX)):
      continue
    try:
      if now - entry.lstat().st_mtime < older_than_s:
        continue
      if entry.is_dir() and not entry.is_symlink():
        shutil.rmtree(entry)
      else:
        entry.unlink()
      removed.append(entry)
    except OSError:
      continue  # another run got there first, or it is not ours to remove
  return removed
