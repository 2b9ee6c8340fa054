"""`python -m alm_jax.live`: mix an interface's channels live through JACK (or a folder of files).

    python -m alm_jax.live --checkpoint=/path/to/alm_mr --inputs=1-8 --output=1,2   # stereo
    python -m alm_jax.live --checkpoint=pretrained:alm_mr_stereo --inputs=1-8 --output=1,2
    python -m alm_jax.live --checkpoint=DIR --play=song_dir/ --no_jack --record=show/

See docs/live.md for the controls, the OSC addresses, fault behaviour and latency.
"""

import os

if 'xla_cpu_multi_thread_eigen' not in os.environ.get('XLA_FLAGS', ''):
  # Read when XLA's CPU backend starts, so before JAX is imported: one small
  # step per frame gains nothing from Eigen's (normally scheduled) helper
  # threads, and on a busy machine they delay it. Each step then runs on the
  # worker's own real-time thread (with async dispatch off, in main()).
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                             ' --xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1')

import logging  # pylint: disable=g-import-not-at-top,wrong-import-position
import math
import signal
import sys
import threading
import time

from absl import app as absl_app
from absl import flags
import jax
import numpy as np

from alm_jax import cli
from alm_jax import frames
from alm_jax import restore
from alm_jax.live import app as app_lib
from alm_jax.live import controls as controls_lib
from alm_jax.live import drivers
from alm_jax.live import engine as engine_lib
from alm_jax.live import ui

FLAGS = flags.FLAGS
restore.define_checkpoint_flag(FLAGS)
flags.DEFINE_string('inputs', '', "Capture ports feeding the channels: '1-8' (system:capture_N) or "
                    'full port names, comma separated. Empty: no connections (--channels ports).')
flags.DEFINE_integer('channels', 0, lower_bound=0, help='Input channels when --inputs/--play do not say (default 8).')
flags.DEFINE_string('output', '', "Where the mix goes: '1,2' (system:playback_1 and _2) or two "
                    "port names: stereo, left and right (a stereo model's pans; a mono model's "
                    "mix at the centre); one: a mono mix; empty: no connection, stereo if the "
                    'model pans.')
flags.DEFINE_bool('channel_outputs', False, 'Also output each gained channel (out_XX ports).')
flags.DEFINE_string('server', None, 'JACK server name (default: $JACK_DEFAULT_SERVER or default).')
flags.DEFINE_string('name', 'alm_live', 'JACK client name.')
flags.DEFINE_string('record', None, 'Record inputs, mix and gains.csv into a new numbered take in '
                    'this folder (DIR/take-001, take-002, ...; an earlier take is never touched).')
flags.DEFINE_bool('overwrite', False, 'With --record=DIR: record into DIR itself, replacing the one '
                  'recording it holds (refused for any other folder).')
flags.DEFINE_string('play', None, 'Feed the mixer from this folder of channel files.')
flags.DEFINE_bool('no_jack', False, 'With --play: no JACK at all, the files are fed at real-time pace.')
flags.DEFINE_integer('period', 128, lower_bound=1, upper_bound=engine_lib.MAX_PERIOD,
                     help='Samples per period with --no_jack.')
flags.DEFINE_float('play_delay', 0.5, lower_bound=0.0, upper_bound=3600.0,
                   help='Seconds between the mixer starting and --play starting.')
flags.DEFINE_float('duration', 0.0, lower_bound=0.0, help='Stop after this many seconds (0: with '
                   '--play, at its end + 1 s; else run until Ctrl-C).')
flags.DEFINE_integer('gain_delay', 1, lower_bound=1, upper_bound=engine_lib.NUM_SLOTS - 2,
                     help='F2 frames of compute time the worker gets (docs/live.md).')
flags.DEFINE_enum('fault', 'hold', ['hold', 'mute'], 'A channel with NaN/Inf/absurd input keeps '
                  'its last good gain (hold) or is muted, until clean for one F1 frame.')
flags.DEFINE_float('absurd_db', 40.0, lower_bound=-60.0, upper_bound=200.0,
                   help='A frame peaking above this (dBFS) counts as a fault.')
flags.DEFINE_integer('osc_port', 9000, lower_bound=0, upper_bound=65535,
                     help='OSC control port on --osc_host (0: no OSC).')
flags.DEFINE_string('osc_host', '127.0.0.1', 'OSC listening address.')
flags.DEFINE_integer('rt_priority', 2, lower_bound=0, upper_bound=98, help='SCHED_FIFO priority of the worker (other Python threads: 1), '
                     'below the JACK client threads\' (0: normal scheduling; needs rtprio rights).')
flags.DEFINE_float('switch_interval_ms', 0.5, lower_bound=0.01, upper_bound=1000.0,
                   help="Python's thread switch interval (sys.setswitchinterval).")
flags.DEFINE_enum('callback', 'auto', app_lib.CALLBACKS, "The audio callback: 'native' (C, never "
                  "takes the GIL; built by pip install), 'python', or 'auto' (native if built).")
flags.DEFINE_enum('ui', 'auto', ['auto', 'on', 'off'], 'Terminal meters (auto: when stdout is a tty).')


def _define_control_flags():
  """The start value of each global control of the table that names a flag, checked by the table."""
  for ctl in controls_lib.CONTROLS:
    if not ctl.flag:
      continue
    text = f'{ctl.effect[:1].upper()}{ctl.effect[1:]}; {ctl.lo:g}..{ctl.hi:g} dB'
    if ctl.kind == 'db_or_off':
      flags.DEFINE_string(ctl.flag, 'off' if ctl.default is None else f'{ctl.default:g}',
                          text + " or 'off'.")
      checker = ctl.parse
    else:
      flags.DEFINE_float(ctl.flag, ctl.default, text + '.')
      checker = ctl.check

    def validate(value, checker=checker):
      try:
        checker(value)
      except controls_lib.ControlError as e:
        raise flags.ValidationError(f'{e}; see docs/live.md, "Controls"') from None
      return True

    flags.register_validator(ctl.flag, validate)


def _check_finite(name):
  # absl's bounds let NaN through (every comparison with it is false).
  flags.register_validator(name, lambda v: v is None or math.isfinite(v),
                           f'--{name} must be a finite number')


def _output_ports(value: str) -> list[str]:
  return drivers.parse_ports(value, 'system:playback_') if value else []


def _check_output(value):
  try:
    app_lib.mix_outputs(_output_ports(value))
  except ValueError as e:
    if str(e).startswith('--output'):
      raise flags.ValidationError(str(e)) from None
    raise flags.ValidationError(f"--output={value} is not port numbers ('1,2': system:playback_1 "
                                "and _2) or port names ('system:playback_1,system:playback_2')"
                                ) from None
  return True


flags.register_validator('output', _check_output)
_define_control_flags()
for _name in ('play_delay', 'duration', 'absurd_db', 'switch_interval_ms'):
  _check_finite(_name)


def _build(loaded):
  config = loaded.config
  sr = int(config.model.sample_rate)
  song, names = None, None
  sources = drivers.parse_ports(FLAGS.inputs, 'system:capture_') if FLAGS.inputs else []
  channels = FLAGS.channels or len(sources) or 0
  if FLAGS.play:
    max_c = int(config.model.get('max_channels', None) or 64)
    song, names = drivers.load_song_dir(FLAGS.play, max_c, sr)  # [max_c, n], silent beyond names
    channels = channels or len(names)
    song = song[:channels]  # --channels=N: the song's first N channels (or silent ones added)
  channels = channels or 8
  names = (list(names or []) + [str(i + 1) for i in range(channels)])[:channels]
  start = {}
  for c in controls_lib.CONTROLS:
    if c.flag:
      value = FLAGS[c.flag].value
      start[c.attr] = c.parse(value) if isinstance(value, str) else c.check(value)
  ctl = controls_lib.Controls(channels, **start)
  live = app_lib.LiveMixer(loaded, channels, names=names, controls=ctl,
                           gain_delay=FLAGS.gain_delay, fault=FLAGS.fault,
                           absurd_db=FLAGS.absurd_db, record=FLAGS.record,
                           channel_outputs=FLAGS.channel_outputs,
                           info={'checkpoint': str(FLAGS.checkpoint), 'play': FLAGS.play},
                           rt_priority=FLAGS.rt_priority, callback=FLAGS.callback,
                           overwrite=FLAGS.overwrite, inputs=[FLAGS.play] if FLAGS.play else [],
                           stereo=app_lib.mix_outputs(_output_ports(FLAGS.output)))
  return live, song, sources


def main(argv):
  del argv
  logging.getLogger().setLevel(logging.INFO)
  # The audio callback needs the GIL: another thread holding it is asked to
  # let go after this interval (docs/live.md, "Real-time and the GIL").
  sys.setswitchinterval(FLAGS.switch_interval_ms * 1e-3)
  # The worker runs each step on its own (real-time) thread instead of XLA's
  # normally scheduled dispatch threads, which a busy machine delays.
  jax.config.update('jax_cpu_enable_async_dispatch', False)
  if FLAGS.no_jack and not FLAGS.play:
    raise SystemExit('error: --no_jack needs --play=SONG_DIR (there is no other input).')
  server = FLAGS.server or os.environ.get('JACK_DEFAULT_SERVER')
  if not FLAGS.no_jack:
    try:  # before the checkpoint and the compile: no server is a second's answer, not a minute's
      drivers.check_jack_server(server)
    except drivers.JackUnavailable as e:
      raise SystemExit(f'error: {e}') from None
  loaded = restore.load_mixer(FLAGS.checkpoint)
  if FLAGS.no_jack:  # before the compile and the --record take: a period the mixer cannot mix
    f2 = frames.FrameSpec.from_config(loaded.config.model).f2
    try:
      drivers.check_period(f2, FLAGS.period, f'pass --period={drivers.largest_period(f2)} or less')
    except ValueError as e:
      raise SystemExit(f'error: --period={FLAGS.period}: {e}') from None
  try:
    live, song, sources = _build(loaded)
  except ValueError as e:  # a refused --record folder, --play song or channel count
    raise SystemExit('error: ' + ' '.join(str(e).split())) from None
  if live.record_dir is not None:
    logging.info('Recording to %s', live.record_dir)
  # After the compile (in _build): XLA's compile threads keep normal priority.
  engine_lib.set_realtime(max(FLAGS.rt_priority - 1, 0))
  stop = threading.Event()
  signal.signal(signal.SIGTERM, lambda *_: stop.set())
  player = None
  if FLAGS.no_jack:
    delay = int(FLAGS.play_delay * live.spec.sample_rate)
    song = np.pad(song, ((0, 0), (delay, 0)))
    driver = drivers.FileDriver(live.engine, song, period=FLAGS.period, pace=True,
                                tail=live.spec.sample_rate)
    driver.rt_priority = FLAGS.rt_priority
  else:
    dests = _output_ports(FLAGS.output)
    driver = drivers.JackDriver(live.engine, name=FLAGS.name, server=server,
                                sources=[] if song is not None else sources,
                                destinations=dests, channel_outputs=FLAGS.channel_outputs)
  try:
    live.start(driver)
  except Exception as e:  # pylint: disable=broad-except
    logging.error('%s', e)
    if not isinstance(driver, drivers.JackDriver):
      raise
    driver.message = f'JACK unavailable at start ({e}); retrying'
  if song is not None and not FLAGS.no_jack:
    if not app_lib.wait_for(lambda: driver.poll() or driver.connected, 10):
      live.stop()
      raise SystemExit(f'error: the JACK server went away at start ({driver.message}); start it '
                       'again (jackd -d dummy -r 44100, or jackd -d alsa ...) or use --no_jack.')
    player = drivers.JackPlayer(song, name=FLAGS.name + '_play', server=driver.server,
                                destinations=[p.name for p in driver.ins],
                                native=live.engine.native is not None)
    time.sleep(FLAGS.play_delay)  # silence first: other clients may connect to its ports
    player.start()
  osc = None
  if FLAGS.osc_port:
    try:
      osc = ui.start_osc(live.controls, live.status_json, FLAGS.osc_host, FLAGS.osc_port)
    except OSError as e:
      logging.error('OSC off: cannot listen on %s:%d (%s); pass another --osc_port.',
                    FLAGS.osc_host, FLAGS.osc_port, e)
  t0 = time.monotonic()

  def finished():
    if stop.is_set():
      return True
    if FLAGS.duration:
      return time.monotonic() - t0 >= FLAGS.duration
    if player is not None:
      return player.done and time.monotonic() - t0 > song.shape[1] / live.spec.sample_rate + 1
    if isinstance(driver, drivers.FileDriver):
      return driver.done.is_set()
    return False

  use_ui = FLAGS.ui == 'on' or (FLAGS.ui == 'auto' and sys.stdout.isatty())
  try:
    if use_ui:
      watcher = threading.Thread(target=lambda: (app_lib.wait_for(finished, 1e9), stop.set()),
                                 daemon=True)
      watcher.start()
      ui.run_terminal_ui(live, stop)
    else:
      last = 0.0
      while not finished():
        live.tick()
        if time.monotonic() - last > 5:
          last = time.monotonic()
          s = live.status()
          logging.info('late %d xruns %d callback max %.3f ms worker p99 %.2f ms cpu %.1f%% held %s',
                       s['late'], s['xruns'], s['callback_max_ms'], s['worker_p99_ms'],
                       100 * s['worker_cpu_share'], s['held'] or '-')
        time.sleep(0.1)
  except KeyboardInterrupt:
    logging.info('Ctrl-C: shutting down')
  finally:
    stop.set()
    if player is not None:
      player.close()
    if osc is not None:
      osc.shutdown()
    live.stop()
    s = live.status()
    print(f'alm_jax.live: {s["samples"] / live.spec.sample_rate:.1f} s mixed, late {s["late"]}, '
          f'xruns {s["xruns"]}, callback max {s["callback_max_ms"]:.3f} ms, worker p99 '
          f'{s["worker_p99_ms"]:.2f} ms' + (f', recorded to {live.record_dir}' if live.record_dir else ''))
    if getattr(driver, 'lost_a_server', False) or (player is not None and player.dead):
      # Everything is flushed and closed. libjack crashes tearing down the
      # clients a lost server left behind, so skip the interpreter's teardown.
      sys.stdout.flush()
      sys.stderr.flush()
      os._exit(0)


if __name__ == '__main__':
  cli.run(main)
