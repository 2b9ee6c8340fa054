"""The engineer's interfaces: text commands, the OSC server and the `rich` terminal meters.

All three end in `apply_command` or the `Controls` setters, so the terminal and
a control surface act identically. The OSC address space is listed in
docs/live.md and in `OSC_HELP`.
"""

import logging
import threading

from alm_jax.live import controls as controls_lib

COMMAND_HELP = ('commands: m N (mute toggle) | o N DB (override) | o N off | w N DB (weight) | '
                'a N (auto toggle) | master DB | ceiling DB | slew DB | limit DB|off | q (quit)')

OSC_HELP = """/alm/ch/N/mute i        1 mutes channel N (from 1), 0 unmutes
/alm/ch/N/override f    fixed gain in dB for channel N; /alm/ch/N/override/off returns it to the model
/alm/ch/N/weight f      dB offset on channel N's predicted gain
/alm/ch/N/auto i        0 freezes channel N at its applied gain, 1 resumes the model
/alm/master f           master gain, dB
/alm/ceiling f          gain ceiling for every channel, dB
/alm/slew f             slew limit, dB per F2 frame (0: off)
/alm/limit f            output limiter threshold, dBFS; /alm/limit/off disables it
/alm/status             replies /alm/status s (JSON of controls and meters) to the sender's port"""


def apply_command(controls, text: str) -> str:
  """Runs one terminal command (see COMMAND_HELP); returns a message for the UI."""
  parts = text.strip().split()
  if not parts:
    return ''
  cmd, args = parts[0].lower(), parts[1:]
  try:
    if cmd == 'm':
      ch = int(args[0]) - 1
      controls.set_mute(ch, not controls.mute[controls._check(ch)])  # pylint: disable=protected-access
    elif cmd == 'o':
      controls.set_override(int(args[0]) - 1, None if args[1] == 'off' else float(args[1]))
    elif cmd == 'w':
      controls.set_weight(int(args[0]) - 1, float(args[1]))
    elif cmd == 'a':
      ch = controls._check(int(args[0]) - 1)  # pylint: disable=protected-access
      controls.set_auto(ch, not controls.auto[ch])
    elif cmd == 'master':
      controls.set_master(float(args[0]))
    elif cmd == 'ceiling':
      controls.set_ceiling(float(args[0]))
    elif cmd == 'slew':
      controls.set_slew(float(args[0]))
    elif cmd == 'limit':
      controls.set_limit(None if args[0] == 'off' else float(args[0]))
    else:
      return f'unknown command {cmd!r}; {COMMAND_HELP}'
  except (IndexError, ValueError) as e:
    return f'bad command {text!r} ({e}); {COMMAND_HELP}'
  return f'ok: {text.strip()}'


def osc_handler(controls, status_fn):
  """An OSC default handler: address + args -> the matching setter (unknown addresses are logged)."""

  def handle(client_address, address, *args):
    parts = address.strip('/').split('/')
    try:
      if parts[:2] == ['alm', 'ch'] and len(parts) >= 4:
        ch, what = int(parts[2]) - 1, parts[3]
        if what == 'mute':
          controls.set_mute(ch, bool(args[0]))
        elif what == 'override':
          controls.set_override(ch, None if parts[4:] == ['off'] else float(args[0]))
        elif what == 'weight':
          controls.set_weight(ch, float(args[0]))
        elif what == 'auto':
          controls.set_auto(ch, bool(args[0]))
        else:
          raise ValueError(what)
      elif parts == ['alm', 'master']:
        controls.set_master(float(args[0]))
      elif parts == ['alm', 'ceiling']:
        controls.set_ceiling(float(args[0]))
      elif parts == ['alm', 'slew']:
        controls.set_slew(float(args[0]))
      elif parts == ['alm', 'limit']:
        controls.set_limit(float(args[0]))
      elif parts == ['alm', 'limit', 'off']:
        controls.set_limit(None)
      elif parts == ['alm', 'status']:
        from pythonosc import udp_client  # pylint: disable=g-import-not-at-top
        udp_client.SimpleUDPClient(*client_address).send_message('/alm/status', status_fn())
      else:
        raise ValueError('unknown address')
    except (IndexError, ValueError) as e:
      logging.warning('OSC %s %s ignored (%s); addresses: docs/live.md', address, args, e)

  return handle


def start_osc(controls, status_fn, host: str, port: int):
  """Serves OSC on host:port in a daemon thread; returns the server (call .shutdown())."""
  from pythonosc import dispatcher as dispatcher_lib  # pylint: disable=g-import-not-at-top
  from pythonosc import osc_server  # pylint: disable=g-import-not-at-top
  disp = dispatcher_lib.Dispatcher()
  disp.set_default_handler(osc_handler(controls, status_fn), needs_reply_address=True)
  server = osc_server.ThreadingOSCUDPServer((host, port), disp)
  threading.Thread(target=server.serve_forever, name='alm-live-osc', daemon=True).start()
  logging.info('OSC on %s:%d', *server.server_address)
  return server


def meter_table(live):
  """A rich renderable of the meters of a `__main__.LiveMixer`."""
  from rich.table import Table  # pylint: disable=g-import-not-at-top
  eng, worker, ctl = live.engine, live.worker, live.controls
  table = Table(title=f'alm_jax.live  {live.driver.message}', expand=False)
  for col in ('ch', 'name', 'input dBFS', 'pred dB', 'applied dB', 'weight', 'state'):
    table.add_column(col, justify='right' if 'dB' in col or col == 'weight' else 'left')
  pred = controls_lib.gain_to_db(worker.predicted)
  applied = controls_lib.gain_to_db(eng.applied * eng.chan_mult)
  for ch in range(eng.channels):
    state = []
    if ctl.mute[ch]:
      state.append('[red]MUTE[/]')
    if ctl.override[ch]:
      state.append(f'OVR {controls_lib.gain_to_db(ctl.override_gain[ch]):+.1f}')
    if not ctl.auto[ch]:
      state.append('FROZEN')
    if worker.held[ch]:
      state.append('[yellow]FAULT ' + ('MUTED' if worker.fault_mute else 'HELD') + '[/]')
    bar = '#' * int(max(0.0, min(20.0, (worker.levels_db[ch] + 60) / 3)))
    table.add_row(str(ch + 1), live.names[ch], f'{worker.levels_db[ch]:6.1f} {bar:<20}',
                  f'{pred[ch]:+6.1f}', f'{applied[ch]:+6.1f}', f'{ctl.weight_db[ch]:+.1f}',
                  ' '.join(state) or 'auto')
  table.caption = (
      f'mix {worker.mix_db:6.1f} dBFS  limiter {controls_lib.gain_to_db(eng.limiter_gain):+.1f} dB | '
      f'late {eng.late}  xruns {live.driver.xruns} | worker CPU {100 * worker.cpu_share:.1f}% '
      f'p99 {worker.p99_ms():.2f} ms | callback max {1e3 * eng.callback_max_s:.3f} ms | '
      f'master {ctl.master_db:+.1f} ceiling {ctl.ceiling_db:+.1f} slew {ctl.slew_db:g} dB/frame\n'
      f'{live.last_message}\n{COMMAND_HELP}')
  return table


def run_terminal_ui(live, stop: threading.Event, refresh_hz: float = 4.0):
  """Meters at refresh_hz, commands from stdin, until `stop` is set (by 'q', Ctrl-C or the main loop)."""
  from rich.live import Live  # pylint: disable=g-import-not-at-top

  def read_commands():
    while not stop.is_set():
      try:
        line = input()
      except EOFError:
        return
      if line.strip() in ('q', 'quit'):
        stop.set()
        return
      live.last_message = apply_command(live.controls, line)

  threading.Thread(target=read_commands, name='alm-live-stdin', daemon=True).start()
  with Live(meter_table(live), refresh_per_second=refresh_hz) as screen:
    while not stop.wait(1.0 / refresh_hz):
      live.tick()
      screen.update(meter_table(live))
