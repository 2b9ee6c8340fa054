r"""Offline mixing memory: peak RSS of `python -m alm_jax.mix` on long songs read from disk.

    python bench/mix_memory.py --minutes=15              # 8 channels x 15 min (target <= 1.5 GB)
    nice -n 10 python bench/mix_memory.py --minutes=180  # 8 channels x 3 h (target <= 2 GB)
    python bench/mix_memory.py --minutes=15 --repo=/tmp/old_checkout   # another checkout's mixer

Writes `--channels` mono files of `--minutes` to a scratch folder (PCM_24 WAV,
44.1 kHz, noise with slow level changes at about -20 dBFS, generated block by
block so the generator itself stays small), then runs the mixing CLI on them
in a child process with `--checkpoint` (default pretrained:alm_mr) and prints
the child's peak resident set size (ru_maxrss, the whole process: Python, JAX
and XLA's runtime included), its wall time and the real-time factor. The
scratch folder is removed afterwards unless `--keep`.
Issue 29's targets: peak RSS <= 1.5 GB for 8 x 15 min and <= 2 GB for 8 x 3 h.
"""

import argparse
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

from common import REPO, cpu_name, usable_cores
import numpy as np
import soundfile as sf

RATE = 44100
TARGETS_GB = ((15.0, 1.5), (180.0, 2.0))  # (minutes up to, peak RSS target in GB)


def write_song(folder: str, channels: int, minutes: float, seed: int = 0) -> int:
  """Writes `channels` files of `minutes` into `folder`; returns the frames per file."""
  os.makedirs(folder, exist_ok=True)
  frames = int(minutes * 60 * RATE)
  rng = np.random.default_rng(seed)
  block = 10 * RATE
  noise = rng.normal(size=(channels, block)).astype(np.float32) * 0.1  # reused, shifted per block
  rates = rng.uniform(0.05, 0.5, channels)[:, None]
  files = [sf.SoundFile(os.path.join(folder, f'ch{c:02d}.wav'), 'w', RATE, 1, subtype='PCM_24')
           for c in range(channels)]
  try:
    for start in range(0, frames, block):
      n = min(block, frames - start)
      t = (start + np.arange(n)) / RATE
      env = 0.6 + 0.4 * np.sin(2 * np.pi * rates * t)
      x = np.roll(noise, start // block * 997, axis=1)[:, :n] * env
      for c, f in enumerate(files):
        f.write(x[c])
  finally:
    for f in files:
      f.close()
  return frames


def main():
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--minutes', type=float, default=15.0)
  parser.add_argument('--channels', type=int, default=8)
  parser.add_argument('--checkpoint', default='pretrained:alm_mr')
  parser.add_argument('--repo', default=REPO, help='checkout whose alm_jax runs (PYTHONPATH)')
  parser.add_argument('--scratch', default=None, help='folder for the inputs and the mix '
                      '(default: a new temporary folder)')
  parser.add_argument('--keep', action='store_true', help='keep the scratch folder')
  parser.add_argument('--extra', default='', help='extra flags for alm_jax.mix, space-separated')
  args = parser.parse_args()

  scratch = args.scratch or tempfile.mkdtemp(prefix='alm_mix_memory-')
  song = os.path.join(scratch, 'inputs', 'long_song')
  out = os.path.join(scratch, 'mixes')
  try:
    t0 = time.perf_counter()
    frames = write_song(song, args.channels, args.minutes)
    gen_s = time.perf_counter() - t0
    size = sum(os.path.getsize(os.path.join(song, f)) for f in os.listdir(song))
    print(f'inputs: {args.channels} x {args.minutes:g} min ({frames} frames each, '
          f'{size / 1e9:.2f} GB PCM_24 on disk) written in {gen_s:.0f} s', flush=True)
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([args.repo, os.environ.get('PYTHONPATH', '')]))
    cmd = [sys.executable, '-m', 'alm_jax.mix', f'--checkpoint={args.checkpoint}',
           f'--input={song}', f'--output={out}', '--overwrite', *args.extra.split()]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, cwd=args.repo, env=env, capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    peak_gb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024 / 1e9
    if proc.returncode != 0:
      print(proc.stderr[-3000:], file=sys.stderr)
      raise SystemExit(f'error: alm_jax.mix exited with {proc.returncode}')
    mixed = sf.info(os.path.join(out, 'long_song', 'mix.wav'))
    assert mixed.frames == frames, (mixed.frames, frames)
    target = next((gb for minutes, gb in TARGETS_GB if args.minutes <= minutes), None)
    verdict = ('' if target is None else
               f'; target <= {target:g} GB: {"met" if peak_gb <= target else "NOT met"}')
    print(f'alm_jax.mix ({args.repo}): {args.channels} ch x {args.minutes:g} min: peak RSS '
          f'{peak_gb:.2f} GB, wall {wall:.0f} s ({args.minutes * 60 / wall:.1f}x real time, '
          f'startup and compile included){verdict}')
    print(f'machine: {cpu_name()}; {usable_cores()} usable cores; load average '
          f'{", ".join(f"{x:.1f}" for x in os.getloadavg())}')
  finally:
    if not args.keep:
      shutil.rmtree(scratch, ignore_errors=True)


if __name__ == '__main__':
  main()
