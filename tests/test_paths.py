"""Tests for alm_jax/paths.py: local paths become absolute, bucket URLs stay as given."""

import os
import pathlib

from etils import epath

from alm_jax import paths


def test_urls_are_kept():
  for url in ('gs://bucket/runs/mr', 's3://b/x', 'gs://bucket'):
    assert paths.is_url(url)
    p = paths.as_path(url)
    assert isinstance(p, epath.Path) and str(p) == url
    assert str(p / 'checkpoints' / '3') == f'{url}/checkpoints/3'
  assert str(paths.as_path(epath.Path('gs://bucket/run'))) == 'gs://bucket/run'


def test_local_paths_become_absolute(tmp_path, monkeypatch):
  monkeypatch.chdir(tmp_path)
  assert not paths.is_url('run') and not paths.is_url('/abs/run') and not paths.is_url('c:/x')
  assert str(paths.as_path('run/../run/a')) == os.path.join(os.getcwd(), 'run', 'a')
  assert str(paths.as_path('~/run')) == os.path.expanduser('~/run')
  p = paths.as_path(pathlib.Path(tmp_path) / 'x')
  assert isinstance(p, epath.Path) and str(p) == os.path.abspath(tmp_path / 'x')
  (p / 'f.txt').parent.mkdir(parents=True)
  (p / 'f.txt').write_text('ok')
  assert (tmp_path / 'x' / 'f.txt').read_text() == 'ok'
