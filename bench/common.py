"""Helpers shared by the bench/ scripts: config loading and a one-line machine description.

The scripts run as `python bench/<name>.py`, which puts bench/ first on sys.path,
so they `import common`; importing it also puts the repository root on sys.path,
so `alm_jax` is importable from a checkout that was not pip-installed. Nothing
here imports JAX at import time: bench/streaming.py must set XLA_FLAGS first.
"""

import importlib.util
import os
import platform
import sys

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
if REPO not in sys.path:
  sys.path.insert(0, REPO)


def load_config(name_or_path: str):
  """get_config() of configs/<name>.py ('mr') or of a config file path ('configs/mr.py')."""
  path = name_or_path
  if not path.endswith('.py') and os.sep not in path:
    path = os.path.join(REPO, 'configs', f'{name_or_path}.py')
  if not os.path.isfile(path):
    raise SystemExit(f'error: config file {path} not found (give a name such as mr or a path '
                     'such as configs/mr.py).')
  stem = os.path.splitext(os.path.basename(path))[0]
  spec = importlib.util.spec_from_file_location(f'bench_config_{stem}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module.get_config()


def cpu_name() -> str:
  """The CPU model from /proc/cpuinfo (or what the platform module knows)."""
  try:
    with open('/proc/cpuinfo') as f:
      for line in f:
        if line.startswith('model name'):
          return line.split(':', 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or platform.machine() or 'unknown CPU'


def usable_cores() -> int:
  """CPU cores this process may run on (its affinity mask; all logical CPUs elsewhere)."""
  if hasattr(os, 'sched_getaffinity'):
    return len(os.sched_getaffinity(0))
  return os.cpu_count() or 1


def machine() -> str:
  """CPU, cores, Python, JAX and its device, and the load average: the context of a figure."""
  import jax  # pylint: disable=g-import-not-at-top  (after the caller's XLA_FLAGS)
  dev = jax.devices()[0]
  load = ', '.join(f'{x:.1f}' for x in os.getloadavg()) if hasattr(os, 'getloadavg') else 'n/a'
  return (f'{cpu_name()}; {usable_cores()} usable of {os.cpu_count()} logical cores; '
          f'Python {platform.python_version()}, jax {jax.__version__} on {dev.platform} '
          f'({dev.device_kind}); load average {load}')


# F1 frame each embedding runs on (docs/embeddings.md: musicnn's choice is 3 s).
EMBEDDING_F1_MS = {'musicnn': 3000.0, 'student': 3000.0}  # musicnn's patch (the student's too)


def with_embedding(config, name: str):
  """`config` with its model's embedding switched to `name` (its size and F1 frame with it).

  '' keeps the config's own embedding (e.g. configs/alm_mr_staged.py's student).
  """
  if not name:
    return config
  # Here, not at the top: importing common must not import JAX (see the module docstring).
  from alm_jax import embeddings  # pylint: disable=g-import-not-at-top
  config.model.embedding.name = name
  dim = embeddings.get(name).dim  # the only size an embedding gives, if it has one
  if dim is not None:
    config.model.embedding.dim = dim
  config.model.f1_ms = EMBEDDING_F1_MS.get(name, float(config.model.f1_ms))
  return config


def random_params(config, seed=0):
  """Random parameters of the model's shapes (the unwrapped tree restore_params returns).

  Matrices are scaled by 1/sqrt(fan-in); scales near 1, leaky slopes near 0.25, the rest near 0.
  """
  # Here, not at the top: importing common must not import JAX (see the module docstring).
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from alm_jax import frames  # pylint: disable=g-import-not-at-top
  from alm_jax.models import build_model  # pylint: disable=g-import-not-at-top
  model = build_model(config)
  spec = frames.FrameSpec.from_config(config.model)
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), np.zeros((1, 2, spec.f1), np.float32),
                          np.ones((1, 2), bool))['params']
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path)
    if leaf.ndim >= 2:
      return rng.standard_normal(leaf.shape, np.float32) / np.sqrt(np.prod(leaf.shape[:-1]))
    base = 1.0 if 'scale' in name else 0.25 if 'negative_slope' in name else 0.0
    return (base + 0.1 * rng.standard_normal(leaf.shape)).astype(np.float32)

  return jax.tree_util.tree_map_with_path(draw, shapes)
