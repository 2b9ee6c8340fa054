"""The engineer's interfaces: text commands, the OSC server and the `rich` terminal meters.

Commands and OSC addresses are read from the control table
(`controls.CONTROLS`): both end in `Controls.set`, which checks every value, so
the terminal and a control surface act identically and a refused value (wrong
type, NaN, out of range) is one log line with the previous value kept. The
OSC address space is listed in docs/live.md and in `osc_help()`.
"""

import logging
import threading

from alm_jax.live import controls as controls_lib


def command_help() -> str:
  parts = []
  for c in controls_lib.CONTROLS:
    n = ' N' if c.per_channel else ''
    if c.kind == 'bool':
      parts.append(f'{c.key}{n} ({c.name} toggle)')
    else:
      parts.append(f'{c.key}{n} DB{"|off" if c.kind == "db_or_off" else ""} ({c.name})')
  return 'commands: ' + ' | '.join(parts) + ' | q (quit)'


def osc_help() -> str:
  lines = [f'{c.osc:<22} {c.describe_value():<28} {c.effect}' for c in controls_lib.CONTROLS]
  lines.append(f'{"/alm/status":<22} {"":<28} replies /alm/status s (JSON of controls and meters) '
               "to the sender's port")
  return '\n'.join(lines)


COMMAND_HELP = command_help()
OSC_HELP = osc_help()


def apply_command(controls, text: str) -> str:
  """Runs one terminal command (see COMMAND_HELP); returns a message for the UI.

  `KEY [N] VALUE`: a per-channel control takes the channel (from 1) first; a
  per-channel on/off control with no value toggles. A refused command changes
  nothing and is logged (one line).
  """
  parts = text.strip().split()
  if not parts:
    return ''
  cmd, args = parts[0].lower(), parts[1:]
  ctl = controls_lib.BY_KEY.get(cmd)
  if ctl is None:
    return f'unknown command {cmd!r}; {COMMAND_HELP}'
  try:
    ch = None
    if ctl.per_channel:
      if not args:
        raise controls_lib.ControlError(f'{ctl.name}: give a channel number')
      try:
        number = int(args[0])
      except ValueError:
        raise controls_lib.ControlError(f'{args[0]!r} is not a channel number') from None
      ch = controls.channel(number - 1)
      args = args[1:]
    if len(args) > 1:
      raise controls_lib.ControlError(f'{ctl.name}: one value, got {" ".join(args)!r}')
    if args:
      value = ctl.parse(args[0])
    elif ctl.kind == 'bool' and ctl.per_channel:
      value = not controls.get(ctl.name, ch)
    else:
      raise controls_lib.ControlError(f'{ctl.name}: give a value')
    controls.set(ctl.name, value, ch)
  except controls_lib.ControlError as e:
    message = f'refused {text.strip()!r}: {e}; kept the previous value'
    logging.warning('terminal: %s', message)
    return f'{message}; {COMMAND_HELP}'
  return f'ok: {text.strip()}'


def apply_osc(controls, address: str, args) -> str:
  """Puts an OSC control message in force; ControlError for a refused one. Returns the control's name."""
  parts = address.strip('/').split('/')
  ch, off = None, False
  if parts[-1:] == ['off']:
    parts, off = parts[:-1], True
  if parts[:2] == ['alm', 'ch'] and len(parts) == 4:
    try:
      ch = int(parts[2]) - 1
    except ValueError:
      raise controls_lib.ControlError(f'{parts[2]!r} is not a channel number') from None
    name, per_channel = parts[3], True
  elif parts[:1] == ['alm'] and len(parts) == 2:
    name, per_channel = parts[1], False
  else:
    raise controls_lib.ControlError('unknown address')
  ctl = controls_lib.BY_NAME.get(name)
  if ctl is None or ctl.per_channel != per_channel or (off and ctl.kind != 'db_or_off'):
    raise controls_lib.ControlError('unknown address')
  if off:
    if args:
      raise controls_lib.ControlError(f'{address} takes no value')
    value = None
  else:
    if len(args) != 1:
      raise controls_lib.ControlError(f'{address} takes one value, got {len(args)}')
    value = args[0]
    if value is None:  # an OSC nil is not 'off': that is the /off address
      raise controls_lib.ControlError(f'{ctl.name}: nil is not a value')
  if ch is not None:
    ch = controls.channel(ch)
  controls.set(ctl.name, value, ch)
  return ctl.name


def osc_handler(controls, status_fn):
  """An OSC default handler: address + args -> `Controls.set`; refused messages are logged (one line)."""

  def handle(client_address, address, *args):
    try:
      if address.rstrip('/') == '/alm/status':
        from pythonosc import udp_client  # pylint: disable=g-import-not-at-top
        udp_client.SimpleUDPClient(*client_address).send_message('/alm/status', status_fn())
        return
      apply_osc(controls, address, args)
    except controls_lib.ControlError as e:
      logging.warning('OSC %s %s refused (%s); previous value kept; addresses: docs/live.md',
                      address, list(args), e)
    except Exception as e:  # pylint: disable=broad-except  (a control surface never stops the show)
      logging.warning('OSC %s %s refused (%r); addresses: docs/live.md', address, list(args), e)

  return handle


def start_osc(controls, status_fn, host: str, port: int):
  """Serves OSC on host:port in a daemon thread; returns the server (call .shutdown()).

  One thread handles the messages in the order they arrive, so a fader's last
  position is the one in force. It is normally scheduled, unlike the audio
  threads: given SCHED_FIFO it put the worker's p99 from 4.5 to 16 ms in the
  16-channel soak (bench/live_soak.py, 20 messages a second).
  """
  from pythonosc import dispatcher as dispatcher_lib  # pylint: disable=g-import-not-at-top
  from pythonosc import osc_server  # pylint: disable=g-import-not-at-top
  disp = dispatcher_lib.Dispatcher()
  disp.set_default_handler(osc_handler(controls, status_fn), needs_reply_address=True)
  server = osc_server.BlockingOSCUDPServer((host, port), disp)
  threading.Thread(target=server.serve_forever, name='alm-live-osc', daemon=True).start()
  logging.info('OSC on %s:%d', *server.server_address)
  return server


def pan_text(pan: float) -> str:
  """A pan (-1 left ... +1 right) as a console shows it: 'L 40', 'C', 'R100'."""
  if abs(pan) < 0.005:
    return 'C'
  return f'{"L" if pan < 0 else "R"}{abs(pan) * 100:3.0f}'


def meter_table(live):
  """A rich renderable of the meters of a `__main__.LiveMixer` (a pan column on a stereo engine)."""
  from rich.table import Table  # pylint: disable=g-import-not-at-top
  eng, worker, ctl = live.engine, live.worker, live.controls
  table = Table(title=f'alm_jax.live  {live.driver.message}', expand=False)
  cols = ('ch', 'name', 'input dBFS', 'pred dB', 'applied dB') + (
      ('pan',) if eng.stereo else ()) + ('weight', 'state')
  for col in cols:
    table.add_column(col, justify='right' if 'dB' in col or col in ('weight', 'pan') else 'left')
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
    pan = (pan_text(float(worker.pans[ch])),) if eng.stereo else ()
    table.add_row(str(ch + 1), live.names[ch], f'{worker.levels_db[ch]:6.1f} {bar:<20}',
                  f'{pred[ch]:+6.1f}', f'{applied[ch]:+6.1f}', *pan, f'{ctl.weight_db[ch]:+.1f}',
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
