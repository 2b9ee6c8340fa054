"""Stereo placement: the pan law, stereo mixing and mid/side, one definition for every caller.

A pan p in [-1, 1] (-1 hard left, 0 centre, +1 hard right) sends a channel to the left and right
buses with the constant-power law, amplitudes (cos θ, sin θ) with θ = (p + 1) π / 4: the power
cos² θ + sin² θ = 1 at every position, so a channel is 3 dB down on each side at the centre. The
training loss, the data pipeline's stereo target, the offline and streaming mixers, the live
mixer and the exports all mix with `pan_law` / `apply_gains_stereo`; `mid_side` gives the sum and
difference channels the stereo loss and metrics compare. The design (why this law, and why mid
and side are scaled by 1/√2): docs/model.md ("Stereo").
"""

import math

import jax
import jax.numpy as jnp
import numpy as np

from alm_jax import frames

OUTPUTS = (('gain',), ('gain', 'pan'))  # what config.model.outputs may be
CENTRE = 0.0
# A target's side (difference channel) this far (power) below its mid counts as silent: a mix of
# centred channels has no side, and the MR-STFT's spectral convergence against a silent target
# is undefined (its norm is eps-sized). The stereo loss and metric leave such sides out.
SIDE_FLOOR = 1e-6  # -60 dB
_QUARTER_PI = math.pi / 4.0
SQRT_HALF = math.sqrt(0.5)


def outputs_of(model_config) -> tuple[str, ...]:
  """config.model.outputs as a tuple: ('gain',) (mono, the default) or ('gain', 'pan')."""
  outputs = tuple(str(o) for o in model_config.get('outputs', ('gain',)))
  if outputs not in OUTPUTS:
    raise ValueError(f'config.model.outputs = {outputs}: use {OUTPUTS[0]} (gains only, a mono '
                     f'mix) or {OUTPUTS[1]} (gains and pans, a stereo mix).')
  return outputs


def has_pans(model_config) -> bool:
  return 'pan' in outputs_of(model_config)


def _xp(x):
  return jnp if isinstance(x, jax.Array) else np


def pan_law(pans):
  """Constant-power pan law: pans [...] in [-1, 1] -> (left [...], right [...]) amplitudes.

  NumPy in, NumPy out (float64 for Python floats); JAX in (traced or not), JAX out. Pans outside
  [-1, 1] are clipped: the law is not defined beyond the hard left and right.
  """
  xp = _xp(pans)
  theta = (xp.clip(pans, -1.0, 1.0) + 1.0) * _QUARTER_PI
  return xp.cos(theta), xp.sin(theta)


def bus_gains(gains, pans):
  """gains, pans [..., c, t] -> [..., 2, c, t]: each channel's amplitude to the left and right bus."""
  left, right = pan_law(pans)
  return frames.stack([gains * left, gains * right], axis=-3)


def apply_gains_stereo(audio, gains, pans, channel_mask, spec: frames.FrameSpec):
  """The stereo mix: each channel's F2 frames gained, panned and summed on two buses (JAX).

  Args:
    audio: [batch, channels, samples].
    gains: [batch, channels, f2_frames] linear gains.
    pans: [batch, channels, f2_frames] pans in [-1, 1].
    channel_mask: [batch, channels] bool; masked channels contribute nothing.
  Returns:
    [batch, 2, f2_frames * f2]: left and right. With every pan at 0 both equal
    `frames.apply_gains(...) / √2`.
  """
  framed = frames.f2_frames(audio, spec)  # [b, c, t, f2]
  g = jnp.where(channel_mask[:, None, :, None], bus_gains(gains, pans), 0.0).astype(framed.dtype)
  mix = jnp.einsum('bctn,bsct->bstn', framed, g)
  return mix.reshape(mix.shape[:2] + (-1,))


def mix_numpy(tracks, gains, pans):
  """Static gains and pans on whole tracks (the data pipeline's stereo target), NumPy float32.

  Args:
    tracks: [..., channels, samples].
    gains, pans: [..., channels].
  Returns:
    [..., 2, samples] = sum_c gains[c] · pan_law(pans[c]) · tracks[c].
  """
  g = bus_gains(np.asarray(gains, np.float64)[..., None], np.asarray(pans, np.float64)[..., None])
  return np.einsum('...scx,...cn->...sn', g, np.asarray(tracks, np.float64)).astype(np.float32)


def centred(mix):
  """A mono mix [b, n] placed at the centre: [b, 2, n] (what `pan_law(0)` gives every channel)."""
  return frames.stack([mix * SQRT_HALF, mix * SQRT_HALF], axis=-2)


def mid_side(stereo):
  """[..., 2, n] left/right -> [..., 2, n] mid = (L + R) / √2 and side = (L - R) / √2.

  Orthonormal, so a channel at the centre puts exactly its mono contribution
  (gain · input) in the mid and nothing in the side.
  """
  left, right = stereo[..., 0, :], stereo[..., 1, :]
  return frames.stack([(left + right) * SQRT_HALF, (left - right) * SQRT_HALF], axis=-2)


def has_side(target_mid_side):
  """[..., 2, n] mid/side -> [...] bool: the side is within SIDE_FLOOR of the mid's power."""
  xp = _xp(target_mid_side)
  power = xp.sum(xp.square(target_mid_side), axis=-1)
  return power[..., 1] >= SIDE_FLOOR * power[..., 0]


def zero_latency_shift(pans, initial_pan: float = CENTRE):
  """Pans predicted on F2 frame t applied to frame t + 1 (the gains' shift, `frames.zero_latency_shift`)."""
  return frames.zero_latency_shift(pans, initial_pan)
