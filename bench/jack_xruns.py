r"""The JACK xrun floor of this machine next to the live mixer's xruns, from jackd's own log.

    python bench/jack_xruns.py [--periods=128,64] [--seconds=20] [--cases=0,1,2,3,4]
    python bench/jack_xruns.py --periods=64 --cases=3 --mixer_args='--switch_interval_ms=0.1'

For each period, five cases, each on a fresh private `jackd -d dummy -r 44100 -p PERIOD`
server (a unique name, as tests/test_live_jack.py starts it): `server alone` (no client),
`C client (jack_simple_client)` (JACK's own example client), `empty Python client` (a
JACK-Client client with one input and one output port whose process callback does nothing, in
its own process) and `alm_jax.live mixer, 8 channels` (`python -m alm_jax.live` with a tiny
random 'mr' checkpoint playing an 8-channel test song through --play, recording, as on a show,
with its C audio callbacks, rtcore.c) and the same with `--callback=python` (the Python
callbacks, which take the GIL every period).
Each case counts, in the server's output over its measured window (from the client's ports
appearing until it is stopped; for the mixer until it exits after the song), the lines
`JackTimedDriver::Process XRun` (the dummy driver's own timer woke after the next cycle was due:
jackd itself scheduled late, which the server alone already shows) and, per client,
`client = NAME was not finished` (still running when its next cycle began) or `client NAME
finished after current callback` (shown as `finished late`). One late cycle of the mixer can
count twice: the mixer and its player are two clients. The mixer's row also shows its own
counters from its recording's info.json. The last line gives, per period, the floor (the fewest
xruns per minute of the first three cases: what any client gets on this machine) and the
mixer's rate.
"""

import argparse
import collections
import datetime
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import common  # also puts the repository root on sys.path

sys.path.insert(0, os.path.join(common.REPO, 'tests'))
import live_helpers  # pylint: disable=g-import-not-at-top,wrong-import-position  (tests/)

SR = 44100
CHANNELS = 8
CASES = ('server alone', 'C client (jack_simple_client)', 'empty Python client',
         f'alm_jax.live mixer, {CHANNELS} channels, C callback',
         f'alm_jax.live mixer, {CHANNELS} channels, --callback=python')
# Run as `python -c EMPTY_CLIENT NAME SERVER`: a separate process, like the C client and the
# mixer, so the bench's own interpreter (JAX loaded, the probe client) shares nothing with it.
EMPTY_CLIENT = r"""
import sys
import jack
client = jack.Client(sys.argv[1], servername=sys.argv[2], no_start_server=True)
client.inports.register('in_1')
client.outports.register('out_1')
client.set_process_callback(lambda frames: None)
client.activate()
sys.stdin.read()  # until the bench closes our stdin
client.deactivate()
client.close()
"""


class Server(live_helpers.JackServer):
  """live_helpers.JackServer (its log timed line by line) with an inactive probe client for ports."""

  def __init__(self, jack, period):
    try:
      super().__init__(period, f'alm_xruns_{os.getpid()}_{period}_{time.monotonic_ns() % 10**6}')
    except RuntimeError as e:
      raise SystemExit(f'error: {e}') from None
    # Inactive (never activated): it takes no part in the graph, it only lists ports.
    self.probe = jack.Client('xrun_probe', servername=self.name, no_start_server=True)

  def wait_ports(self, pattern, proc, timeout):
    """Waits until a port matching `pattern` exists; False if `proc` exits or time runs out."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      if self.probe.get_ports(pattern):
        return True
      if proc.poll() is not None:
        return False
      time.sleep(0.05)
    return False

  def close(self):
    self.probe.close()
    super().close()


def _write_fixtures(base):
  """A tiny 'mr' checkpoint and an 8-channel song folder, as tests/test_live_jack.py makes them."""
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  from checkpoint_fixtures import TinyModel, save_checkpoint  # pylint: disable=g-import-not-at-top

  tm = TinyModel('mr', max_channels=32)
  ckpt = os.path.join(base, 'ckpt')
  save_checkpoint(ckpt, tm.config, tm.params)
  return ckpt, lambda folder, seconds: [
      sf.write(os.path.join(folder, f'ch{ch + 1:02d}.wav'), x, SR, subtype='FLOAT')
      for ch, x in enumerate(live_helpers.song(CHANNELS, seconds, seed=1))]


def _run_client(server, cmd, ports, seconds, log, **popen):
  """Starts `cmd`, waits for its `ports`, measures `seconds`; (t0, t1) or an error string."""
  with open(log, 'w') as out:
    proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, **popen)
  try:
    if not server.wait_ports(ports, proc, 30):
      return f'no ports {ports} (exit code {proc.poll()}, log {log})'
    t0 = time.monotonic()
    time.sleep(seconds)
    return t0, time.monotonic()
  finally:
    if proc.stdin is not None:
      proc.stdin.close()  # the empty client's cue to close itself
      try:
        proc.wait(5)
      except subprocess.TimeoutExpired:
        pass
    live_helpers.stop_process(proc)


def _run_mixer(server, ckpt, song_dir, record, seconds, log, extra=()):
  """The live mixer on `server` until it exits after the song: ((t0, t1), info stats) or error."""
  cmd = [sys.executable, '-m', 'alm_jax.live', f'--checkpoint={ckpt}', f'--play={song_dir}',
         f'--record={record}', f'--server={server.name}', '--output=1,2', '--osc_port=0',
         '--ui=off', *extra]
  with open(log, 'w') as out:
    proc = subprocess.Popen(cmd, cwd=common.REPO, stdout=out, stderr=subprocess.STDOUT)
  try:
    # Startup (JAX import, restore, compile) happens before its client opens: the window
    # starts at its ports, as for the other clients, and ends when it exits after the song.
    if not server.wait_ports('alm_live:mix', proc, 400):
      return f'no alm_live:mix port (exit code {proc.poll()}, log {log})', None
    t0 = time.monotonic()
    try:
      proc.wait(seconds + 120)
    except subprocess.TimeoutExpired:
      return f'still running {seconds + 120} s after its ports appeared (log {log})', None
    t1 = time.monotonic()
    if proc.returncode:
      return f'exit code {proc.returncode} (log {log})', None
  finally:
    live_helpers.stop_process(proc, signal.SIGINT)  # SIGINT: it flushes its recording on the way out
  with open(os.path.join(record, 'info.json')) as f:
    return (t0, t1), json.load(f)['stats']


def _mixer_cell(stats):
  if stats is None:
    return '–'
  frames = f" (frames {stats['late_frames'][:5]})" if stats['late'] else ''
  return (f"late {stats['late']}{frames}, its JACK xruns {stats['xruns']}, callback max "
          f"{stats['callback_max_ms']:.2f} ms, worker p99 {stats['worker_p99_ms']:.1f} ms, "
          f"overruns {stats['worker_overruns']}")


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  p.add_argument('--periods', default='128,64', help='JACK periods (samples), comma separated')
  p.add_argument('--seconds', type=float, default=20.0, help='measured seconds per case')
  p.add_argument('--cases', default='0,1,2,3,4', help='which cases to run (0-4, in the order above)')
  p.add_argument('--mixer_args', default='',
                 help="extra flags for the mixer, e.g. '--switch_interval_ms=0.1'")
  args = p.parse_args(argv)
  periods = [int(x) for x in args.periods.split(',') if x.strip()]
  cases = {int(x) for x in args.cases.split(',') if x.strip()}
  if shutil.which('jackd') is None:
    raise SystemExit('error: jackd is not installed (apt-get install jackd2).')
  try:
    import jack  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise SystemExit('error: the JACK-Client package is not installed '
                     '(pip install JACK-Client).') from None
  simple = shutil.which('jack_simple_client')
  date = datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')
  print(f'{common.machine()}; {date}\njackd -d dummy -r {SR}, {args.seconds:g} s per case, '
        'a fresh server each', flush=True)
  rows, rates, notes = [], collections.defaultdict(dict), []
  with tempfile.TemporaryDirectory(prefix='jack_xruns_') as base:
    # Before any server: building the checkpoint loads the CPU.
    ckpt, write_song = _write_fixtures(base)
    song_dir = os.path.join(base, 'song')
    os.mkdir(song_dir)
    write_song(song_dir, args.seconds)
    for period in periods:
      for i, case in enumerate(CASES):
        if i not in cases:
          continue
        if i == 1 and simple is None:
          rows.append(f'| {period} | {case} | – | skipped: jack_simple_client not found '
                      '(apt-get install jackd2) | | | |')
          continue
        server = Server(jack, period)
        stats = None
        log = os.path.join(base, f'case{i}_p{period}.log')
        try:
          if i == 0:
            t0 = time.monotonic()
            time.sleep(args.seconds)
            window = t0, time.monotonic()
          elif i == 1:
            window = _run_client(server, [simple], 'jack_simple_client:', args.seconds, log,
                                 env=dict(os.environ, JACK_DEFAULT_SERVER=server.name))
          elif i == 2:
            window = _run_client(server, [sys.executable, '-c', EMPTY_CLIENT, 'empty_python',
                                          server.name], 'empty_python:', args.seconds, log,
                                 stdin=subprocess.PIPE)
          else:
            record = os.path.join(base, f'show_p{period}')
            extra = args.mixer_args.split() + (['--callback=python'] if i == 4 else [])
            window, stats = _run_mixer(server, ckpt, song_dir, record, args.seconds, log, extra)
          if isinstance(window, str):
            with open(log) as f:
              tail = f.read()[-2000:]
            print(f'{case} at period {period} failed: {window}\n{tail}', file=sys.stderr)
            rows.append(f'| {period} | {case} | – | failed: {window} | | | |')
            continue
          driver, late, after, other = server.xruns(*window)
        finally:
          server.close()
        seconds = window[1] - window[0]
        n_late = sum(late.values())
        who = ', '.join(f'{k} {v}' + (f' ({after[k]} finished late)' if after[k] else '')
                        for k, v in sorted(late.items()))
        who = f': {who}' if who else ''
        rate = 60 * (driver + n_late) / seconds
        rates[period][i] = rate
        notes += [f'period {period}, {case}: {line}' for line in other]
        rows.append(f'| {period} | {case} | {seconds:.1f} | {driver} | {n_late}{who} | '
                    f'{rate:.1f} | {_mixer_cell(stats)} |')
        print(f'  done: period {period}, {case}', file=sys.stderr, flush=True)
  print('| period | case | seconds | driver xruns | client-late xruns (which client) | '
        'xruns per minute | mixer late results |\n|---|---|---|---|---|---|---|')
  print('\n'.join(rows))
  for note in notes:
    print(f'other jackd line about xruns: {note}')
  summary = []
  for period in periods:
    floor = {i: r for i, r in rates[period].items() if i < 3}
    best = min(floor, key=floor.get) if floor else None
    text = (f'floor {floor[best]:.1f} xruns/min ({CASES[best]})' if best is not None
            else 'no floor (cases 0-2 failed or not run)')
    for i, label in ((3, 'mixer (C callback)'), (4, 'mixer (Python callback)')):
      mixer = rates[period].get(i)
      text += (f', {label} {mixer:.1f} xruns/min' if mixer is not None
               else f', {label} failed' if i in cases else f', {label} not run')
    summary.append(f'period {period}: {text}')
  load = ', '.join(f'{x:.1f}' for x in os.getloadavg())
  print('; '.join(summary) + f' (load average now {load})')


if __name__ == '__main__':
  main()
