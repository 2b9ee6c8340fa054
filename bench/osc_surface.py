"""A control surface for the live soak: random OSC traffic to `alm_jax.live`, from its own process.

    python bench/osc_surface.py --port=9000 --channels=16 --rate=20 --seed=0

Sends `--rate` messages a second (exponential gaps) to --host:--port: plausible
moves of every control and, one in three, bad ones (NaN, Inf, out of range,
strings, wrong channels, unknown addresses), with a /alm/status query now and
then; reads the status replies. On SIGINT or SIGTERM it prints one JSON line
of its counts ({"sent", "bad", "replies"}) and exits. bench/live_soak.py runs it.
"""

import argparse
import json
import signal
import socket
import time

import numpy as np
from pythonosc import osc_message_builder


def bad_message(r, ch, channels):
  return [(f'/alm/ch/{ch}/mute', ['no']), ('/alm/ceiling', [float('nan')]),
          ('/alm/master', [float('nan')]), ('/alm/master', [float('inf')]),
          ('/alm/limit', [12.0]), ('/alm/slew', [-3.0]), (f'/alm/ch/{channels + 5}/mute', [1]),
          (f'/alm/ch/{ch}/weight', ['loud']), (f'/alm/ch/{ch}/override', [1e9]),
          ('/alm/nonsense', [1]), (f'/alm/ch/{ch}/auto', [0.5]), ('/alm/ceiling', []),
          (f'/alm/ch/{ch}/weight', [1.0, 2.0]), ('/alm/master', [True])][int(r.integers(14))]


def good_message(r, ch):
  return [(f'/alm/ch/{ch}/weight', [float(r.uniform(-6, 6))]),
          (f'/alm/ch/{ch}/mute', [int(r.random() < 0.1)]),
          (f'/alm/ch/{ch}/override', [float(r.uniform(-20, 0))]),
          (f'/alm/ch/{ch}/override/off', []), (f'/alm/ch/{ch}/auto', [int(r.random() < 0.9)]),
          ('/alm/master', [float(r.uniform(-6, 0))]), ('/alm/ceiling', [float(r.uniform(0, 12))]),
          ('/alm/slew', [float(r.uniform(0, 12))]), ('/alm/limit', [float(r.uniform(-6, -1))]),
          ('/alm/status', [])][int(r.integers(10))]


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--host', default='127.0.0.1')
  p.add_argument('--port', type=int, required=True)
  p.add_argument('--channels', type=int, default=16)
  p.add_argument('--rate', type=float, default=20.0)
  p.add_argument('--seed', type=int, default=0)
  args = p.parse_args()
  rng = np.random.default_rng(args.seed + 2)
  sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
  sock.bind(('127.0.0.1', 0))
  sock.settimeout(0.0)
  counts = {'sent': 0, 'bad': 0, 'replies': 0}
  stop = []
  for sig in (signal.SIGINT, signal.SIGTERM):
    signal.signal(sig, lambda *_: stop.append(True))
  while not stop:
    time.sleep(rng.exponential(1.0 / args.rate))
    ch = int(rng.integers(1, args.channels + 1))
    if rng.random() < 1 / 3:
      counts['bad'] += 1
      address, values = bad_message(rng, ch, args.channels)
    else:
      address, values = good_message(rng, ch)
    builder = osc_message_builder.OscMessageBuilder(address=address)
    for v in values:
      builder.add_arg(v)
    sock.sendto(builder.build().dgram, (args.host, args.port))
    counts['sent'] += 1
    try:
      while sock.recv(65536):
        counts['replies'] += 1
    except (BlockingIOError, OSError):
      pass
  print(json.dumps(counts), flush=True)


if __name__ == '__main__':
  main()
