"""What the console automixers share: parameter-free, causal, zero-latency mixers defined per F2 frame.

A console automixer measures each channel's level on every F2 frame and sets
the gains of the *next* frame from what it has measured so far, as the ALM
does in zero-latency mode: no gain depends on audio after the frame before
it. `FrameRuleMixer` implements `protocol.Mixer` for such a rule: `step` scans
the chunk's F2 frames with the subclass's `update(state, power, mask)`; the
rule's state is a flat dict next to `gain` (the gains in force) and `faults`.
The level measure is the frame's mean square, optionally through the
BS.1770 K-weighting filter's magnitude response applied to the frame's
spectrum (`frame_power`). They have no parameters (`params` is ignored; `{}`
is what `restore.restore_params` gives for their config files).
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import scipy.signal

from alm_jax import frames
from alm_jax import loudness
from alm_jax.models import protocol

LOUDNESS_OFFSET_DB = -0.691  # BS.1770: loudness = -0.691 + 10 log10(K-weighted mean square)


@functools.lru_cache(maxsize=8)
def k_weighting_power_response(n: int, rate: int) -> np.ndarray:
  """|H_K(f)|^2 of BS.1770's K-weighting at the rfft bins of an n-sample frame, float32 [n // 2 + 1]."""
  (b1, a1), (b2, a2) = loudness.k_weighting_coefficients(rate)
  freqs = np.fft.rfftfreq(n, 1.0 / rate)
  _, h1 = scipy.signal.freqz(b1, a1, worN=freqs, fs=rate)
  _, h2 = scipy.signal.freqz(b2, a2, worN=freqs, fs=rate)
  return (np.abs(h1 * h2) ** 2).astype(np.float32)


def frame_power(framed, rate: int, k_weighted: bool):
  """Mean square of each frame [..., n] -> [...], optionally K-weighted in the frequency domain.

  K-weighted: the mean square of the frame circularly filtered by the
  K-weighting magnitude response (Parseval), which for 50 ms frames is the
  filter's steady-state effect (its 38 Hz high-pass settles in a few ms).
  """
  if not k_weighted:
    return jnp.mean(jnp.square(framed), axis=-1)
  n = framed.shape[-1]
  spectrum = jnp.abs(jnp.fft.rfft(framed, axis=-1)) ** 2
  weights = np.full(n // 2 + 1, 2.0, np.float32)  # one-sided spectrum: count +/- frequencies
  weights[0] = 1.0
  if n % 2 == 0:
    weights[-1] = 1.0
  weights = weights * k_weighting_power_response(n, rate)
  return spectrum @ jnp.asarray(weights) / float(n * n)


def smoothing(time_constant_s: float, f2: int, rate: int) -> float:
  """The per-frame factor of an exponential average with this time constant."""
  if time_constant_s <= 0:
    return 0.0
  return float(np.exp(-f2 / (time_constant_s * rate)))


def per_channel(values, channels: int, name: str) -> np.ndarray:
  """A per-channel config list -> float32 [channels] (missing entries 0, longer lists refused)."""
  values = np.asarray(list(values), np.float32)
  if values.size > channels:
    raise ValueError(f'config.model.{name} has {values.size} entries, more than the '
                     f'{channels} channels (config.model.max_channels).')
  return np.pad(values, (0, channels - values.size))


def refuse_segments(description: str, use: str) -> None:
  """`protocol.Mixer.refuse` of a causal mixer that sets a gain per F2 frame."""
  if use == 'segments':
    raise protocol.UnsupportedModelError(
        f'The {description} is causal and sets a gain per F2 frame: there are no segments '
        'to give it; drop --segment_seconds.')


def check_state_shape(capabilities, batch: int, channels: int) -> None:
  """Raises ValueError naming the limit if `init_state` cannot make a state of this shape."""
  if batch < 1 or channels < 1:
    raise ValueError(f'Need batch >= 1 and channels >= 1, got batch={batch}, channels={channels}.')
  if channels > capabilities.max_channels:
    raise ValueError(f'{channels} channels is more than the {capabilities.max_channels} '
                     'this mixer allows (config.model.max_channels).')


def scan_frames(spec, state, chunk, channel_mask, frame_inputs, update):
  """`protocol.Mixer.step` of a per-F2-frame rule: one `lax.scan` over the chunk's F2 frames.

  Args:
    spec: `frames.FrameSpec`.
    state: dict with `gain` [b, c] (the gains in force) and `faults` [b, c].
    chunk: [b, c, n], n a multiple of spec.f2.
    channel_mask: [b, c].
    frame_inputs: framed chunk [b, c, t, f2] (faults contained) -> scanned inputs [t, ...].
    update: (state without `faults`, one frame's input, mask [b, c] bool) -> that state with the
      next frame's `gain`.
  Returns:
    (new state, gains [b, c, t] applied to each frame, mixed [b, ...] as `frames.apply_gains`).
  """
  f2 = spec.f2
  b, c, n = chunk.shape
  if n % f2:
    raise ValueError(f'A step takes whole F2 frames ({f2} samples each), got {n} samples.')
  chunk, bad = protocol.contain_faults(chunk.astype(jnp.float32), f2)
  mask = channel_mask.astype(bool)
  xs = frame_inputs(chunk.reshape(b, c, n // f2, f2))

  def body(st, x):
    applied = jnp.where(mask, st['gain'], 0.0)
    return update(st, x, mask), applied

  inner = {k: v for k, v in state.items() if k != 'faults'}
  inner, gains = jax.lax.scan(body, inner, xs)
  gains = jnp.moveaxis(gains, 0, -1)  # [b, c, t]
  new_state = dict(inner, faults=state['faults'] + jnp.sum(bad, axis=-1, dtype=jnp.int32))
  return new_state, gains, frames.apply_gains(chunk, gains, mask, spec)


class FrameRuleMixer:
  """`protocol.Mixer` of a per-frame gain rule; subclasses define `rule_state` and `update`."""

  description = 'console automixer'
  k_weighted = False

  def __init__(self, model_config):
    self.config = model_config
    spec = frames.FrameSpec(sample_rate=int(model_config.sample_rate),
                            f1=frames.ms_to_samples(model_config.f2_ms, model_config.sample_rate),
                            f2=frames.ms_to_samples(model_config.f2_ms, model_config.sample_rate),
                            stride=1)
    self.spec = spec
    self.capabilities = protocol.Capabilities(
        description=self.description, sample_rate=spec.sample_rate, f1=spec.f1, f2=spec.f2,
        stride=1, max_channels=int(model_config.max_channels), causal=True, zero_latency=True,
        trainable=False, initial_gain=float(model_config.initial_gain))

  def refuse(self, use: str) -> None:
    refuse_segments(self.description, use)

  def rule_state(self, batch: int, channels: int) -> dict:
    return {}

  def update(self, state: dict, power, mask) -> dict:
    """state, power [b, c] of the frame just completed -> state with the next frame's `gain`."""
    raise NotImplementedError

  def init_state(self, batch: int, channels: int) -> dict:
    check_state_shape(self.capabilities, batch, channels)
    return {'gain': jnp.full((batch, channels), self.capabilities.initial_gain, jnp.float32),
            'faults': jnp.zeros((batch, channels), jnp.int32),
            **self.rule_state(batch, channels)}

  def gains_in_force(self, state):
    return state['gain']

  def step(self, params, state, chunk, channel_mask):
    del params  # no parameters

    def frame_inputs(framed):  # [b, c, t, f2] -> power [t, b, c]
      return jnp.moveaxis(frame_power(framed, self.spec.sample_rate, self.k_weighted), -1, 0)

    return scan_frames(self.spec, state, chunk, channel_mask, frame_inputs, self.update)
