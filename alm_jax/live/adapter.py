"""The one place the live program touches JAX: the mixer's step, one F2 frame at a time.

Everything else in `alm_jax.live` is NumPy and threads. The adapter drives any
mixer of `alm_jax.models.build_mixer` through its protocol
(`alm_jax.models.protocol.Mixer`): `init_state`, `step_stereo` over one whole
F2 frame (a stereo mixer's own, a mono mixer's `step` with its pans at the
centre), `gains_in_force` and `pans_in_force`; pointing the live program at another implementation
means changing this file only.
"""

import jax
import numpy as np

from alm_jax import frames
from alm_jax.models import compiler_options
from alm_jax.models import protocol


class StepAdapter:
  """Runs the jitted mixer step on whole F2 frames of one stream.

  Attributes:
    channels: channels of the stream.
    spec: the model's `frames.FrameSpec` (f2 samples per call).
    initial_gain: the gain the model gives frame 0.
    stereo: the model pans (`Capabilities.stereo`); a mono model's pans are 0.
    faults: [channels] F2 frames the step itself muted (its own guard).
  """

  def __init__(self, loaded, channels: int):
    """loaded: the mixer built once where the program started (`restore.load_mixer`)."""
    config = loaded.config
    self.mixer = loaded.mixer
    self.mixer.refuse('stream')
    caps = self.mixer.capabilities
    if channels > caps.max_channels:
      raise ValueError(f'{channels} channels but {caps.description} mixes at most '
                       f'{caps.max_channels} (config.model.max_channels).')
    self.params = loaded.params  # the unwrapped tree
    self.channels = int(channels)
    self.spec = frames.FrameSpec.from_config(config.model)
    self.initial_gain = float(caps.initial_gain)
    self.stereo = caps.stereo
    mixer = self.mixer

    def frame_step(params, state, frame, mask):
      # The stereo step for a stereo mixer (its pans advance with its gains); the mixes it
      # returns are not used here, so XLA leaves them out of the compiled step.
      state, _ = protocol.step_stereo(mixer, params, state, frame, mask)
      return state, mixer.gains_in_force(state), protocol.pans_in_force(mixer, state)

    self._step = jax.jit(frame_step, donate_argnums=1, compiler_options=compiler_options(config))
    self.faults = np.zeros(self.channels, np.int64)
    self.reset()

  def reset(self):
    """Back to the model's state before the first sample (silent history)."""
    self._state = self.mixer.init_state(1, self.channels)

  def warm_up(self):
    """Compiles the step (seconds) on silence, then resets: no live frame may compile.

    Two steps: the state `init_state` makes and the state a step returns differ
    in their abstract signature (weak types), so each gets its own executable.
    """
    for _ in range(2):
      self.step(np.zeros((self.channels, self.spec.f2), np.float32), np.ones(self.channels, bool))
    self.reset()

  def step(self, block, mask):
    """One F2 frame.

    Args:
      block: [channels, f2] float32 samples of the frame.
      mask: [channels] bool, False for channels left out of this frame.
    Returns:
      (gains [channels], pans [channels]) float32: what the model sets for the
      next F2 frame (0 for masked channels; pans all 0 for a mono model).
    """
    self._state, gains, pans = self._step(self.params, self._state, block[None], mask[None])
    gains, pans = np.asarray(gains)[0], np.asarray(pans)[0]
    return (np.where(mask, gains, 0.0).astype(np.float32),
            np.where(mask, pans, 0.0).astype(np.float32))
