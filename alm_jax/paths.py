"""Workdir and cache paths that may be local folders or bucket URLs (gs://, s3://, ...).

Everything the trainer writes under its workdir (config.json, checkpoints,
TensorBoard events, the RIR bank cache) goes through `etils.epath.Path`, so
`--workdir=gs://bucket/run` works without a gcsfuse mount: epath reads and
writes gs:// through TensorFlow's gfile (or fsspec/gcsfs), local paths through
the os module.
"""

import os
import re

from etils import epath

_URL = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*://')


def is_url(path) -> bool:
  """Whether `path` names a remote file system (gs://, s3://, ...) rather than a local path."""
  return bool(_URL.match(os.fspath(path)))


def as_path(path) -> epath.Path:
  """`path` (str, pathlib or epath) as an epath.Path; a local one made absolute, '~' expanded.

  URLs are kept as given: os.path.abspath('gs://b/run') would be
  '<cwd>/gs:/b/run'. Local paths get exactly os.path.abspath's treatment (no
  symlink resolution), as before paths could be URLs.
  """
  if is_url(path):
    return epath.Path(path)
  return epath.Path(os.path.abspath(os.path.expanduser(os.fspath(path))))
