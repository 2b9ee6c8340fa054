"""tools/average_checkpoints.py and checkpoints.save_params: the mean of trained mixers as a workdir."""

import runpy

import jax
import numpy as np
import pytest

from alm_jax import checkpoints
from alm_jax import restore
from checkpoint_fixtures import TinyModel, random_params, save_checkpoint
from conftest import REPO

tool = runpy.run_path(str(REPO / 'tools' / 'average_checkpoints.py'))


@pytest.fixture(scope='module')
def two_runs(tmp_path_factory):
  tiny = TinyModel('mr')
  root = tmp_path_factory.mktemp('runs')
  other = random_params(tiny.model, tiny.spec, seed=2)
  save_checkpoint(root / 'a', tiny.config, tiny.params, step=3)
  save_checkpoint(root / 'b', tiny.config, other, step=5)
  return tiny, root, other


def test_the_mean_is_written_and_restores_like_a_run(two_runs, tmp_path):
  tiny, root, other = two_runs
  out = tmp_path / 'soup'
  assert tool['main']([f'--checkpoints={root / "a"},{root / "b"}', f'--workdir={out}',
                       '--weights=1,3']) == 0
  _, params, step = restore.restore_params(str(out), tiny.config)
  assert step == 5  # the largest of the two
  # The first run's config, as saved (restore_params above also checked its model).
  assert (out / 'config.json').read_text() == (root / 'a' / 'config.json').read_text()
  want = jax.tree.map(lambda a, b: 0.25 * np.asarray(a) + 0.75 * np.asarray(b), tiny.params, other)
  jax.tree.map(lambda got, w: np.testing.assert_allclose(got, w, rtol=1e-6, atol=1e-7), params, want)
  loaded = restore.load_mixer(str(out))  # a mixer, as mix and evaluate take it
  assert loaded.step == 5


def test_refusals(two_runs, tmp_path, capsys):
  tiny, root, _ = two_runs
  # A model of another shape cannot be averaged with these.
  wide = TinyModel('mr', d_model=tiny.config.model.d_model * 2)
  save_checkpoint(tmp_path / 'wide', wide.config, wide.params)
  assert tool['main']([f'--checkpoints={root / "a"},{tmp_path / "wide"}',
                       f'--workdir={tmp_path / "x"}']) == 1
  assert 'does not match the model saved' in capsys.readouterr().err
  assert tool['main']([f'--checkpoints={root / "a"},{root / "b"}', f'--workdir={tmp_path / "y"}',
                       '--weights=1']) == 1
  assert '--weights needs 2' in capsys.readouterr().err
  # An existing run is never overwritten.
  assert tool['main']([f'--checkpoints={root / "a"},{root / "b"}', f'--workdir={root / "a"}']) == 1
  assert 'already holds checkpoints' in capsys.readouterr().err
  with pytest.raises(SystemExit):
    tool['main']([f'--checkpoints={root / "a"}', f'--workdir={tmp_path / "z"}'])
