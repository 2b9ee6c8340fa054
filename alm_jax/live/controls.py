"""The engineer's controls, declared once (`CONTROLS`), and the safety limits between the model's gains and the PA.

Each `Control` entry says everything about one control: its value type and
range (`check`, the one validation every source goes through: flags, OSC and
the terminal), its default, its OSC address and terminal command, its start-up
flag, and how the engine applies it: a `stage` of the worker's per-frame rule
(`Controls.apply`) and/or a value the audio callback reads at once (`callback`:
per channel into `Engine.chan_mult`, globally into a slot of `Engine.values`
whose index `native.py` derives from this table). Adding a control is adding one
entry; docs/live.md's table is `markdown_table()`. `Controls` holds the values
as plain NumPy arrays and floats that the UI and OSC threads write (single
element or attribute stores, never torn) and the worker reads once per F2 frame.
A refused value raises `ControlError` and leaves the previous value in force.
"""

import dataclasses
import math
import numbers
from typing import Any, Callable

import numpy as np


def db_to_gain(db: float) -> float:
  return float(10.0 ** (db / 20.0))


def gain_to_db(gain, floor_db: float = -120.0):
  return 20.0 * np.log10(np.maximum(np.asarray(gain, np.float64), db_to_gain(floor_db)))


class ControlError(ValueError):
  """A control value refused (wrong type, not finite, out of range, no such channel or control)."""


KINDS = ('bool', 'db', 'db_or_off')


@dataclasses.dataclass(frozen=True)
class Control:
  """One live control.

  Attributes:
    name: the OSC address leaf and terminal name ('master' -> /alm/master).
    kind: 'bool' (on/off), 'db' (a number in [lo, hi]) or 'db_or_off' (the
      same, or None: off, sent as the /off address or the word 'off').
    per_channel: one value per channel (/alm/ch/N/name, terminal 'key N ...').
    default: the start value (per channel: every channel's).
    attr: the `Controls` attribute holding the value(s).
    key: the terminal command; a per-channel bool with no value toggles.
    effect: what it does (the docs table, help).
    lo, hi: the accepted range, dB (db kinds).
    flag: the start-up flag setting it (global controls), e.g. 'ceiling_db'.
    stage: (controls, g [c], frame) -> g: the worker's rule, run in `order`
      with the fault stages (FAULT_HOLD_ORDER, FAULT_MUTE_ORDER).
    callback: value -> float the audio callback reads: per channel a factor of
      `Engine.chan_mult[ch]`, globally `Engine.values[native.VALUE[name]]`.
  """
  name: str
  kind: str
  per_channel: bool
  default: Any
  attr: str
  key: str
  effect: str
  lo: float = -math.inf
  hi: float = math.inf
  flag: str | None = None
  stage: Callable | None = None
  order: int = 0
  callback: Callable | None = None

  def check(self, value):
    """The value as stored (bool, float or None) if acceptable, else ControlError (one line)."""
    if self.kind == 'bool':
      if isinstance(value, (bool, np.bool_)):
        return bool(value)
      # Control surfaces send toggles as int or float 0/1; anything else is refused.
      if isinstance(value, numbers.Real) and not isinstance(value, bool) and value in (0, 1):
        return bool(value)
      raise ControlError(f'{self.name}: {value!r} is not on/off (send 1 or 0)')
    if value is None:
      if self.kind == 'db_or_off':
        return None
      raise ControlError(f'{self.name}: needs a number of dB, got none')
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
      raise ControlError(f'{self.name}: {value!r} is not a number of dB')
    value = float(value)
    if not math.isfinite(value):
      raise ControlError(f'{self.name}: {value} dB is not a finite number')
    if not self.lo <= value <= self.hi:
      raise ControlError(f'{self.name}: {value:g} dB is outside {self.lo:g}..{self.hi:g} dB')
    return value

  def parse(self, text: str):
    """A typed word (terminal, flag) -> the checked value: 'on'/'off'/'1'/'0', a number, 'off'."""
    word = str(text).strip().lower()
    if self.kind == 'bool':
      table = {'1': True, 'on': True, 'true': True, '0': False, 'off': False, 'false': False}
      if word not in table:
        raise ControlError(f'{self.name}: {text!r} is not on/off')
      return table[word]
    if self.kind == 'db_or_off' and word == 'off':
      return None
    try:
      value = float(word)
    except ValueError:
      raise ControlError(f'{self.name}: {text!r} is not a number of dB') from None
    return self.check(value)

  @property
  def osc(self) -> str:
    return f'/alm/ch/N/{self.name}' if self.per_channel else f'/alm/{self.name}'

  def describe_value(self) -> str:
    if self.kind == 'bool':
      return 'i 1/0'
    off = ', or .../off' if self.kind == 'db_or_off' else ''
    return f'f {self.lo:g}..{self.hi:g} dB{off}'


@dataclasses.dataclass
class Frame:
  """What the worker's stages see besides the gains: [c] previous gains, [c] held, fault mode."""
  previous: np.ndarray
  held: np.ndarray
  fault_mute: bool


# ---- the worker stages (in `order`; the fault stages are the engine's own) ----

def _weight(ctl, g, fr):
  del fr
  return g * 10.0 ** (ctl.weight_db / 20.0)


def _auto(ctl, g, fr):
  return np.where(ctl.auto, g, fr.previous)


def _override(ctl, g, fr):
  del fr
  on = ~np.isnan(ctl.override_db)
  return np.where(on, 10.0 ** (np.where(on, ctl.override_db, 0.0) / 20.0), g)


def _ceiling(ctl, g, fr):
  del fr
  return np.minimum(g, db_to_gain(ctl.ceiling_db))


def _slew(ctl, g, fr):
  if ctl.slew_db <= 0:
    return g
  step = db_to_gain(ctl.slew_db)
  base = np.maximum(fr.previous, db_to_gain(ctl.slew_floor_db))
  return np.clip(g, fr.previous / step, base * step)


def _mute(ctl, g, fr):
  del fr
  return np.where(ctl.mute, 0.0, g)


def _fault_hold(ctl, g, fr):
  del ctl
  return np.where(fr.held, 0.0 if fr.fault_mute else fr.previous, g)


def _fault_mute(ctl, g, fr):
  del ctl
  return np.where(fr.held, 0.0, g) if fr.fault_mute else g  # immediate, like a mute


FAULT_HOLD_ORDER, FAULT_MUTE_ORDER = 40, 70

# The controls. Order here is the order of the docs table and of the help texts.
CONTROLS = (
    Control('mute', 'bool', True, False, 'mute', 'm', 'gain 0 from the next period (in the '
            'callback, even if the worker stalls)', stage=_mute, order=80,
            callback=lambda on: 0.0 if on else 1.0),
    Control('override', 'db_or_off', True, None, 'override_db', 'o', "a fixed gain in dB "
            "instead of the model's (off: back to the model)", lo=-120.0, hi=24.0,
            stage=_override, order=30),
    Control('weight', 'db', True, 0.0, 'weight_db', 'w', 'a dB offset on the predicted gain',
            lo=-60.0, hi=24.0, stage=_weight, order=10),
    Control('auto', 'bool', True, True, 'auto', 'a', 'off freezes the channel at its applied gain',
            stage=_auto, order=20),
    Control('master', 'db', False, 0.0, 'master_db', 'master', 'dB on the mix from the next period (in '
            'the callback)', lo=-120.0, hi=24.0, flag='master_db', callback=db_to_gain),
    Control('ceiling', 'db', False, 12.0, 'ceiling_db', 'ceiling', 'no channel gain above it',
            lo=-60.0, hi=60.0, flag='ceiling_db', stage=_ceiling, order=65),
    Control('slew', 'db', False, 6.0, 'slew_db', 'slew', 'no gain changes by more than this many '
            'dB per F2 frame (0: off); gains below -60 dB rise from -60 dB', lo=0.0, hi=60.0,
            flag='slew_db', stage=_slew, order=60),
    Control('limit', 'db_or_off', False, -1.0, 'limit_db', 'limit', 'peak limit on the mix, '
            'dBFS (off: none), instant attack per period, 200 ms release', lo=-60.0, hi=0.0,
            flag='limit_db', callback=lambda db: math.inf if db is None else db_to_gain(db)),
)
BY_NAME = {c.name: c for c in CONTROLS}
BY_KEY = {c.key: c for c in CONTROLS}
BY_FLAG = {c.flag: c for c in CONTROLS if c.flag}
STAGES = tuple(sorted([(c.order, c.name, c.stage) for c in CONTROLS if c.stage] +
                      [(FAULT_HOLD_ORDER, 'fault hold', _fault_hold),
                       (FAULT_MUTE_ORDER, 'fault mute', _fault_mute)]))
# The global controls the audio callback reads, in their `Engine.values` order (after the engine's own).
CALLBACK_SCALARS = tuple(c.name for c in CONTROLS if c.callback and not c.per_channel)


def control(name: str) -> Control:
  if name not in BY_NAME:
    raise ControlError(f'no control {name!r} (controls: {", ".join(BY_NAME)})')
  return BY_NAME[name]


class Controls:
  """The values of every control of `CONTROLS` for an `Engine` with `channels` channels.

  Per-channel values are [c] arrays (bool; float64 dB, NaN for an override
  that is off), global ones floats (or None: off), under each control's `attr`
  (mute, override_db, weight_db, auto, master_db, ceiling_db, slew_db,
  limit_db). `initial` sets global start values by attr (ceiling_db=...),
  checked like any other. slew_floor_db and release_ms are fixed settings.
  """

  def __init__(self, channels: int, *, release_ms: float = 200.0, slew_floor_db: float = -60.0,
               **initial):
    c = int(channels)
    self.channels = c
    self.slew_floor_db = float(slew_floor_db)
    self.release_ms = float(release_ms)
    self.engine = None  # set by Engine: controls with a callback act in its callback too
    by_attr = {ctl.attr: ctl for ctl in CONTROLS}
    unknown = set(initial) - {a for a, ctl in by_attr.items() if not ctl.per_channel}
    if unknown:
      raise ControlError(f'no global control {", ".join(sorted(unknown))}')
    for ctl in CONTROLS:
      if ctl.per_channel:
        dtype = bool if ctl.kind == 'bool' else np.float64  # a value reads back as set
        fill = np.nan if ctl.default is None else ctl.default
        setattr(self, ctl.attr, np.full(c, fill, dtype))
      else:
        setattr(self, ctl.attr, ctl.check(initial.get(ctl.attr, ctl.default)))

  # ---- the one setter (UI, OSC, flags); channel index from 0 ----

  def channel(self, ch) -> int:
    if isinstance(ch, bool) or not isinstance(ch, numbers.Integral):
      raise ControlError(f'channel {ch!r} is not a channel number')
    ch = int(ch)
    if not 0 <= ch < self.channels:
      raise ControlError(f'channel {ch + 1} does not exist (1..{self.channels})')
    return ch

  def get(self, name: str, ch=None):
    ctl = control(name)
    if not ctl.per_channel:
      return getattr(self, ctl.attr)
    v = getattr(self, ctl.attr)[self.channel(ch)]
    if ctl.kind == 'bool':
      return bool(v)
    return None if np.isnan(v) else float(v)

  def set(self, name: str, value, ch=None):
    """Checks `value` for control `name` (of channel `ch`, from 0) and puts it in force.

    Returns the value stored. Raises ControlError, the previous value kept,
    for a refused value, control or channel.
    """
    ctl = control(name)
    if ctl.per_channel and ch is None:
      raise ControlError(f'{name} is per channel: give a channel')
    if not ctl.per_channel and ch is not None:
      raise ControlError(f'{name} is not per channel')
    value = ctl.check(value)
    if ctl.per_channel:
      ch = self.channel(ch)
      getattr(self, ctl.attr)[ch] = np.nan if value is None else value
    else:
      setattr(self, ctl.attr, value)
    if self.engine is not None and ctl.callback is not None:
      self.engine.control_changed(ctl, ch)
    return value

  def chan_mult(self, ch: int) -> float:
    """The factor the audio callback applies to channel `ch`: the per-channel callbacks' product."""
    return float(np.prod([k.callback(self.get(k.name, ch)) for k in CONTROLS
                          if k.per_channel and k.callback]))

  # ---- views used by the UI ----

  @property
  def override(self):
    """[c] bool: the channel's gain is overridden."""
    return ~np.isnan(self.override_db)

  @property
  def override_gain(self):
    """[c] float32 linear override gain (1 where off)."""
    return (10.0 ** (np.nan_to_num(self.override_db, nan=0.0) / 20.0)).astype(np.float32)

  # ---- the worker's per-frame rule ----

  def apply(self, predicted, previous, held, fault_mute: bool):
    """The gains to apply to the next frame.

    Args:
      predicted: [c] the model's gains (non-finite entries are treated as held).
      previous: [c] the gains applied to the frame before.
      held: [c] bool: channels in a fault hold.
      fault_mute: held channels get 0 (else their previous gain).
    Returns:
      [c] float32: `STAGES` in order (weight, auto off (freeze), override,
      fault hold, slew limit, ceiling, fault mute, mute). The ceiling comes after
      the slew limit so that it holds at once when lowered (the slew limit
      would otherwise bring a gain above the new ceiling down over frames).
    """
    previous = np.asarray(previous, np.float32)
    finite = np.isfinite(predicted)
    fr = Frame(previous, held | ~finite, fault_mute)
    g = np.where(finite, predicted, 0.0)
    for _, _, stage in STAGES:
      g = stage(self, g, fr)
    return np.asarray(g, np.float32)

  def apply_pans(self, predicted, previous, held):
    """The pans to apply to the next frame (a stereo engine).

    Args:
      predicted: [c] the model's pans (0 for a mono model).
      previous: [c] the pans applied to the frame before.
      held: [c] bool: channels in a fault hold.
    Returns:
      [c] float32 in [-1, 1]: the previous pan where the channel is held, its
      prediction is not finite (a pan is never NaN: the callback would put NaN
      in both sides) or auto is off (the engineer has the channel: it stays
      where it is, as its gain does); else the prediction. Mute, master and
      the ceiling act on the gains, so on both sides alike.
    """
    predicted = np.asarray(predicted, np.float32)
    keep = held | ~np.isfinite(predicted) | ~self.auto
    pans = np.where(keep, previous, np.clip(np.nan_to_num(predicted), -1.0, 1.0))
    return np.asarray(pans, np.float32)

  def snapshot(self) -> dict:
    """The controls as plain values, by name (for the UI and OSC queries; None: off)."""
    out = {}
    for ctl in CONTROLS:
      if ctl.per_channel:
        out[ctl.name] = [self.get(ctl.name, ch) for ch in range(self.channels)]
      else:
        out[ctl.name] = getattr(self, ctl.attr)
    return out


def markdown_table() -> str:
  """docs/live.md's controls table, from `CONTROLS` (a test keeps the docs equal to it)."""
  rows = ['| control | values | effect | terminal | OSC | flag |', '|---|---|---|---|---|---|']
  for c in CONTROLS:
    n = ' N' if c.per_channel else ''
    if c.kind == 'bool':
      values = f'on/off (default {"on" if c.default else "off"})'
      term = f'`{c.key}{n}` (toggle), `{c.key}{n} on\\|off`'
      osc = f'`{c.osc} i` (1/0)'
    else:
      default = 'off' if c.default is None else f'{c.default:g}'
      values = f'{c.lo:g}..{c.hi:g} dB' + (', off' if c.kind == 'db_or_off' else '') + (
          f' (default {default})')
      term = f'`{c.key}{n} DB`' + (f', `{c.key}{n} off`' if c.kind == 'db_or_off' else '')
      osc = f'`{c.osc} f`' + (f', `{c.osc}/off`' if c.kind == 'db_or_off' else '')
    flag = f'`--{c.flag}`' if c.flag else ''
    rows.append(f'| {c.name} | {values} | {c.effect} | {term} | {osc} | {flag} |')
  return '\n'.join(rows)
