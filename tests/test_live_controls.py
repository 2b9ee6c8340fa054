"""Every live control, from the table (`controls.CONTROLS`), driven with any value through the engine, OSC and the terminal.

Property-based (hypothesis): random sequences of control messages, values of
every type (NaN, Inf, out of range, strings, bools, nil, wrong channels), are
applied; an independent oracle written here from the table's declared type and
range says which must be accepted. A refused value must leave every control as
it was, and after any sequence the audio callback (C where built, and Python)
and the worker's rule still give finite gains within the ceiling, a mix within
the limiter and muted channels silent. The OSC cases go through a real UDP
socket to the OSC server and read the state back with /alm/status.
"""

import json
import math
import os
import socket

import hypothesis
from hypothesis import strategies as st
import numpy as np
import pytest

from alm_jax.live import controls as controls_lib
from alm_jax.live import engine as engine_lib
from alm_jax.live import native as native_lib
from alm_jax.live import ui

C, F2 = 4, 100
NAMES = [c.name for c in controls_lib.CONTROLS]
SETTINGS = hypothesis.settings(max_examples=150, deadline=None,
                               suppress_health_check=[hypothesis.HealthCheck.too_slow])

# Values of every kind a control surface or a typo can produce.
ANY_VALUE = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32), st.integers(-200, 200),
    st.integers(-2**31, 2**31 - 1), st.booleans(), st.none(), st.text(max_size=4),
    st.sampled_from([0, 1, 0.0, 1.0, 0.5, -0.0, 'no', 'yes', 'off', 'nan']))


def oracle(ctl, value):
  """(accepted, stored value) for `ctl` and `value`, from the table's type and range only."""
  is_number = isinstance(value, (int, float)) and not isinstance(value, bool)
  if ctl.kind == 'bool':
    if isinstance(value, bool):
      return True, value
    if is_number and not math.isnan(value) and value in (0, 1):
      return True, bool(value)
    return False, None
  if value is None:
    return ctl.kind == 'db_or_off', None
  if is_number and math.isfinite(value) and ctl.lo <= value <= ctl.hi:
    return True, float(value)
  return False, None


def _engines(ctl_pair):
  out = []
  for native, ctl in zip((False, True), ctl_pair):
    if native and not native_lib.available():
      continue
    out.append(engine_lib.Engine(C, F2, ctl, initial_gain=0.5, sample_rate=44100, native=native,
                                 ring_seconds=0.0))
  return out


def check_engine_invariants(engines, rng):
  """One worker frame and one callback period per engine: finite, within ceiling and limiter, mutes silent."""
  for eng in engines:
    ctl = eng.controls
    pred = rng.uniform(0.0, 100.0, C).astype(np.float32)
    pred[rng.integers(0, C)] = np.nan
    prev = rng.uniform(0.0, 4.0, C).astype(np.float32)
    g = ctl.apply(pred, prev, np.zeros(C, bool), False)
    assert np.isfinite(g).all() and (g >= 0).all()
    assert (g <= 10 ** (ctl.ceiling_db / 20) * (1 + 1e-6)).all()
    assert (g[ctl.mute] == 0).all()
    # A period that ends on an F2 boundary: the next one loads a new frame's gains, with the
    # controls' callback values as they are now.
    n = F2 - eng.written % F2
    eng.publish(eng.written // F2, g)
    x = (rng.standard_normal((C, n)) * 0.5).astype(np.float32)
    mix = np.zeros(n, np.float32)
    eng.process(list(x), mix)
    assert np.isfinite(mix).all()
    # The callback's own view of the controls: mutes silent, master as set.
    assert (eng.chan_mult == np.where(ctl.mute, 0.0, 1.0)).all()
    assert eng.master == pytest.approx(10 ** (ctl.master_db / 20), rel=1e-12)
    want = 10 ** (ctl.master_db / 20) * (eng.applied * eng.chan_mult).astype(np.float64) @ x
    if ctl.limit_db is None:
      assert eng.limit == math.inf
      # Off: no new reduction; one still releasing (200 ms) from when it was on carries on.
      assert 0 < eng.limiter_gain <= 1
      want = want * eng.limiter_gain
      np.testing.assert_allclose(mix, want, rtol=1e-4, atol=1e-5 * np.abs(want).max() + 1e-30)
    else:
      assert np.abs(mix).max() <= 10 ** (ctl.limit_db / 20) * (1 + 1e-5)


OPS = st.lists(st.tuples(st.sampled_from(NAMES), st.integers(-1, C + 1), ANY_VALUE),
               min_size=1, max_size=12)


@SETTINGS
@hypothesis.given(ops=OPS, seed=st.integers(0, 2**16))
def test_every_control_through_the_engine(ops, seed):
  pair = (controls_lib.Controls(C), controls_lib.Controls(C))
  engines = _engines(pair)
  model = pair[0].snapshot()
  for name, ch, value in ops:
    ctl = controls_lib.BY_NAME[name]
    ok, stored = oracle(ctl, value)
    ch_arg = ch if ctl.per_channel else None
    ok = ok and (not ctl.per_channel or 0 <= ch < C)
    for controls in pair:
      before = controls.snapshot()
      if ok:
        assert controls.set(name, value, ch_arg) == stored
      else:
        with pytest.raises(controls_lib.ControlError):
          controls.set(name, value, ch_arg)
        assert controls.snapshot() == before, 'a refused value changed a control'
    if ok:
      if ctl.per_channel:
        model[name][ch] = stored
      else:
        model[name] = stored
    assert pair[0].snapshot() == model
  check_engine_invariants(engines, np.random.default_rng(seed))
  if len(engines) == 2:  # the C and the Python callback read the same control values
    np.testing.assert_array_equal(engines[0].values[5:], engines[1].values[5:])


def test_the_issue_cases_are_refused_and_the_show_goes_on():
  ctl = controls_lib.Controls(C)
  eng = engine_lib.Engine(C, F2, ctl, sample_rate=44100, native=native_lib.available())
  for name, ch, value in [('ceiling', None, float('nan')), ('master', None, float('nan')),
                          ('mute', 0, 'no'), ('limit', None, float('inf')), ('slew', None, -1.0),
                          ('weight', 0, True), ('override', 9, -6.0)]:
    with pytest.raises(controls_lib.ControlError):
      ctl.set(name, value, ch)
  assert ctl.snapshot() == controls_lib.Controls(C).snapshot()
  check_engine_invariants([eng], np.random.default_rng(0))
  with pytest.raises(controls_lib.ControlError, match='finite'):
    controls_lib.Controls(C, ceiling_db=float('nan'))


# ---- OSC: a real UDP socket to the server ----

class OscProbe:
  """Sends OSC messages from one UDP socket and reads the /alm/status reply to that socket."""

  def __init__(self, server_address):
    self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    self.sock.bind(('127.0.0.1', 0))
    self.sock.settimeout(5.0)
    self.server = server_address

  def send(self, address, args):
    from pythonosc import osc_message_builder  # pylint: disable=g-import-not-at-top
    b = osc_message_builder.OscMessageBuilder(address=address)
    for a in args:
      b.add_arg(a)
    self.sock.sendto(b.build().dgram, self.server)

  def status(self) -> dict:
    """The server's state once every message sent before is handled (one handler thread, in order)."""
    from pythonosc import osc_message  # pylint: disable=g-import-not-at-top
    self.send('/alm/status', [])
    msg = osc_message.OscMessage(self.sock.recv(65536))
    assert msg.address == '/alm/status'
    return json.loads(msg.params[0])

  def close(self):
    self.sock.close()


@pytest.fixture(scope='module')
def osc():
  pytest.importorskip('pythonosc', reason='python-osc is not installed (pip install python-osc)')
  ctl = controls_lib.Controls(C)
  eng = engine_lib.Engine(C, F2, ctl, sample_rate=44100, native=native_lib.available())
  server = ui.start_osc(ctl, lambda: json.dumps({'controls': ctl.snapshot()}), '127.0.0.1', 0)
  probe = OscProbe(server.server_address)
  yield ctl, eng, probe
  probe.close()
  server.shutdown()


def _osc_args(ctl, value):
  """What a surface sends for `value` (floats go as OSC float32) and what the server receives."""
  if isinstance(value, float):
    value = float(np.float32(value))
  return value


MESSAGE = st.tuples(st.sampled_from(NAMES), st.integers(-1, C + 1), ANY_VALUE,
                    st.sampled_from(['value', 'off', 'none', 'two', 'bad_address']))


@SETTINGS
@hypothesis.given(messages=st.lists(MESSAGE, min_size=1, max_size=6))
def test_every_control_through_osc(osc, messages):
  ctl, eng, probe = osc
  model = probe.status()['controls']
  for name, ch, value, form in messages:
    c = controls_lib.BY_NAME[name]
    value = _osc_args(c, value)
    address = f'/alm/ch/{ch + 1}/{name}' if c.per_channel else f'/alm/{name}'
    ok, stored = oracle(c, value)
    if value is None:
      ok = False  # OSC nil is not 'off': only the /off address is
    args = [value] if value is not None else [None]
    if form == 'off':
      address += '/off'
      args = []
      ok, stored = c.kind == 'db_or_off', None
    elif form == 'none':
      args, ok = [], False
    elif form == 'two':
      args, ok = [value, value] if value is not None else [1, 1], False
    elif form == 'bad_address':
      address, ok = address.replace('/alm/', '/alm/x/'), False
    ok = ok and (not c.per_channel or 0 <= ch < C)
    if isinstance(value, str) and '\x00' in value:
      continue  # not representable in an OSC string
    probe.send(address, args)
    if ok:
      if c.per_channel:
        model[name][ch] = stored
      else:
        model[name] = stored
  got = probe.status()['controls']
  assert got == model
  check_engine_invariants([eng], np.random.default_rng(len(messages)))


def test_osc_issue_cases(osc):
  ctl, _, probe = osc
  probe.send('/alm/ceiling', [3.0])
  probe.send('/alm/master', [-2.0])
  probe.send('/alm/ch/1/mute', [0])
  before = probe.status()['controls']
  for address, args in [('/alm/ceiling', [float('nan')]), ('/alm/master', [float('nan')]),
                        ('/alm/ch/1/mute', ['no']), ('/alm/master', [float('inf')]),
                        ('/alm/ch/99/mute', [1]), ('/alm/ch/x/mute', [1]), ('/alm/limit', []),
                        ('/alm/nonsense', [1])]:
    probe.send(address, args)
  assert probe.status()['controls'] == before
  assert ctl.ceiling_db == 3.0 and ctl.master_db == -2.0 and not ctl.mute[0]


# ---- the terminal ----

WORD = st.one_of(st.floats(allow_nan=True, allow_infinity=True).map(repr),
                 st.integers(-200, 200).map(str),
                 st.sampled_from(['on', 'off', 'nan', 'inf', '-inf', 'no', '1e400', '', '0', '1']))


@SETTINGS
@hypothesis.given(ops=st.lists(st.tuples(st.sampled_from(NAMES), st.integers(-1, C + 1), WORD),
                               min_size=1, max_size=8))
def test_every_control_through_the_terminal(ops):
  ctl = controls_lib.Controls(C)
  for name, ch, word in ops:
    c = controls_lib.BY_NAME[name]
    before = ctl.snapshot()
    text = f'{c.key} {ch + 1} {word}' if c.per_channel else f'{c.key} {word}'
    lw = word.strip().lower()
    if c.kind == 'bool':
      toggles = {'on': True, '1': True, 'off': False, '0': False}
      ok, stored = (lw in toggles or lw == ''), toggles.get(lw)
      if lw == '' and 0 <= ch < C:
        stored = not before[name][ch]
    elif c.kind == 'db_or_off' and lw == 'off':
      ok, stored = True, None
    else:
      try:
        ok, stored = oracle(c, float(lw))
      except ValueError:
        ok, stored = False, None
      if lw == '' and not c.per_channel:
        ok = False
    ok = ok and (not c.per_channel or 0 <= ch < C)
    if lw == '' and c.kind != 'bool':
      ok = False
    reply = ui.apply_command(ctl, text)
    assert reply.startswith('ok') == ok, (text, reply)
    after = ctl.snapshot()
    if ok:
      if c.per_channel:
        before[name][ch] = stored
      else:
        before[name] = stored
    assert after == before, text


def test_docs_controls_table_is_the_table():
  docs = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'docs',
                      'live.md')
  with open(docs, encoding='utf-8') as fh:
    text = fh.read()
  assert controls_lib.markdown_table() in text, (
      'docs/live.md\'s controls table differs from controls.CONTROLS; paste '
      'python -c "from alm_jax.live import controls; print(controls.markdown_table())"')


def test_a_mute_acts_from_the_next_period_inside_a_frame():
  pair = (controls_lib.Controls(C, limit_db=None), controls_lib.Controls(C, limit_db=None))
  for eng in _engines(pair):
    x = np.ones((C, 32), np.float32)
    mix = np.zeros(32, np.float32)
    eng.process(list(x), mix)  # F2 frame 0: the initial gain, 0.5
    assert mix[0] == pytest.approx(C * 0.5)
    eng.controls.set('mute', True, 1)
    eng.process(list(x), mix)  # samples 32..63: still F2 frame 0
    assert eng.written < F2 and mix[0] == pytest.approx((C - 1) * 0.5), eng.callback
