"""The live mixer's control surfaces: terminal commands and the OSC address space (docs/live.md)."""

import time

import numpy as np
import pytest

from alm_jax.live import controls as controls_lib
from alm_jax.live import ui


def _wait(predicate, timeout=5.0):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline and not predicate():
    time.sleep(0.01)
  return predicate()


def test_terminal_commands():
  ctl = controls_lib.Controls(4)
  assert ui.apply_command(ctl, 'm 2').startswith('ok')
  assert ctl.mute.tolist() == [False, True, False, False]
  ui.apply_command(ctl, 'o 3 -6')
  assert ctl.override[2] and np.isclose(ctl.override_gain[2], 10 ** (-6 / 20))
  ui.apply_command(ctl, 'o 3 off')
  assert not ctl.override[2]
  ui.apply_command(ctl, 'w 1 4.5')
  ui.apply_command(ctl, 'a 4')
  ui.apply_command(ctl, 'master -3')
  ui.apply_command(ctl, 'ceiling 3')
  ui.apply_command(ctl, 'slew 2')
  ui.apply_command(ctl, 'limit off')
  assert ctl.weight_db[0] == 4.5 and not ctl.auto[3] and ctl.master_db == -3.0
  assert (ctl.ceiling_db, ctl.slew_db, ctl.limit_db) == (3.0, 2.0, None)
  assert 'does not exist' in ui.apply_command(ctl, 'm 9')
  assert 'unknown command' in ui.apply_command(ctl, 'zap')


def test_osc_address_space():
  udp_client = pytest.importorskip('pythonosc.udp_client', reason='python-osc is not installed')
  ctl = controls_lib.Controls(4)
  server = ui.start_osc(ctl, lambda: '{"ok": 1}', '127.0.0.1', 0)
  try:
    client = udp_client.SimpleUDPClient(*server.server_address)
    client.send_message('/alm/ch/2/mute', 1)
    client.send_message('/alm/ch/3/override', -12.0)
    client.send_message('/alm/ch/1/weight', 3.0)
    client.send_message('/alm/ch/4/auto', 0)
    client.send_message('/alm/master', -2.0)
    client.send_message('/alm/ceiling', 6.0)
    client.send_message('/alm/slew', 1.5)
    client.send_message('/alm/limit', -3.0)
    client.send_message('/alm/nonsense', 1)  # logged and ignored
    assert _wait(lambda: ctl.limit_db == -3.0)
    assert ctl.mute[1] and ctl.override[2] and np.isclose(ctl.override_gain[2], 10 ** (-12 / 20))
    assert ctl.weight_db[0] == 3.0 and not ctl.auto[3] and ctl.master_db == -2.0
    assert (ctl.ceiling_db, ctl.slew_db) == (6.0, 1.5)
    client.send_message('/alm/ch/3/override/off', [])
    client.send_message('/alm/limit/off', [])
    assert _wait(lambda: ctl.limit_db is None and not ctl.override[2])
  finally:
    server.shutdown()


def test_meter_table_renders_states():
  rich_console = pytest.importorskip('rich.console', reason='rich is not installed')
  import types  # pylint: disable=g-import-not-at-top
  from alm_jax.live import engine as engine_lib  # pylint: disable=g-import-not-at-top
  ctl = controls_lib.Controls(3)
  eng = engine_lib.Engine(3, 2205, ctl)
  worker = engine_lib.Worker(eng, types.SimpleNamespace(initial_gain=1.0))
  worker.held[2] = True
  ctl.set('mute', ch=0, value=True)
  ctl.set('override', ch=1, value=-6.0)
  live = types.SimpleNamespace(engine=eng, worker=worker, controls=ctl, names=['kick', 'bass', 'vox'],
                               driver=types.SimpleNamespace(message='JACK: test', xruns=0),
                               last_message='')
  console = rich_console.Console(record=True, width=200)
  console.print(ui.meter_table(live))
  text = console.export_text()
  for word in ('kick', 'MUTE', 'OVR -6.0', 'FAULT HELD', 'late 0', 'xruns 0'):
    assert word in text, text


def test_meter_table_shows_the_pans_of_a_stereo_engine():
  rich_console = pytest.importorskip('rich.console', reason='rich is not installed')
  import types  # pylint: disable=g-import-not-at-top
  from alm_jax.live import engine as engine_lib  # pylint: disable=g-import-not-at-top
  ctl = controls_lib.Controls(3)
  live = {}
  for stereo in (False, True):
    eng = engine_lib.Engine(3, 2205, ctl, stereo=stereo)
    worker = engine_lib.Worker(eng, types.SimpleNamespace(initial_gain=1.0))
    worker.pans[:] = [-0.4, 0.0, 1.0]
    live[stereo] = types.SimpleNamespace(
        engine=eng, worker=worker, controls=ctl, names=['kick', 'hats', 'pad'],
        driver=types.SimpleNamespace(message='JACK: test', xruns=0), last_message='')
  texts = {}
  for stereo, lv in live.items():
    console = rich_console.Console(record=True, width=200)
    console.print(ui.meter_table(lv))
    texts[stereo] = console.export_text()
  for word in ('pan', 'L 40', 'R100'):
    assert word in texts[True] and word not in texts[False], texts
  assert [ui.pan_text(p) for p in (-1.0, -0.001, 0.25)] == ['L100', 'C', 'R 25']
