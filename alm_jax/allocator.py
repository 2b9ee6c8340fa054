"""glibc malloc settings for a training process: large buffers reused instead of mapped anew.

`tune_for_training()` (called first thing by `python -m alm_jax.main`) makes glibc's malloc
keep buffers of up to `MMAP_THRESHOLD` bytes in its heap and reuse them. With glibc's defaults
every buffer over 32 MB is a fresh `mmap` that the kernel zero-fills page by page on first touch
and unmaps on free: XLA:CPU allocates the train step's temporaries (hundreds of MB), and the
input pipeline its batches, that way on every step. For configs/alm_mr_stage.py on 2 CPU cores
that was 0.2 s of kernel time in a 0.8 s step; with these settings it is under 0.01 s, and the
computed numbers are the same (only where buffers live changes). bench/README.md ("Training
steps per hour") has the figures.

The three settings (mallopt):
  M_ARENA_MAX = 1          every thread allocates from the main heap: a thread's own arena is a
                           64 MB heap, too small for these buffers, so they would be mmapped anyway;
  M_MMAP_THRESHOLD = 1 GiB  buffers below it come from the heap (the default's dynamic threshold
                           stops at 32 MB);
  M_TRIM_THRESHOLD = 2 GiB  free memory at the heap's top is kept up to this, not handed back after
                           every step.

The cost is memory the process keeps between steps (the freed buffers stay mapped, up to the
trim threshold), which a training process reuses on its next step anyway. The arena limit must be
set before the threads that allocate start (JAX's backend, the input pipeline's workers), so
call it before JAX is initialised. It is a no-op, returning False, where the C library is not
glibc (macOS, musl) or when the environment variable ALM_JAX_MALLOC_TUNING is 0.
"""

import ctypes
import ctypes.util
import os

# glibc's mallopt parameter numbers (malloc.h).
M_TRIM_THRESHOLD = -1
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8

MMAP_THRESHOLD = 1 << 30
TRIM_THRESHOLD = (1 << 31) - 1  # 2 GiB, the largest value mallopt's int takes
ARENA_MAX = 1
ENV = 'ALM_JAX_MALLOC_TUNING'

_applied = None


def settings() -> dict:
  """{mallopt parameter: value} that `tune_for_training` sets."""
  return {M_ARENA_MAX: ARENA_MAX, M_MMAP_THRESHOLD: MMAP_THRESHOLD, M_TRIM_THRESHOLD: TRIM_THRESHOLD}


def _glibc():
  """The process's C library if it is glibc (it has gnu_get_libc_version), else None."""
  name = ctypes.util.find_library('c') or 'libc.so.6'
  try:
    libc = ctypes.CDLL(name)
  except OSError:
    return None
  if not hasattr(libc, 'gnu_get_libc_version') or not hasattr(libc, 'mallopt'):
    return None
  return libc


def tune_for_training(environ=None) -> bool:
  """Applies `settings()` to this process's malloc once; True if they are in force (module docstring)."""
  global _applied
  environ = os.environ if environ is None else environ
  if environ.get(ENV, '1').strip().lower() in ('0', 'false', 'no', 'off'):
    return False
  if _applied is not None:
    return _applied
  libc = _glibc()
  if libc is None:
    _applied = False
    return False
  libc.mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
  libc.mallopt.restype = ctypes.c_int
  # mallopt returns 1 on success, 0 for a value it refuses.
  _applied = all(libc.mallopt(param, value) == 1 for param, value in settings().items())
  return _applied
