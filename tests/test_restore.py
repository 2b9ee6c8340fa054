"""Tests for alm_jax/restore.py: every --checkpoint form to one LoadedMixer, and damaged array data.

A checkpoint whose array data file is empty, truncated or garbage must end the
mix, export and evaluate commands with one `error:` line naming the step and
the fix, whatever orbax and TensorStore log while they fail to read it (issue
29 item 8: thousands of lines of asyncio/TensorStore tracebacks before).
"""

import glob
import pathlib
import shutil

import jax
import numpy as np
import pytest

from alm_jax import checkpoints
from alm_jax import evaluate
from alm_jax import export
from alm_jax import mix
from alm_jax import models
from alm_jax import restore
from checkpoint_fixtures import TinyModel, parse_flags, save_checkpoint, write_song

REPO = pathlib.Path(__file__).resolve().parent.parent
SR = 44100


@pytest.fixture(scope='module')
def tiny():
  return TinyModel('mr')


@pytest.fixture(scope='module')
def workdir(tiny, tmp_path_factory):
  path = tmp_path_factory.mktemp('restore') / 'run'
  save_checkpoint(path, tiny.config, tiny.params, step=3)
  return path


@pytest.fixture(scope='module')
def song(tmp_path_factory):
  return write_song(tmp_path_factory.mktemp('songs') / 'song', 1.0, SR)


def test_every_checkpoint_form_gives_one_loaded_mixer(tiny, workdir):
  step_dir = workdir / 'checkpoints' / '3'
  for path in (workdir, step_dir, str(workdir / 'checkpoints')):
    loaded = restore.load_mixer(path)
    assert isinstance(loaded, models.protocol.LoadedMixer) and loaded.step == 3
    assert loaded.capabilities == models.build_mixer(tiny.config).capabilities
    assert jax.tree.map(np.shape, loaded.params) == jax.tree.map(np.shape, tiny.params)
    assert loaded.source == str(path)
  dugan = restore.load_mixer(str(REPO / 'configs' / 'dugan.py'))
  assert dugan.params == {} and dugan.step == 0 and not dugan.capabilities.trainable
  shipped = restore.load_mixer('pretrained:alm_mr')
  assert shipped.step > 0 and shipped.capabilities.trainable


def test_unknown_pretrained_name_lists_those_installed():
  with pytest.raises(checkpoints.CheckpointError, match='pretrained:alm_mr'):
    restore.restore_params('pretrained:no_such_mixer')


def test_checkpoint_io_takes_the_abstract_tree(tiny, workdir):
  """checkpoints.load_params_from_path knows no names: the caller gives the abstract tree."""
  params, step = checkpoints.load_params_from_path(workdir, models.abstract_params(tiny.config))
  assert step == 3
  np.testing.assert_array_equal(jax.tree.leaves(params)[0], jax.tree.leaves(tiny.params)[0])


def _damage(step_dir: pathlib.Path, kind: str):
  """Every array data file of the params item made empty, truncated to a third, or random bytes."""
  files = [pathlib.Path(p) for p in glob.glob(str(step_dir / 'params' / '**' / 'd' / '*'),
                                              recursive=True)]
  assert files
  rng = np.random.default_rng(0)
  for f in files:
    size = f.stat().st_size
    data = {'empty': b'', 'truncated': f.read_bytes()[:size // 3],
            'garbage': rng.bytes(size)}[kind]
    f.write_bytes(data)


def _run(command, path, song, out):
  if command == 'mix':
    return mix.run(parse_flags(mix, f'--checkpoint={path}', f'--input={song}', f'--output={out}'))
  if command == 'export':
    return export.run(parse_flags(export, f'--checkpoint={path}', f'--output={out}'))
  return evaluate.run(parse_flags(evaluate, f'--checkpoints=alm={path}', f'--output={out}'))


@pytest.mark.parametrize('kind', ['empty', 'truncated', 'garbage'])
@pytest.mark.parametrize('command', ['mix', 'export', 'evaluate'])
def test_damaged_array_data_is_one_error_line(command, kind, workdir, song, tmp_path, capfd):
  damaged = tmp_path / 'run'
  shutil.copytree(workdir, damaged)
  step_dir = damaged / 'checkpoints' / '3'
  _damage(step_dir, kind)
  capfd.readouterr()
  status = _run(command, damaged, song, tmp_path / 'out')
  out, err = capfd.readouterr()
  lines = [line for line in (out + err).splitlines() if line.strip()]
  assert status == 2, lines
  assert len(lines) == 1 and lines[0].startswith('error: '), '\n'.join(lines[:40])
  assert f'{step_dir} is damaged' in lines[0] and 'restore it from a backup' in lines[0], lines[0]
