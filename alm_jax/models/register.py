"""Each channel's running register, and what a channel learns from the registers of the others.

A channel's sound says what it is, not where it stands among the band's parts: the melody is
often the same instrument as the inner voices, one of two comping keyboards is the lower, and
the designed stereo placement sends spread parts to alternate sides in order of register
(alm_jax.data.placement). With `config.model.register.enabled`, the ALM measures per F2 frame
each channel's register (the power-weighted mean log2 frequency of its spectrum, the measure
the placement orders by), keeps a causal running mean of it in the recurrent carry, and its
head adds to every channel's features a relation term (`Relation`): a sum over the other
channels of a learned function of their features and of how far above or below this channel
they sit. A sum, not a mean, so it can count ("the parts like me above me"). Its last layer
starts at zero, so a mixer trained without it starts where it was. Why, and the figures:
docs/model.md ("Register").
"""

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from alm_jax import frames

# Per channel: frames seen, running mean of power x register, running mean of power.
STATE_SIZE = 3
REFERENCE_HZ = 1000.0  # a register of 0; one unit is an octave
_TOP_FRACTION = 4  # bins up to a quarter of the sample rate, as alm_jax.data.placement.register


@dataclasses.dataclass(frozen=True)
class Rule:
  n_fft: int  # samples of the F2 frame's end each spectrum reads
  sample_rate: int
  slow: float  # the running mean's rate once 1 / frames falls below it


def enabled(model_config) -> bool:
  return bool(model_config.get('register', {}).get('enabled', False))


def _needs_register(model_config, flag: str, why: str) -> bool:
  """config.model.register.<flag> (False when absent: older configs).

  Raises:
    ValueError: the flag on and the register off.
  """
  r = model_config.get('register', {})
  on = bool(r.get(flag, False))
  if on and not r.get('enabled', False):
    raise ValueError(f'config.model.register.{flag} needs config.model.register.enabled = True: '
                     f'{why}.')
  return on


def pan_relation(model_config) -> bool:
  """Whether a stereo ALM's pan head has its own relation term (needs the register)."""
  return _needs_register(model_config, 'pan_relation',
                         'the pan relation reads the running register')


def ends(model_config) -> bool:
  """Whether the head adds the ends term (`Ends`: which channel is the top or the bottom part)."""
  return _needs_register(model_config, 'ends', 'the ends term rides with the running register')


def pan_layout(model_config) -> bool:
  """Whether a stereo ALM's pans add the layout term (`Layout`; needs the register)."""
  return _needs_register(model_config, 'pan_layout',
                         'the layout orders the parts by their running register')


def _others(channel_mask):
  """[b, c] mask -> [b, i, j]: j is another active channel than i."""
  c = channel_mask.shape[1]
  return channel_mask[:, None, :] & ~jnp.eye(c, dtype=bool)[None]


def rule(model_config, spec) -> Rule:
  """The register rule of `config.model.register` for F2 frames of `spec` (a frames.FrameSpec)."""
  r = model_config.register
  frames_per_s = spec.sample_rate / spec.f2
  return Rule(n_fft=int(r.n_fft), sample_rate=int(spec.sample_rate),
              slow=1.0 / max(1.0, float(r.time_constant_s) * frames_per_s))


def _hann(n: int, xp=jnp):
  """The periodic Hann window of n samples, in jax.numpy (in the graph) or numpy (a constant)."""
  return 0.5 - 0.5 * xp.cos(2.0 * math.pi * xp.arange(n) / n)


def _tail(f2_frames, n: int):
  """[..., f2] -> the last n samples [..., n] (float32), zero-padded in front if f2 < n."""
  x = f2_frames[..., -n:].astype(jnp.float32)
  if x.shape[-1] < n:
    x = jnp.pad(x, [(0, 0)] * (x.ndim - 1) + [(n - x.shape[-1], 0)])
  return x


def frame_stats(f2_frames, register_rule: Rule):
  """F2 frames [..., f2] -> (power [...], register [...] in octaves from REFERENCE_HZ).

  The spectrum of the frame's last n_fft samples (Hann window; zero-padded in front if the frame
  is shorter), bins 1 .. n_fft / 4; register = sum(power x log2(f / REFERENCE_HZ)) / sum(power),
  0 for a silent frame.
  """
  n = register_rule.n_fft
  x = _tail(f2_frames, n)
  window = _hann(n)
  top = n // _TOP_FRACTION
  # re^2 + im^2, sliced as real arrays: jax2onnx holds a complex array as a trailing (re, im)
  # pair, and a slice of the complex array's last axis there slices the pair.
  spectrum = jnp.fft.rfft(x * window, axis=-1)
  power = jnp.square(jnp.real(spectrum)[..., 1:top]) + jnp.square(jnp.imag(spectrum)[..., 1:top])
  octaves = jnp.log2(jnp.arange(1, top) * register_rule.sample_rate / n / REFERENCE_HZ)
  total = jnp.sum(power, axis=-1)
  reg = jnp.sum(power * octaves, axis=-1) / jnp.maximum(total, 1e-20)
  return total, jnp.where(total > 0, reg, 0.0)


PITCH_HZ = (65.0, 1600.0)  # the fundamentals `frame_pitch` looks for (lags up to n_fft / 3)
_PITCH_NEAR = 0.9  # the shortest period within this fraction of the best one: no octave below
_OWN_POWER = 4.0  # how sharply a bin is given to the channel that holds most of it


def _window_autocorrelation(n: int, lags: int) -> np.ndarray:
  """The Hann window's autocorrelation at lags 0 .. lags - 1: a constant (numpy, not in the graph)."""
  window = _hann(n, np)
  return np.correlate(window, window, 'full')[n - 1:n - 1 + lags].astype(np.float32)


def frame_pitch(f2_frames, register_rule: Rule, channel_mask=None):
  """F2 frames [b, c, t, f2] -> (weight [b, c, t], pitch [b, c, t] in octaves from REFERENCE_HZ).

  Each channel's fundamental, from the part of the spectrum it holds more of than the other
  channels do: the power spectrum of the frame's last n_fft samples (zero-padded to twice that,
  so the autocorrelation is linear) times, per bin, the channel's share of the level-normalised
  power of all channels to the power 4 (bleed puts every part in every microphone; each part is
  loudest, relative to the rest, in its own); its autocorrelation from that, over its value at
  lag 0 and divided by the window's own (Boersma's correction); the period the peak at the
  shortest lag between PITCH_HZ's bounds within 0.9 of the best (so not an octave below).
  Weight: the frame's power times that best correlation (0 for noise and silence). Unlike `frame_stats`' centroid, which orders by timbre
  as much as by pitch, this names the top and the bottom voice of a corpus work on validation
  three times in four with bleed (docs/results_notes.md, "The ends term"). Cross-channel, so it
  takes all the channels at once; channels off `channel_mask` [b, c] are silenced first, so they
  hold no share whatever they carry.
  """
  n = register_rule.n_fft
  x = _tail(f2_frames, n)
  if channel_mask is not None:
    x = jnp.where(jnp.asarray(channel_mask, bool)[:, :, None, None], x, 0.0)
  x = (x - jnp.mean(x, axis=-1, keepdims=True)) * _hann(n)
  spectrum = jnp.fft.rfft(x, 2 * n, axis=-1)  # [b, c, t, n + 1]
  power = jnp.square(jnp.real(spectrum)) + jnp.square(jnp.imag(spectrum))
  normed = power / jnp.maximum(jnp.sum(power, axis=-1, keepdims=True), 1e-20)
  share = normed / jnp.maximum(jnp.sum(normed, axis=1, keepdims=True), 1e-20)
  held = power * share ** _OWN_POWER
  # The autocorrelation: the DFT of the even extension of a real spectrum is real (rfft only,
  # as frame_stats: what the ONNX export converts). Divided by the window's own (Boersma's
  # correction), so a period's peak is near 1 at any lag.
  lo = int(register_rule.sample_rate / PITCH_HZ[1])
  hi = min(int(register_rule.sample_rate / PITCH_HZ[0]), n // 3)
  even = jnp.concatenate([held, held[..., -2:0:-1]], axis=-1)  # [..., 2n]
  r = jnp.real(jnp.fft.rfft(even, axis=-1))[..., :hi + 1]  # lags 0 .. hi
  r_window = _window_autocorrelation(n, hi + 1)
  lags = jnp.arange(hi + 1)
  inside = lags >= lo
  corr = (r / jnp.maximum(r[..., :1], 1e-30)) / (r_window / r_window[0])
  corr = jnp.where(inside, corr, -1.0)
  best = jnp.max(corr, axis=-1, keepdims=True)
  # Masking a part's spectrum narrows its peaks, so the corrected correlation can creep above
  # 1 at long lags: the bar is 0.9 of the best, at most 0.9.
  first = jnp.argmax(inside & (corr >= _PITCH_NEAR * jnp.minimum(best, 1.0)), axis=-1)[..., None]
  # That lag is on its peak's rising side: the peak is the best lag up to half a period on.
  period = jnp.argmax(jnp.where((lags >= first) & (2 * lags <= 3 * first), corr, -2.0), axis=-1)
  pitch = jnp.log2(register_rule.sample_rate / jnp.maximum(period, 1).astype(jnp.float32)
                   / REFERENCE_HZ)
  total = jnp.sum(power, axis=-1, keepdims=True)
  heard = total[..., 0] > 0
  weight = jnp.where(heard, total[..., 0] * jnp.maximum(best[..., 0], 0.0), 0.0)
  return weight, jnp.where(heard, pitch, 0.0)


def running(state, power, reg, register_rule: Rule, with_heard: bool = False):
  """Running power-weighted register (or pitch) over F2 frames.

  Args:
    state: [b, c, STATE_SIZE] (zeros before the first frame).
    power, reg: [b, c, t] from `frame_stats` (or weight, pitch from `frame_pitch`).
    with_heard: also return heard [b, c, t] bool: whether any frame so far had weight.
  Returns:
    (state after the last frame, register [b, c, t] after each frame: the power-weighted
    mean over all frames at first, then with the rule's time constant; 0 before any sound),
    and heard with `with_heard`.
  """
  def step(st, inputs):
    p, m = inputs
    count, pm, pp = st[..., 0], st[..., 1], st[..., 2]
    heard = p > 0
    count = count + heard
    rate = jnp.where(heard, jnp.maximum(1.0 / jnp.maximum(count, 1.0), register_rule.slow), 0.0)
    pm = pm + rate * (p * m - pm)
    pp = pp + rate * (p - pp)
    out = jnp.where(pp > 0, pm / jnp.maximum(pp, 1e-30), 0.0)
    return frames.stack([count, pm, pp], axis=-1), out  # exportable to ONNX

  def step_heard(st, inputs):  # the same, and whether the channel was heard yet (frames > 0)
    st, out = step(st, inputs)
    return st, (out, st[..., 0] > 0)

  state, out = jax.lax.scan(step_heard if with_heard else step, state.astype(jnp.float32),
                            (jnp.moveaxis(power.astype(jnp.float32), -1, 0),
                             jnp.moveaxis(reg.astype(jnp.float32), -1, 0)))
  if with_heard:
    return state, jnp.moveaxis(out[0], 0, -1), jnp.moveaxis(out[1], 0, -1)
  return state, jnp.moveaxis(out, 0, -1)


class Relation(nn.Module):
  """Features [b, c, t, d] and registers [b, c, t] -> a term [b, c, t, d] to add to the features.

  term_i = W_out [sum_{j != i, active} PReLU(A y_j + w * tanh(s (reg_j - reg_i)) + bias), reg_i],
  with W_out zero at initialisation; with `reads_own` the pair also reads B y_i (B zero at
  first), so the sum can count the parts like this one above and below it. Shared across
  channels and blind to their order. The sharpness s (per octave) sets how far apart two parts
  must sit to count as above or below: the gain head's term has 1; the pan head's
  (`config.model.register.pan_relation`) has more, since parts a third apart must land on
  opposite sides.
  """
  dim: int
  dtype: object = jnp.float32
  sharpness: float = 1.0
  reads_own: bool = False

  @nn.compact
  def __call__(self, y, reg, channel_mask):
    d = y.shape[-1]
    a = nn.Dense(self.dim, dtype=self.dtype, name='other')(y)  # [b, c, t, k]: the j side
    w = self.param('above', nn.initializers.normal(1.0), (self.dim,))
    # [b, i, j, t]: j above i is > 0
    apart = jnp.tanh(self.sharpness * (reg[:, None] - reg[:, :, None]))
    pre = a[:, None] + apart[..., None].astype(a.dtype) * w.astype(a.dtype)  # [b, i, j, t, k]
    if self.reads_own:  # the i side too (zero at first): "the parts like me above me"
      pre = pre + nn.Dense(self.dim, dtype=self.dtype, use_bias=False,
                           kernel_init=nn.initializers.zeros, name='own')(y)[:, :, None]
    pair = nn.PReLU(negative_slope_init=0.25)(pre)
    others = _others(channel_mask)  # [b, i, j]
    summed = jnp.sum(jnp.where(others[..., None, None], pair, 0.0), axis=2)  # [b, c, t, k]
    x = jnp.concatenate([summed, reg[..., None].astype(summed.dtype)], axis=-1)
    return nn.Dense(d, dtype=self.dtype, kernel_init=nn.initializers.zeros, name='out')(x)


class Layout(nn.Module):
  """Features [b, c, t, d] and registers [b, c, t] -> a pan term [b, c, t] (before the tanh).

  The layout the mixing guides teach for supporting parts: spread them to alternate sides in
  order of register. The network says, per channel, whether it is such a part (s in [0, 1])
  and how wide it goes (w); the side comes from its rank among the spread parts below it:

      rank_i = sum_{j != i, active} s_j (1 + tanh(k (reg_i - reg_j))) / 2
      term_i = s_i w_i (-cos(pi rank_i))      (the lowest to the left, then alternating)

  A parity of a count is what an MLP over a sum learns worst (two inner voices of one sound
  stayed near the centre, docs/results_notes.md); here it is the layer's shape, and what is
  learnt is which parts are spread and how far. w starts at zero, so a mixer trained without
  the term starts where it was. Shared across channels and blind to their order.
  """
  dtype: object = jnp.float32
  sharpness: float = 4.0
  width_init: float = 0.0

  @nn.compact
  def __call__(self, y, reg, channel_mask):
    logit = nn.Dense(1, dtype=self.dtype, name='spread')(y)[..., 0].astype(jnp.float32)
    s = jax.nn.sigmoid(logit)
    w = nn.Dense(1, dtype=self.dtype, kernel_init=nn.initializers.zeros,
                 bias_init=nn.initializers.constant(self.width_init),
                 name='width')(y)[..., 0].astype(jnp.float32)
    # The spread's logit, for config.loss.spread_weight (losses.spread_loss).
    self.sow('intermediates', 'spread_logit', logit)
    reg = reg.astype(jnp.float32)
    # [b, i, j, t]: j below i is near 1
    below = 0.5 * (1.0 + jnp.tanh(self.sharpness * (reg[:, :, None] - reg[:, None])))
    others = _others(channel_mask)  # [b, i, j]
    rank = jnp.sum(jnp.where(others[..., None], below * s[:, None], 0.0), axis=2)  # [b, c, t]
    return s * w * -jnp.cos(math.pi * rank)


class Ends(nn.Module):
  """Features [b, c, t, d] and running pitches [b, c, t] -> a term [b, c, t, d] to add to the features.

  Whether each channel is the top part and whether it is the bottom one, as soft products over
  the other active channels:

      top_i = prod_{j != i} sigmoid(k (p_i - p_j)),  bottom_i = prod_{j != i} sigmoid(k (p_j - p_i))

  then a projection of (top_i, bottom_i) to the features, zero at first. A corpus work's
  melody is its top voice and its bass voice the bottom one, and both are often the same sample
  as the inner voices between them: the melody is designed 5 dB above them, and the top and
  the bottom stay at the centre where the inner voices are spread. `Relation` sums a soft
  count of the parts above (tanh of one unit per octave), which does not tell a top voice from
  one a third below it; here the sharpness k (per octave) makes "none above" a feature of its
  own. It reads the running pitch (`frame_pitch`), not the register: the centroid orders parts
  by timbre as much as by pitch. Shared across channels and blind to their order; one active
  channel is both.
  """
  sharpness: float  # per octave (config.model.register.ends_sharpness)
  dtype: object = jnp.float32

  @nn.compact
  def __call__(self, y, pitch, channel_mask, heard=None):
    """`heard` [b, c, t] (None: all): channels with a running pitch yet; the others (whose
    running pitch is still 0, i.e. 1 kHz) are left out of every product and get (0, 0)."""
    pitch = pitch.astype(jnp.float32)
    heard = jnp.ones(pitch.shape, bool) if heard is None else heard
    above = self.sharpness * (pitch[:, :, None] - pitch[:, None])  # [b, i, j, t]: i above j > 0
    others = _others(channel_mask)[..., None] & heard[:, None]  # [b, i, j, t]
    top = jnp.sum(jnp.where(others, jax.nn.log_sigmoid(above), 0.0), axis=2)
    bottom = jnp.sum(jnp.where(others, jax.nn.log_sigmoid(-above), 0.0), axis=2)
    x = jnp.where(heard[..., None], frames.stack([jnp.exp(top), jnp.exp(bottom)], axis=-1), 0.0)
    return nn.Dense(y.shape[-1], dtype=self.dtype, kernel_init=nn.initializers.zeros,
                    name='out')(x.astype(y.dtype))  # x: [b, c, t, 2]
