"""`alm_jax.allocator`: glibc malloc settings for training, applied once, off by environment."""

import os
import subprocess
import sys

import pytest

from alm_jax import allocator

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_GLIBC = allocator._glibc() is not None  # pylint: disable=protected-access


def _run(code, **env):
  """Runs `code` in a fresh interpreter (malloc settings are process-wide); returns its stdout."""
  environ = {**os.environ, 'PYTHONPATH': REPO, **env}
  return subprocess.run([sys.executable, '-c', code], env=environ, check=True, capture_output=True,
                        text=True, timeout=60).stdout.strip()


def test_settings_fit_mallopt_int():
  limit = 2 ** 31 - 1
  for param, value in allocator.settings().items():
    assert param < 0 and 0 < value <= limit, (param, value)
  assert allocator.settings()[allocator.M_MMAP_THRESHOLD] >= 1 << 30  # above the step's temporaries


def test_turned_off_by_environment():
  for off in ('0', 'false', 'off'):
    assert allocator.tune_for_training({allocator.ENV: off}) is False


@pytest.mark.skipif(not _GLIBC, reason='needs glibc (mallopt)')
def test_applied_once_in_a_fresh_process():
  out = _run('from alm_jax import allocator; '
             'print(allocator.tune_for_training(), allocator.tune_for_training())')
  assert out == 'True True'
  assert _run('from alm_jax import allocator; print(allocator.tune_for_training())',
              **{allocator.ENV: '0'}) == 'False'


@pytest.mark.skipif(not _GLIBC, reason='needs glibc (mallopt)')
def test_large_buffers_come_from_the_heap():
  # A 256 MB buffer freed and allocated again: with glibc's defaults it is an mmap each time,
  # page-faulted anew (minor faults ~ its pages); tuned, the second one reuses the heap's.
  code = ('import resource, sys; from alm_jax import allocator; tuned = allocator.tune_for_training() '
          'if sys.argv[1] == "1" else False\n'
          'import numpy as np\n'
          'a = np.ones(1 << 26, np.float32); del a\n'
          'before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n'
          'b = np.ones(1 << 26, np.float32)\n'
          'print(tuned, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)')
  environ = {**os.environ, 'PYTHONPATH': REPO}
  faults = {}
  for flag in ('0', '1'):
    out = subprocess.run([sys.executable, '-c', code, flag], env=environ, check=True,
                         capture_output=True, text=True, timeout=60).stdout.split()
    faults[flag] = int(out[1])
  # The default: the new mapping faults page by page (4 KB pages: 65536; fewer with transparent
  # huge pages, 640 on the machine of bench/README.md). Tuned: the freed heap memory is reused.
  assert faults['0'] >= 100
  assert faults['1'] <= faults['0'] // 10
