"""Tests for alm_jax/pretrained.py: shipping a workdir's step, and `pretrained:NAME` wherever a checkpoint is taken."""

import json
import pathlib

import jax
import numpy as np
import pytest

from alm_jax import checkpoints
from alm_jax import models
from alm_jax import pretrained
from alm_jax import restore
from checkpoint_fixtures import TinyModel, save_checkpoint


@pytest.fixture(scope='module')
def shipped(tmp_path_factory):
  """A tiny trained workdir (steps 3 and 5) shipped as 'tiny' into a temporary package root."""
  tmp = tmp_path_factory.mktemp('pretrained')
  tiny = TinyModel('mr')
  work = tmp / 'work'
  save_checkpoint(work, tiny.config, tiny.params, step=3)
  later = jax.tree.map(lambda x: x * 2, tiny.params)
  save_checkpoint(work, tiny.config, later, step=5)
  root = tmp / 'root'
  path = pretrained.ship(work, 'tiny', 'a tiny test mixer', command='python -m alm_jax.main',
                         root=root)
  return tiny, later, root, path


def test_ship_keeps_params_of_the_newest_step_without_optimiser_state(shipped, monkeypatch):
  tiny, later, root, path = shipped
  assert path == root / 'tiny'
  step_dir = path / 'checkpoints' / '5'
  assert (step_dir / 'params').is_dir() and not (step_dir / 'opt_state').exists()
  assert not (path / 'checkpoints' / '3').exists()
  card = json.loads((path / 'card.json').read_text())
  assert card['step'] == 5 and card['description'] == 'a tiny test mixer'
  assert pretrained.listing(root) == 'pretrained:tiny  a tiny test mixer (step 5)'
  monkeypatch.setattr(pretrained, 'ROOT', root)
  config, params, step = restore.restore_params('pretrained:tiny', tiny.config)
  assert step == 5 and config.model.d_model == tiny.config.model.d_model
  for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(later)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_unknown_name_and_damaged_shipped_step_are_clear_errors(shipped, monkeypatch, tmp_path):
  _, _, root, _ = shipped
  monkeypatch.setattr(pretrained, 'ROOT', root)
  with pytest.raises(checkpoints.CheckpointError, match=r"No pretrained mixer 'pretrained:nope'.*"
                     r"installed: pretrained:tiny"):
    restore.restore_params('pretrained:nope')
  # A damaged copy is refused, not loaded: flip bytes in one array file.
  import shutil  # pylint: disable=g-import-not-at-top
  copy = tmp_path / 'root'
  shutil.copytree(root, copy)
  monkeypatch.setattr(pretrained, 'ROOT', copy)
  files = sorted(p for p in (copy / 'tiny' / 'checkpoints' / '5' / 'params').rglob('*')
                 if p.is_file() and p.stat().st_size > 1000)
  data = bytearray(files[0].read_bytes())
  data[len(data) // 2] ^= 0xFF
  files[0].write_bytes(bytes(data))
  with pytest.raises(checkpoints.CheckpointError):
    restore.restore_params('pretrained:tiny')


def test_ship_refuses_a_workdir_without_checkpoints(tmp_path):
  with pytest.raises(checkpoints.CheckpointError, match='No checkpoint'):
    pretrained.ship(tmp_path, 'x', 'nothing', root=tmp_path / 'root')
  assert not (tmp_path / 'root' / 'x').exists()


def test_the_package_ships_alm_mr_and_it_mixes():
  """The shipped mixer restores with every check and mixes two channels to a finite mix."""
  from alm_jax.inference import offline  # pylint: disable=g-import-not-at-top
  assert 'alm_mr' in pretrained.available(), pretrained.listing()
  config, params, step = restore.restore_params('pretrained:alm_mr')
  assert step > 0 and config.data.name == 'rendered_live'
  rng = np.random.default_rng(0)
  audio = (0.1 * rng.standard_normal((1, 2, 44100))).astype(np.float32)
  out = offline.mix_arrays(models.load(config, params), audio, np.ones((1, 2), bool))
  assert out['mix'].shape == (1, 44100) and np.all(np.isfinite(out['mix']))
  assert np.all(out['gains'] >= 0) and np.any(out['gains'] > 0)


def test_the_package_ships_alm_mr_stereo_and_it_mixes_in_stereo():
  """The shipped stereo mixer (docs/pretrained_stereo.md): gains, pans and a stereo mix."""
  from alm_jax.inference import offline  # pylint: disable=g-import-not-at-top
  assert 'alm_mr_stereo' in pretrained.available(), pretrained.listing()
  loaded = restore.load_mixer('pretrained:alm_mr_stereo')
  assert loaded.step > 0 and loaded.capabilities.stereo
  rng = np.random.default_rng(0)
  audio = (0.1 * rng.standard_normal((1, 3, 44100))).astype(np.float32)
  out = offline.mix_arrays(loaded, audio, np.ones((1, 3), bool))
  assert out['stereo'].shape == (1, 2, 44100) and np.all(np.isfinite(out['stereo']))
  assert np.all(np.abs(out['pans']) <= 1) and np.all(out['pans'][..., 0] == 0)


def test_readme_first_run_mixes_the_example_song(tmp_path):
  """README's first command: the shipped mixer on examples/live_song/ writes a mix and its gains."""
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  from alm_jax import mix  # pylint: disable=g-import-not-at-top
  from checkpoint_fixtures import parse_flags  # pylint: disable=g-import-not-at-top
  repo = pathlib.Path(__file__).resolve().parent.parent
  readme = (repo / 'README.md').read_text()
  command = ('python -m alm_jax.mix --checkpoint=pretrained:alm_mr --input=examples/live_song/ '
             '--output=mixes/ --raw')
  assert command in readme
  fv = parse_flags(mix, '--checkpoint=pretrained:alm_mr', f'--input={repo / "examples" / "live_song"}',
                   f'--output={tmp_path / "mixes"}', '--raw')
  assert mix.run(fv) == 0
  out = tmp_path / 'mixes' / 'live_song'
  mixed, rate = sf.read(out / 'mix.wav')
  target, _ = sf.read(repo / 'examples' / 'live_song_target.flac')
  assert rate == 44100 and mixed.shape == target.shape and np.all(np.isfinite(mixed))
  assert (out / 'raw.wav').is_file() and (out / 'gains.csv').is_file() and (out / 'gains.png').is_file()
  # The score README states: the balance error of gains.csv and of the plain sum (all gains 1)
  # against the designed gains of examples/live_song.json, by the project's one metric.
  import csv  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  import re  # pylint: disable=g-import-not-at-top
  from alm_jax import metrics  # pylint: disable=g-import-not-at-top
  ideal_db = json.loads((repo / 'examples' / 'live_song.json').read_text())['ideal_gains_db']
  ideal = 10 ** (np.asarray(ideal_db, np.float64) / 20)
  with open(out / 'gains.csv', newline='', encoding='utf-8') as fh:
    gains = np.array(list(csv.reader(fh))[1:], np.float64)[:, 1:].T  # [channels, frames]
  stated = re.search(r"\*\*([\d.]+) dB\*\*\s+for\s+the\s+pretrained\s+mixer's\s+`gains.csv`,\s+"
                     r'against\s+\*\*([\d.]+) dB\*\*\s+for\s+the\s+plain\s+sum', readme)
  assert stated, 'README states what the example scores'
  mask = np.ones(len(ideal), bool)
  assert round(float(metrics.balance_error_db(gains, ideal, mask)), 1) == float(stated[1])
  assert round(float(metrics.balance_error_db(np.ones_like(ideal), ideal)), 1) == float(stated[2])
