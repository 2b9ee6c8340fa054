"""The datasets `config.data.name` may name, each declaring what it needs: one entry per dataset.

An entry says how its tfds builder is made from `config.data` (the generated
datasets are registered tfds builders, named as in the config), whether
preparing it reads a manual download (`config.data.manual_dir`) and what to tell
a user who has not given one, and which of its errors are the user's to fix
(`alm_jax.main` prints them as one line). The input pipeline asks the entry and
never branches on a dataset's name; a new dataset is its builder module and one
line in `DATASETS` (docs/architecture.md).
"""

import dataclasses
from typing import Any, Callable

import tensorflow_datasets as tfds

from alm_jax.data import medleydb
from alm_jax.data import rendered
from alm_jax.data import synthetic


@dataclasses.dataclass(frozen=True)
class Dataset:
  """What a dataset needs.

  Attributes:
    name: config.data.name (before any '/config' suffix).
    builder: (config.data, data_dir or None) -> its tfds builder; None: the
      registered tfds builder `config.data.name` (config suffix included).
    manual_download: preparing it reads `config.data.manual_dir`; `missing_manual`
      is the message when that is empty (the folder to give and where to get it;
      `{data_dir}` is where it was looked for).
    user_errors: exception types of its builder that mean the user's data is
      missing or broken (one line, never a traceback).
  """
  name: str
  builder: Callable[[Any, str | None], Any] | None = None
  manual_download: bool = False
  missing_manual: str = ''
  user_errors: tuple[type[Exception], ...] = ()


def _medleydb_builder(data_config, data_dir):
  return medleydb.Medleydb(data_dir=data_dir, max_raw_tracks=int(data_config.max_raw_tracks),
                           on_error=str(data_config.get('on_error', 'raise')),
                           resample=bool(data_config.get('resample', True)),
                           has_bleed=str(data_config.get('has_bleed', 'any')),
                           split_file=str(data_config.get('split_file', '')))


# One line per dataset.
DATASETS: dict[str, Dataset] = {d.name: d for d in (
    Dataset(synthetic.SyntheticLive.name),
    Dataset(rendered.RenderedLive.name),
    Dataset('medleydb', _medleydb_builder, manual_download=True,
            missing_manual=('MedleyDB is not prepared in {data_dir}. Set config.data.manual_dir to '
                            'the folder holding its Audio/ folder (it is read once), or '
                            'config.data.data_dir to where it was prepared.\n' +
                            medleydb.MANUAL_DOWNLOAD_INSTRUCTIONS.replace('{', '{{').replace(
                                '}', '}}')),
            user_errors=(medleydb.MedleyDBError,)),
)}

# Every dataset's user-fixable errors, for the training CLI's one-line report.
USER_ERRORS: tuple[type[Exception], ...] = tuple(
    error for d in DATASETS.values() for error in d.user_errors)


def get(config) -> Dataset:
  """The entry of config.data.name; a name not listed is a registered tfds builder's."""
  name = str(config.data.name).split('/')[0]
  return DATASETS.get(name, Dataset(name))


def builder(config):
  """The tfds builder named by config.data.name (not necessarily prepared)."""
  name = str(config.data.name)
  data_dir = str(config.data.data_dir) or None
  entry = get(config)
  if entry.builder is not None:
    return entry.builder(config.data, data_dir)
  try:
    return tfds.builder(name, data_dir=data_dir)
  except tfds.core.registered.DatasetNotFoundError as e:
    raise ValueError(f'Unknown dataset config.data.name={name!r}: use one of {sorted(DATASETS)} '
                     '(alm_jax/data/datasets.py), or a registered tfds builder with the features '
                     'of alm_jax.data.common.') from e
