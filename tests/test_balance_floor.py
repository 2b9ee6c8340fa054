"""tools/balance_floor.py: the static oracle mixers' gains."""

import runpy

import numpy as np
import pytest

from alm_jax import metrics
from alm_jax.data import rendered
from conftest import REPO

floor = runpy.run_path(str(REPO / 'tools' / 'balance_floor.py'))


def _tone(level_db, seconds=2.0, rate=16000, freq=220.0):
  """A sine whose active level (`rendered.active_level_db`) is `level_db`."""
  x = np.sin(2 * np.pi * freq * np.arange(int(seconds * rate)) / rate).astype(np.float32)
  return x * np.float32(10 ** ((level_db - rendered.active_level_db(x)) / 20))


def test_role_and_level_recovers_the_designed_balance_without_bleed():
  roles = ['lead', 'pad', 'bass']
  audio = np.stack([_tone(-30.0), _tone(-12.0, freq=330.0), _tone(-25.0, freq=110.0)])
  # The designed gains: each part at its role's level, as rendered.make_song sets them.
  ideal = np.array([10 ** ((rendered.ROLE_LEVELS_DB[r] - rendered.active_level_db(x)) / 20)
                    for r, x in zip(roles, audio)])
  role_level = 10 ** (floor['static_gains_db'](audio, roles) / 20)
  equal = 10 ** (floor['static_gains_db'](audio) / 20)
  assert metrics.balance_error_db(role_level, ideal) == pytest.approx(0.0, abs=1e-6)
  # Equal levels miss the roles' spread (0, -11, -4 dB about their mean -5: 5, 6, 1).
  assert metrics.balance_error_db(equal, ideal) == pytest.approx(4.0, abs=1e-3)


def test_role_of_reads_the_evaluation_labels():
  assert floor['role_of']('3: bass:Fingered Bs.') == 'bass'
  assert floor['role_of']('1: drums:Standard') == 'drums'
  with pytest.raises(ValueError, match='names no rendered_live role'):
    floor['role_of']('ch1')
