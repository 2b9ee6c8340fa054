"""The engineer's controls and the safety limits between the model's gains and the PA.

`Controls` holds per-channel mute, manual override, weight and auto flags, the
master gain, the gain ceiling, the slew limit and the output limiter's
threshold, as plain NumPy arrays and floats that the UI and OSC threads write
and the worker thread reads once per F2 frame (`apply`). Writes are single
element or single attribute stores, so a reader sees each control either
before or after a change, never torn. Mute and master gain also act in the
audio callback itself (`Engine.chan_mult`, `Engine.master`), so they work
within one period even while the worker is stalled.
"""

import numpy as np


def db_to_gain(db: float) -> float:
  return float(10.0 ** (db / 20.0))


def gain_to_db(gain, floor_db: float = -120.0):
  return 20.0 * np.log10(np.maximum(np.asarray(gain, np.float64), db_to_gain(floor_db)))


class Controls:
  """Controls of an `Engine` with `channels` channels.

  Attributes:
    mute: [c] bool: the channel contributes nothing (applied at once, no slew).
    override: [c] bool: the channel's gain is `override_gain` instead of the model's.
    override_gain: [c] float32 linear gain used while `override`.
    weight_db: [c] float32 dB offset added to the predicted gain.
    auto: [c] bool: False freezes the channel at its last applied gain.
    master_db: master gain of the mix, dB.
    ceiling_db: no applied channel gain exceeds this, dB.
    slew_db: most an applied gain changes from one F2 frame to the next, dB
      (0 or less: no limit). Gains below `slew_floor_db` rise from that floor.
    limit_db: the output limiter's threshold (peak, dBFS); None disables it.
    release_ms: the limiter's release time constant.
  """

  def __init__(self, channels: int, *, ceiling_db: float = 12.0, slew_db: float = 6.0,
               limit_db: float | None = -1.0, release_ms: float = 200.0,
               slew_floor_db: float = -60.0):
    c = int(channels)
    self.channels = c
    self.mute = np.zeros(c, bool)
    self.override = np.zeros(c, bool)
    self.override_gain = np.ones(c, np.float32)
    self.weight_db = np.zeros(c, np.float32)
    self.auto = np.ones(c, bool)
    self.master_db = 0.0
    self.ceiling_db = float(ceiling_db)
    self.slew_db = float(slew_db)
    self.slew_floor_db = float(slew_floor_db)
    self.limit_db = limit_db
    self.release_ms = float(release_ms)
    self.engine = None  # set by Engine: mute and master act in its callback too

  # ---- setters used by the UI and OSC (channel index from 0) ----

  def _check(self, ch: int) -> int:
    ch = int(ch)
    if not 0 <= ch < self.channels:
      raise ValueError(f'channel {ch + 1} does not exist (1..{self.channels}).')
    return ch

  def set_mute(self, ch, on: bool):
    ch = self._check(ch)
    self.mute[ch] = bool(on)
    if self.engine is not None:
      self.engine.chan_mult[ch] = 0.0 if on else 1.0

  def set_override(self, ch, gain_db: float | None):
    """A fixed gain in dB for channel `ch`, or None to give it back to the model."""
    ch = self._check(ch)
    if gain_db is None:
      self.override[ch] = False
    else:
      self.override_gain[ch] = db_to_gain(gain_db)
      self.override[ch] = True

  def set_weight(self, ch, db: float):
    self.weight_db[self._check(ch)] = float(db)

  def set_auto(self, ch, on: bool):
    self.auto[self._check(ch)] = bool(on)

  def set_master(self, db: float):
    self.master_db = float(db)
    if self.engine is not None:
      self.engine.master = db_to_gain(db)

  def set_ceiling(self, db: float):
    self.ceiling_db = float(db)

  def set_slew(self, db: float):
    self.slew_db = float(db)

  def set_limit(self, db: float | None):
    self.limit_db = None if db is None else float(db)
    if self.engine is not None:
      self.engine.limit = np.inf if db is None else db_to_gain(db)

  # ---- the worker's per-frame rule ----

  def apply(self, predicted, previous, held, fault_mute: bool):
    """The gains to apply to the next frame.

    Args:
      predicted: [c] the model's gains (non-finite entries are treated as held).
      previous: [c] the gains applied to the frame before.
      held: [c] bool: channels in a fault hold.
      fault_mute: held channels get 0 (else their previous gain).
    Returns:
      [c] float32, in this order: weight, auto off (freeze), override, fault
      hold, ceiling, slew limit, mute.
    """
    previous = np.asarray(previous, np.float32)
    held = held | ~np.isfinite(predicted)
    g = np.where(np.isfinite(predicted), predicted, 0.0) * 10.0 ** (self.weight_db / 20.0)
    g = np.where(self.auto, g, previous)
    g = np.where(self.override, self.override_gain, g)
    g = np.where(held, 0.0 if fault_mute else previous, g)
    g = np.minimum(g, db_to_gain(self.ceiling_db))
    if self.slew_db > 0:
      step = db_to_gain(self.slew_db)
      base = np.maximum(previous, db_to_gain(self.slew_floor_db))
      g = np.clip(g, previous / step, base * step)
    if fault_mute:
      g = np.where(held, 0.0, g)  # a fault mute is immediate, like a mute
    g = np.where(self.mute, 0.0, g)
    return g.astype(np.float32)

  def snapshot(self) -> dict:
    """The controls as plain values (for the UI and OSC queries)."""
    return {
        'mute': self.mute.tolist(), 'override': self.override.tolist(),
        'override_db': gain_to_db(self.override_gain).round(2).tolist(),
        'weight_db': self.weight_db.tolist(), 'auto': self.auto.tolist(),
        'master_db': self.master_db, 'ceiling_db': self.ceiling_db, 'slew_db': self.slew_db,
        'limit_db': self.limit_db,
    }
