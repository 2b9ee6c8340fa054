"""Tests for alm_jax/data/datasets.py: one entry per dataset, asked by the pipeline, never a name branch."""

import ml_collections
import pytest

from alm_jax.data import datasets
from alm_jax.data import medleydb
from alm_jax.data import pipeline


def data_config(name, **fields):
  return ml_collections.ConfigDict({'data': {'name': name, 'data_dir': '', 'manual_dir': '',
                                             'max_raw_tracks': 8, **fields}})


def test_every_dataset_is_one_entry():
  assert set(datasets.DATASETS) == {'synthetic_live', 'rendered_live', 'medleydb'}
  assert datasets.get(data_config('synthetic_live/tiny')).name == 'synthetic_live'
  assert medleydb.MedleyDBError in datasets.USER_ERRORS


def test_builders_come_from_the_entries(tmp_path):
  tiny = datasets.builder(data_config('synthetic_live/tiny', data_dir=str(tmp_path)))
  assert tiny.name == 'synthetic_live' and tiny.builder_config.name == 'tiny'
  mdb = datasets.builder(data_config('medleydb', data_dir=str(tmp_path), max_raw_tracks=3))
  assert isinstance(mdb, medleydb.Medleydb) and mdb.builder_config.name.startswith('max_raw_3')


def test_unknown_dataset_names_the_registry():
  with pytest.raises(ValueError, match=r"Unknown dataset.*'medleydb'.*datasets\.py"):
    datasets.builder(data_config('no_such_dataset'))


def test_a_manual_download_without_manual_dir_says_what_to_give(tmp_path):
  config = data_config('medleydb', data_dir=str(tmp_path))
  with pytest.raises(medleydb.MedleyDBError, match=f'MedleyDB is not prepared in {tmp_path}.*'
                     'config.data.manual_dir'):
    pipeline.prepared_builder(config)
