"""Soak: a long many-channel show, offline and streamed, with memory and per-block time watched.

    python bench/soak.py                       # 60 min, 16 channels, small-embedding ALM-MR
    python bench/soak.py --minutes=10 --channels=16

Offline: the show is mixed by the chunked mixer in one call and again in two
halves with the mixer state carried across (`ChunkedMixer(..., state=,
return_state=True)`); the two must agree, and the peak RSS is printed next to
the size of the show's audio and of its mix, so a mixer that held a whole
song's intermediate arrays would show. Streaming: the same show through
`StreamingMixer` in 50 ms blocks; the p99 per-block time of the first and the
last tenth of the show and the RSS growth between them must stay flat.
Random-weight parameters: the figures are costs, not mixing quality. The show
is synthesised in pieces (noise with moving envelopes), never held twice.

Live: `python bench/soak.py --live [--minutes=60 --channels=16 ...]` runs
bench/live_soak.py instead: the live mixer at real-time pace for the whole show
with random OSC traffic (bad values included) and NaN/Inf bursts, checking late
results, RSS and the recording.
"""

import sys

if __name__ == '__main__' and '--live' in sys.argv[1:]:
  # Before JAX is imported here: the live soak sets XLA's threading first.
  import live_soak  # pylint: disable=g-import-not-at-top
  sys.argv.remove('--live')
  sys.exit(live_soak.main())

import argparse  # pylint: disable=g-import-not-at-top,wrong-import-position
import resource
import time

from common import load_config, machine
import jax
import jax.numpy as jnp
import numpy as np

from alm_jax import frames
from alm_jax import models
from alm_jax.inference import offline
from alm_jax.inference import streaming
from alm_jax.models import build_model

SR = 44100


def rss_gb() -> float:
  """Current resident set size (not the peak), from /proc."""
  with open('/proc/self/statm') as f:
    return int(f.read().split()[1]) * resource.getpagesize() / 2**30


def peak_rss_gb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def random_params(model, spec, seed=0):
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 2, spec.f1)),
                          jnp.ones((1, 2), bool))['params']
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda s: (rng.standard_normal(s.shape, np.float32) /
                                 np.sqrt(max(int(np.prod(s.shape[:-1])), 1))), shapes)


def show(channels: int, samples: int, seed=0) -> np.ndarray:
  """[1, channels, samples] float32: noise under slow random envelopes, written piece by piece."""
  rng = np.random.default_rng(seed)
  audio = np.empty((1, channels, samples), np.float32)
  piece = 60 * SR
  for start in range(0, samples, piece):
    n = min(piece, samples - start)
    t = (start + np.arange(n)) / SR
    env = 0.05 + 0.1 * (1 + np.sin(2 * np.pi * t[None] / rng.uniform(5, 40, (channels, 1))))
    audio[0, :, start:start + n] = rng.standard_normal((channels, n), np.float32) * env
  return audio


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--minutes', type=float, default=60.0)
  p.add_argument('--channels', type=int, default=16)
  p.add_argument('--block', type=int, default=2205, help='streaming block, samples')
  p.add_argument('--skip_streaming', action='store_true')
  args = p.parse_args()

  config = load_config('mr')
  config.model.embedding.name = 'small'
  config.model.max_channels = args.channels
  spec = frames.FrameSpec.from_config(config.model)
  params = random_params(build_model(config), spec)
  hop = spec.stride * spec.f2
  n = int(args.minutes * 60 * SR) // hop * hop
  audio = show(args.channels, n)
  mask = np.ones((1, args.channels), bool)
  print(f'# {machine()}')
  print(f'show: {args.minutes:g} min x {args.channels} channels = {audio.nbytes / 2**30:.2f} GiB of '
        f'float32 audio; its mix {n * 4 / 2**30:.3f} GiB')

  # ---- offline: one call, and two halves with the state carried ----
  mixer = offline.ChunkedMixer(models.load(config, params))
  mixer(params, audio[..., :mixer.chunk_samples], mask)  # compile outside the timing
  rss0 = rss_gb()
  t0 = time.perf_counter()
  whole = mixer(params, audio, mask)
  whole_s = time.perf_counter() - t0
  half = (n // 2) // hop * hop
  first, state = mixer(params, audio[..., :half], mask, return_state=True)
  second, _ = mixer(params, audio[..., half:], mask, state=state, return_state=True)
  joined = np.concatenate([first['mix'], second['mix']], axis=-1)
  err = float(np.max(np.abs(joined - whole['mix'])))
  print(f'offline: {n / SR / whole_s:.1f}x real time ({whole_s:.1f} s); peak RSS '
        f'{peak_rss_gb():.2f} GiB (RSS before mixing {rss0:.2f} GiB); one call vs two halves '
        f'with the state carried: max |diff| {err:.2e}')
  del whole, first, second, joined

  if args.skip_streaming:
    return
  # ---- streaming: first vs last tenth ----
  stream = streaming.StreamingMixer(models.load(config, params), 1, args.channels, mask)
  blocks = n // args.block
  tenth = max(1, blocks // 10)
  times = np.empty(blocks)
  stream.process(audio[0, :, :args.block])  # compile
  stream.reset()
  rss_first = None
  for i in range(blocks):
    t0 = time.perf_counter()
    stream.process(audio[0, :, i * args.block:(i + 1) * args.block])
    times[i] = time.perf_counter() - t0
    if i == tenth:
      rss_first = rss_gb()
  rss_last = rss_gb()
  p_first = np.percentile(times[:tenth], 99) * 1e3
  p_last = np.percentile(times[-tenth:], 99) * 1e3
  print(f'streaming: {blocks} blocks of {args.block} samples; p99 per block first tenth '
        f'{p_first:.2f} ms, last tenth {p_last:.2f} ms (median {np.median(times) * 1e3:.2f} ms); '
        f'RSS after the first tenth {rss_first:.3f} GiB, at the end {rss_last:.3f} GiB '
        f'(growth {1024 * (rss_last - rss_first):+.1f} MiB); faults {int(stream.faults.sum())}')


if __name__ == '__main__':
  main()
