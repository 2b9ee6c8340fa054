"""What inference may rely on from a mixer: its capabilities, its state and one step over whole F2 frames.

Every mixer in `alm_jax.models` (the ALM, the DMC baselines, the console
automixers) is built by `alm_jax.models.build_mixer(config)` as an object that
satisfies `Mixer`. The offline chunked mixer, the streaming mixer, the
SavedModel and ONNX exports and the evaluation all drive `Mixer.step` (or, for
per-segment models, `Mixer.mix_segments`) and read `Mixer.capabilities`;
none of them looks at `config.model.name`. A rule that a model cannot follow
(no streaming for a non-causal model, ...) is refused by the model itself with
`Mixer.refuse`, so each refusal has one wording. Design notes:
docs/architecture.md.
"""

import dataclasses
from typing import Any, Mapping, Protocol

import jax
import jax.numpy as jnp

from alm_jax import stereo

# A sample beyond this magnitude (+80 dB over full scale) is no audio any
# interface delivers: squaring one near 1.9e19 overflows float32 and would
# turn the RMS, and from it every later gain, into NaN.
MAX_ABS_SAMPLE = 1e4

State = Mapping[str, jax.Array]
Params = Any


class UnsupportedModelError(ValueError):
  """The mixer cannot do what was asked (stream, be chunked, be mixed by segments); says why."""


@dataclasses.dataclass(frozen=True)
class Capabilities:
  """What a mixer promises.

  Attributes:
    description: a short human name for messages ('ALM-MR', 'Dugan automixer').
    sample_rate: audio rate in Hz.
    f1: F1 frame in samples (what the mixer looks at per gain decision).
    f2: F2 frame in samples: one gain per channel per F2 frame.
    stride: F2 frames between two F1 frames (hop = stride * f2).
    max_channels: the most channels one stream may have.
    causal: no gain depends on audio after its own F2 frame.
    zero_latency: the gain applied to F2 frame t was known when frame t - 1
      ended, so samples can be output as they arrive.
    per_segment: one gain per channel per segment, from the whole segment
      (DMC-OG): mixed with `mix_segments`, never with `step`.
    trainable: has parameters learnt by `alm_jax.main` (console automixers: False).
    initial_gain: gain applied before the first prediction.
    streaming_refusal: why the mixer cannot stream, or None when it can.
    outputs: what it sets per channel and F2 frame: ('gain',) (a mono mix) or
      ('gain', 'pan') (also a pan, a stereo mix: `Mixer.step_stereo`).
  """
  description: str
  sample_rate: int
  f1: int
  f2: int
  stride: int
  max_channels: int
  causal: bool
  zero_latency: bool
  per_segment: bool = False
  trainable: bool = True
  initial_gain: float = 1.0
  streaming_refusal: str | None = None
  outputs: tuple = ('gain',)

  @property
  def stereo(self) -> bool:
    """Whether the mixer pans (a mono mixer's stereo output is its mix at the centre)."""
    return 'pan' in self.outputs

  @property
  def hop(self) -> int:
    """Samples between two F1 frames: offline chunks are whole hops."""
    return self.stride * self.f2

  @property
  def streams(self) -> bool:
    return self.streaming_refusal is None


class Mixer(Protocol):
  """The interface of every mixer (see the module docstring).

  `step` mixes a chunk of whole F2 frames from a state and returns the next
  state: mixing a whole signal is one step from `init_state` (the chunk
  padded with silence to whole hops); streaming is one step per F2 frame.
  States are flat dicts of float32/int32/bool arrays whose leading axes are
  [batch, channels] or none, so exports map them onto named tensors.
  Non-finite or absurd samples (|x| > MAX_ABS_SAMPLE) are contained inside
  `step` (`contain_faults`): the channel is muted for that F2 frame, the state
  never absorbs them, and `state['faults']` counts such frames per channel.
  """
  capabilities: Capabilities

  def init_state(self, batch: int, channels: int) -> dict:
    """The state before the first sample: silence before the signal, `initial_gain` in force."""

  def step(self, params: Params, state: State, chunk: jax.Array, channel_mask: jax.Array):
    """chunk [b, c, k * f2], channel_mask [b, c] bool -> (state, gains [b, c, k], mix [b, k * f2]).

    `gains` are the gains applied to each F2 frame (0 on masked channels),
    `params` the 'params' collection (unwrapped: the tree `restore_params`
    returns). Traceable with symbolic b and c.
    """

  def gains_in_force(self, state: State) -> jax.Array:
    """[b, c]: the gains the next F2 frame will get (known before it arrives when zero_latency)."""

  def step_stereo(self, params: Params, state: State, chunk: jax.Array, channel_mask: jax.Array):
    """Stereo mixers only (`capabilities.stereo`): `step` with the pans and the stereo mix.

    Returns (state, outputs): outputs is a dict of `gains` [b, c, k], `pans`
    [b, c, k] (applied to each F2 frame, 0 on masked channels), `mix` [b, k * f2]
    (`step`'s mono mix: the sum of gain x input, whatever the pans) and `stereo`
    [b, 2, k * f2] (left, right: `alm_jax.stereo.apply_gains_stereo`). Callers go
    through `step_stereo(mixer, ...)` below, which places a mono mixer's mix at
    the centre.
    """

  def pans_in_force(self, state: State) -> jax.Array:
    """Stereo mixers only: [b, c] the pans the next F2 frame will get."""

  def mix_segments(self, params: Params, audio: jax.Array, channel_mask: jax.Array,
                   segment_frames: int) -> dict:
    """Per-segment mixers only: audio [b, c, n] (whole segments) -> {'mix', 'gains'}."""

  def refuse(self, use: str) -> None:
    """Raises UnsupportedModelError with the model's reason if it cannot be used for `use`.

    `use` is 'stream', 'chunk' or 'segments'.
    """


def step_stereo(mixer: Mixer, params: Params, state: State, chunk, channel_mask):
  """(state, {'gains', 'pans', 'mix', 'stereo'}) of any mixer (see `Mixer.step_stereo`).

  A stereo mixer's own `step_stereo`; a mono mixer (the DMC, the console
  automixers) pans every channel to the centre: its `step` mix at -3 dB on
  both sides (`stereo.centred`), pans 0.
  """
  if mixer.capabilities.stereo:
    return mixer.step_stereo(params, state, chunk, channel_mask)
  state, gains, mix = mixer.step(params, state, chunk, channel_mask)
  return state, {'gains': gains, 'pans': jnp.zeros_like(gains), 'mix': mix,
                 'stereo': stereo.centred(mix)}


def pans_in_force(mixer: Mixer, state: State):
  """[b, c]: the pans the next F2 frame gets (0, the centre, for a mono mixer)."""
  if mixer.capabilities.stereo:
    return mixer.pans_in_force(state)
  return jnp.zeros_like(mixer.gains_in_force(state))


def contain_faults(chunk, f2: int):
  """Zeros every F2 frame of a channel that holds a non-finite or absurd sample.

  Args:
    chunk: [b, c, k * f2] float32.
    f2: samples per F2 frame.
  Returns:
    (clean [b, c, k * f2], bad [b, c, k] bool).
  """
  b, c, n = chunk.shape
  framed = chunk.reshape(b, c, n // f2, f2)
  # abs(NaN) > x is False, so test finiteness explicitly.
  bad = jnp.any(~jnp.isfinite(framed) | (jnp.abs(framed) > MAX_ABS_SAMPLE), axis=-1)
  clean = jnp.where(bad[..., None], 0.0, framed).reshape(b, c, n)
  return clean, bad


def check_params_convention(params) -> None:
  """Refuses the `{'params': tree}` variables dict where the unwrapped tree is expected."""
  if isinstance(params, Mapping) and set(params) == {'params'}:
    raise TypeError("Pass the parameter tree itself (what alm_jax.restore.restore_params "
                    "returns), not the variables dict {'params': tree}: every alm_jax entry point "
                    "takes the unwrapped tree.")


@dataclasses.dataclass(frozen=True, eq=False)
class LoadedMixer:
  """A mixer ready to run, built once where a command starts and handed down whole.

  Inference, export, evaluation and the live program take this rather than a
  config, so no layer below the entry point builds a mixer again; compiled
  programs are cached by it (it compares and hashes by identity).

  Attributes:
    mixer: the `Mixer` of `config`.
    params: its parameter tree, unwrapped ({} for a mixer without parameters).
    config: the full config it was built from (a checkpoint's: the saved run's).
    step: the checkpoint's step (0 for a config file).
    source: what named it (the --checkpoint value), for messages.
  """
  mixer: Mixer
  params: Params
  config: Any
  step: int = 0
  source: str = ''

  @property
  def capabilities(self) -> Capabilities:
    return self.mixer.capabilities
