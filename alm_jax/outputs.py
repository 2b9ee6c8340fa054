"""Writing results safely: check an output location before any work, write aside, rename into place.

Every command that writes files or folders (mix, export, evaluate, the
listening page, config.json, the RIR cache) goes through these helpers, so the
rules are written once: an output path that is a file, lies under a file, or
sits in a folder the user cannot write is refused with one line before any
work is done; a folder is written under a hidden `.tmp-*` name beside its
final place, given a normal folder's permissions (not mkdtemp's 0700) and
renamed into place, so a crash never leaves a half-written result under the
final name. What the user had is never destroyed: a folder a command writes
holds its tool's marker file (`write_marker`), and an existing folder is
replaced only when it is empty or holds that marker and the user passed
`--overwrite` (`check_replaceable`, enforced again at the rename); an output
that equals, contains or lies inside an input is refused
(`check_apart_from_inputs`), so no command writes into its own inputs.
Leftover `.tmp-*` folders of a killed run are removed by the next run
(`clean_stale_temporaries`).
"""

import contextlib
import errno
import json
import logging as std_logging
import os
import pathlib
import re
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


def check_workdir(path, *, what: str = '--workdir') -> None:
  """Checks, before any work, that a local folder can be created at `path` and written into.

  Beyond `check_writable`, it really creates the folder and a file in it
  (then removes what it created): /proc, /sys and read-only mounts accept
  os.access's question but refuse the write. Bucket URLs are left to their
  file system.

  Raises:
    OutputError: naming the path and the fix.
  """
  if paths.is_url(path):
    return
  folder = check_writable(path, what=what)
  created = []
  probe = folder
  while not probe.exists():
    created.append(probe)
    probe = probe.parent
  try:
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=TMP_PREFIX, dir=folder)
    os.close(fd)
    os.unlink(name)
  except OSError as e:
    raise OutputError(f'{what} {folder} cannot be written ({e.strerror or e}): choose a folder on '
                      'a writable disk you own, e.g. under your home folder.') from e
  finally:
    for made in created:  # deepest first; only what this check made, and only if still empty
      try:
        made.rmdir()
      except OSError:
        break


def disk_full(error: BaseException) -> OSError | None:
  """The OSError(ENOSPC or EDQUOT) behind `error` (itself, its causes or contexts), else None."""
  seen = set()
  stack = [error]
  while stack:
    e = stack.pop()
    if e is None or id(e) in seen:
      continue
    seen.add(id(e))
    if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
      return e
    # TensorStore (the checkpoint library's writer) raises ValueError('RESOURCE_EXHAUSTED: ...
    # Failed writing: "PATH" ...: No space left on device [os_error_code=28]').
    text = str(e)
    if _NO_SPACE.search(text):
      paths_named = _QUOTED_PATH.findall(text)
      return OSError(errno.ENOSPC, 'No space left on device', paths_named[-1] if paths_named else None)
    stack += [e.__cause__, e.__context__, *getattr(e, 'exceptions', ())]
  return None


_NO_SPACE = re.compile(r"No space left on device|os_error_code='?28\b|Disk quota exceeded")
_QUOTED_PATH = re.compile(r'"(/[^"]+)"')


class DiskFullLogFilter(std_logging.Filter):
  """Drops log records that report a full disk (a checkpoint library's threads log one per array).

  Installed on the console handlers for a run, it keeps the console to the one
  `error:` line the command prints; `seen` keeps the first such error, so the
  command can say it even when the failing writer ran in a background thread.
  """

  def __init__(self):
    super().__init__()
    self.seen: OSError | None = None

  def filter(self, record):
    text = record.getMessage()
    if record.exc_info and record.exc_info[1] is not None:
      text += ' ' + str(record.exc_info[1])
    if not _NO_SPACE.search(text):
      return True
    if self.seen is None:
      named = _QUOTED_PATH.findall(text)
      self.seen = OSError(errno.ENOSPC, 'No space left on device', named[-1] if named else None)
    return False

  def install(self) -> 'DiskFullLogFilter':
    """Adds the filter to every handler of the root logger (absl's and asyncio's output)."""
    for handler in std_logging.getLogger().handlers:
      handler.addFilter(self)
    return self


def disk_full_message(error: OSError, folder, *, what: str = '--workdir',
                      after: str = 'Nothing incomplete is used: a run resumes from the last '
                                   'complete checkpoint.', name_file: bool = True) -> str:
  """One line for a full disk while writing under `folder`: the path, the free space, what to do.

  `name_file`: name the file being written (else `folder`, when that file is a hidden temporary).
  """
  where = (error.filename if name_file else None) or folder
  probe = pathlib.Path(os.path.abspath(os.fspath(where)))
  while not probe.exists() and probe != probe.parent:
    probe = probe.parent
  try:
    free = shutil.disk_usage(probe).free / 1e9
    free_text = f'{free:.2f} GB free now'
  except OSError:
    free_text = 'free space unknown'
  return (f'no space left on the disk holding {where} ({free_text}): free space there (or choose '
          f'another {what}) and rerun the same command. {after}')


def _real(path) -> pathlib.Path:
  return pathlib.Path(os.path.realpath(os.path.abspath(os.path.expanduser(os.fspath(path)))))


def check_apart_from_inputs(output, inputs, *, what: str = '--output') -> None:
  """Refuses an output that equals, contains or lies inside one of `inputs` (files or folders).

  Symbolic links are resolved, so a link to an input folder is that folder.
  Writing there could replace, delete or mix into the inputs (a song folder
  written over its own channel files), so it is refused before any work.

  Raises:
    OutputError: naming the input and the fix.
  """
  out = _real(output)
  for given in inputs:
    inp = _real(given)
    if out == inp:
      relation = 'is the input'
    elif out in inp.parents:
      relation = 'contains the input'
    elif inp in out.parents:
      relation = 'lies inside the input'
    else:
      continue
    outside = inp.parent if inp.is_file() else inp
    raise OutputError(f'{what} {out} {relation} {inp}: a command never writes into its inputs. '
                      f'Choose {what} outside it, e.g. {outside.parent / (outside.name + "-out")}.')


def write_marker(folder, marker: str, description: dict) -> pathlib.Path:
  """Writes the marker file `marker` (JSON `description`) that makes `folder` this tool's output."""
  path = pathlib.Path(folder) / marker
  path.write_text(json.dumps(description, indent=2, sort_keys=True), encoding='utf-8')
  return path


def check_replaceable(folder, marker: str, *, overwrite: bool, what: str = '--output',
                      tool: str = 'this tool') -> bool:
  """Whether `folder` exists and may be replaced; refuses what must not be.

  The one rule of every command that writes folders: a folder that does not
  exist is created; an empty folder may be replaced (nothing in it is lost);
  a folder holding `marker` (an earlier output of the same tool) is replaced
  only with `overwrite`; any other folder is never replaced, whatever
  `overwrite` says: the tool did not create it.

  Returns:
    True when `folder` exists (the caller replaces it), False when it does not.
  Raises:
    OutputError: naming the folder and the fix.
  """
  folder = pathlib.Path(folder)
  if not folder.exists() and not folder.is_symlink():
    return False
  if folder.is_symlink() or not folder.is_dir():
    raise OutputError(f'{what} {folder} exists and is not a folder {tool} wrote: it is left alone. '
                      'Choose another path, or move it away.')
  if not any(folder.iterdir()):
    return True
  if not (folder / marker).is_file():
    raise OutputError(
        f'{what} {folder} exists and was not written by {tool} (it holds no {marker}): it is '
        'never replaced, even with --overwrite. Choose another path, or move that folder away.')
  if not overwrite:
    raise OutputError(f'{what} {folder} holds an earlier output of {tool}: pass --overwrite to '
                      'replace it, or choose another path.')
  return True


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
def folder_written_aside(final, *, replace: bool = False, marker: str | None = None,
                         description: dict | None = None):
  """Yields a fresh temporary folder beside `final`, renamed to `final` when the block succeeds.

  Args:
    final: the folder to produce.
    replace: whether an existing `final` may be replaced (the caller has
      checked that it is its own earlier output and the user asked for it).
      It is moved aside first and removed only once the new folder is in place.
    marker: the tool's marker file name: written into the new folder (with
      `description`), and an existing `final` is replaced only when it is
      empty or holds it (checked again here, at the rename).
  Raises:
    FileExistsError: `final` exists and `replace` is False.
    OutputError: `final` exists, is not empty and holds no `marker`.
  On an exception inside the block, the temporary folder is removed and
  `final` is left as it was.
  """
  final = pathlib.Path(final)
  final.parent.mkdir(parents=True, exist_ok=True)
  tmp = pathlib.Path(tempfile.mkdtemp(prefix=f'{TMP_PREFIX}{final.name}-', dir=final.parent))
  try:
    os.chmod(tmp, _mode_for_folders())
    yield tmp
    if marker is not None:
      write_marker(tmp, marker, description or {})
    if final.exists() or final.is_symlink():
      if not replace:
        raise FileExistsError(f'{final} exists; pass --overwrite or choose another --output.')
      if marker is not None:
        check_replaceable(final, marker, overwrite=True, what='output folder')
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
