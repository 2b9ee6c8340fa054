"""Batches built on a pool of threads, handed out in order: the input pipeline's parallelism.

    it = prefetch.ordered(build, start=s, workers=4, prefetch=2)   # build(s), build(s + 1), ...
    batches = prefetch.map_ordered(build, count, workers=4)        # [build(0), ..., build(count - 1)]

`build(step)` must be a pure function of `step` (the input pipeline's batches
are), so the worker count changes the speed only, never a batch. Threads, not
processes: the heavy work (int16 -> float conversion, FFTs, complex matmuls,
copies) runs in numpy/scipy with the GIL released, and threads share the songs
and the RIR bank and hand over ~100 MB batches without copying
(bench/input_pipeline.py measures it).
"""

import concurrent.futures
import itertools
import os
import queue
import threading
from typing import Callable, Iterator

_MAX_AUTO_WORKERS = 16


def num_workers(requested: int) -> int:
  """A worker count (config.data.num_workers) with -1 resolved: one per usable CPU core but one, at most 16.

  One core is left to the training loop (host-side dispatch, or the step itself
  on a CPU-only machine). A busy worker holds its batch, the examples' source
  segments and FFT buffers (~0.4 GB at the paper's shapes), hence the cap; set
  the count explicitly to go beyond it.
  """
  n = int(requested)
  if n < -1:
    raise ValueError(f'config.data.num_workers must be -1 (auto), 0 or a positive count, got {n}.')
  if n == -1:
    cores = len(os.sched_getaffinity(0)) if hasattr(os, 'sched_getaffinity') else os.cpu_count()
    n = max(1, min(int(cores or 1) - 1, _MAX_AUTO_WORKERS))
  return n


def ordered(build: Callable[[int], dict], start: int, workers: int, prefetch: int) -> Iterator:
  """Endless iterator of build(start), build(start + 1), ... with a `close()` that stops its threads.

  workers > 0: that many threads build whole batches, up to workers + prefetch
  ahead of the consumer. workers = 0: one background thread builds them
  `prefetch` ahead (prefetch <= 0: in the caller's thread).
  """
  if workers > 0:
    return ParallelBatches(build, int(start), workers, workers + max(int(prefetch), 0))
  return Prefetch(map(build, itertools.count(int(start))), int(prefetch))


def map_ordered(build: Callable[[int], dict], count: int, workers: int) -> list:
  """[build(0), ..., build(count - 1)], on up to `workers` threads when workers > 1."""
  workers = min(int(workers), int(count))
  if workers > 1:
    with concurrent.futures.ThreadPoolExecutor(workers, thread_name_prefix='alm_eval') as pool:
      return list(pool.map(build, range(count)))
  return [build(j) for j in range(count)]


class ParallelBatches:
  """`build(step)` for step = start, start + 1, ... on `workers` daemon threads, yielded in order.

  At most `ahead` batches are built or waiting beyond the one the consumer is
  at, so memory stays bounded when the consumer is slower. An error in
  `build(s)` is raised by the `next()` that would have returned batch s. The
  threads hold only the shared `_Schedule`, not this object, so dropping the
  iterator without `close()` still stops them (via __del__).
  """

  def __init__(self, build: Callable[[int], dict], start: int, workers: int, ahead: int):
    self._schedule = _Schedule(build, start, max(ahead, workers))
    self._threads = [threading.Thread(target=self._schedule.work, daemon=True,
                                      name=f'alm_input_{i}') for i in range(workers)]
    for t in self._threads:
      t.start()

  def __iter__(self):
    return self

  def __next__(self):
    return self._schedule.next()

  def close(self):
    self._schedule.stop()
    for t in self._threads:
      t.join(timeout=5)

  def __del__(self):
    try:
      self.close()
    except Exception:  # pylint: disable=broad-except
      pass


class _Schedule:
  """The state `ParallelBatches`' threads share: which step to build next, finished batches."""

  def __init__(self, build, start: int, ahead: int):
    self._build = build
    self._next_out = start  # the step the consumer gets next
    self._next_in = start   # the next step a worker takes
    self._ahead = ahead
    self._done = {}         # step -> (ok, batch or exception)
    self._cond = threading.Condition()
    self._stopped = False

  def work(self):
    while True:
      with self._cond:
        self._cond.wait_for(lambda: self._stopped or self._next_in < self._next_out + self._ahead)
        if self._stopped:
          return
        step = self._next_in
        self._next_in += 1
      try:
        result = (True, self._build(step))
      except BaseException as e:  # pylint: disable=broad-except  (handed to the consumer)
        result = (False, e)
      with self._cond:
        if not self._stopped:
          self._done[step] = result
          self._cond.notify_all()

  def next(self) -> dict:
    with self._cond:
      self._cond.wait_for(lambda: self._stopped or self._next_out in self._done)
      if self._stopped:
        raise StopIteration
      ok, value = self._done.pop(self._next_out)
      self._next_out += 1
      self._cond.notify_all()  # a slot ahead is free
    if not ok:
      raise value
    return value

  def stop(self):
    with self._cond:
      self._stopped = True
      self._done.clear()
      self._cond.notify_all()


class Prefetch:
  """Runs a generator in a daemon thread, `size` items ahead; re-raises its errors."""

  _DONE = object()

  def __init__(self, gen, size: int):
    self._gen = gen
    if size <= 0:
      self._queue = None
      return
    self._queue = queue.Queue(maxsize=size)
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, daemon=True, name='alm_input_pipeline')
    self._thread.start()

  def _run(self):
    try:
      for item in self._gen:
        while not self._stop.is_set():
          try:
            self._queue.put(item, timeout=0.1)
            break
          except queue.Full:
            continue
        if self._stop.is_set():
          return
    except BaseException as e:  # pylint: disable=broad-except  (handed to the consumer)
      self._queue.put((self._DONE, e))

  def __iter__(self):
    return self

  def __next__(self):
    if self._queue is None:
      return next(self._gen)
    item = self._queue.get()
    if isinstance(item, tuple) and len(item) == 2 and item[0] is self._DONE:
      raise item[1]
    return item

  def close(self):
    if self._queue is not None:
      self._stop.set()
      self._thread.join(timeout=5)

  def __del__(self):
    try:
      self.close()
    except Exception:  # pylint: disable=broad-except
      pass
