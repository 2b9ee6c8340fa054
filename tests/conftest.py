"""Shared test fixtures: tiny configs so the suite stays fast on 2 CPU cores."""

import atexit
import importlib.metadata
import importlib.util
import os
import pathlib
import shutil
import tempfile

# The suite is bound by XLA:CPU compiles of many small programs, not by running them: LLVM's
# optimisation passes off (set before JAX starts its backend; subprocesses inherit it). The
# same programs, less optimised machine code; the tools and the benchmarks keep the default.
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                           + ' --xla_backend_optimization_level=0').strip()
# Many tests compile the same tiny programs afresh (a new jit per model, per CLI run, per training
# run): JAX's persistent compilation cache serves the repeats from disk. One cache per test run,
# made by the first process (pytest, or xdist's controller) and inherited through the environment
# by the workers and the CLI subprocesses, removed when that process exits, so no run reuses
# another's compiles (and a timing is the suite's own).
if not os.environ.get('JAX_COMPILATION_CACHE_DIR'):
  os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='alm_jax_tests_xla_cache_')
  atexit.register(shutil.rmtree, os.environ['JAX_COMPILATION_CACHE_DIR'], ignore_errors=True)
# Compiles shorter than this cost less than the cache's file round trip.
os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.2')

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position
import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position

# Threefry's unrolled hash makes every init and dropout compile 2-3x slower on
# CPU; tests need reproducible randomness, not that generator in particular.
jax.config.update('jax_default_prng_impl', 'unsafe_rbg')

REPO = pathlib.Path(__file__).resolve().parents[1]


def load_config_module(name: str):
  """The module configs/<name>.py."""
  path = REPO / 'configs' / f'{name}.py'
  spec = importlib.util.spec_from_file_location(f'configs_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def load_config(name: str):
  """configs/<name>.py's get_config()."""
  return load_config_module(name).get_config()


# Shrinks config.model in place to a tiny network with the real frame sizes (configs/tiny.py).
shrink_model = load_config_module('tiny').shrink


@pytest.fixture
def tiny_config():
  """tiny_config('mr' | 'sr') -> a full config with a tiny model."""
  return lambda name='mr': shrink_model(load_config(name))


def pytest_configure(config):
  """Refuses a run whose xdist groups would not hold (pytest.ini's --dist loadgroup).

  The groups keep the training tests on one worker (one compiled step) and the JACK tests from
  running at once. pytest-xdist 3.8 marks a grouped test by renaming its `_nodeid`, which pytest
  9.2 no longer reads (it keeps the id in `_id`): every group is then silently spread.
  """
  if config.getvalue('dist') != 'loadgroup':
    return
  def version(name):
    return tuple(int(p) for p in importlib.metadata.version(name).split('.')[:2])

  if version('pytest') >= (9, 2) and version('pytest-xdist') <= (3, 8):
    raise pytest.UsageError(
        f'pytest {importlib.metadata.version("pytest")} with pytest-xdist '
        f'{importlib.metadata.version("pytest-xdist")} spreads the xdist groups this suite needs: '
        'install the tested versions with pip install -e ".[test]" (setup.py pins pytest below 9.2).')


def write_role_centroids(path, dim, num_roles=3, seed=0):
  """A role centroid file (roles.load_centroids' format) for a `dim`-wide embedding."""
  rng = np.random.default_rng(seed)
  c = rng.normal(size=(num_roles, dim)).astype(np.float32)
  np.savez(path, roles=np.array([f'role{i}' for i in range(num_roles)]),
           levels_db=np.zeros(num_roles, np.float32), center=np.zeros(dim, np.float32),
           centroids=c / np.linalg.norm(c, axis=-1, keepdims=True))
  return str(path)
