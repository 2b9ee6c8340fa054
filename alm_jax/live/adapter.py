"""The one place the live program touches JAX: the streaming step, one F2 frame at a time.

Everything else in `alm_jax.live` is NumPy and threads, so pointing the live
program at another streaming implementation means changing this file only.
"""

import jax
import jax.numpy as jnp
import numpy as np

from alm_jax import frames
from alm_jax import streaming


class StepAdapter:
  """Runs the jitted streaming step on whole F2 frames of one stream.

  Attributes:
    channels: channels of the stream.
    spec: the model's `frames.FrameSpec` (f2 samples per call).
    initial_gain: the gain the model gives frame 0.
  """

  def __init__(self, config, params, channels: int):
    self.config = config
    # checkpoints.restore_params gives the parameter tree; the streaming step
    # takes model.apply's variables.
    self.variables = params if 'params' in params else {'params': params}
    self.channels = int(channels)
    self.spec = frames.FrameSpec.from_config(config.model)
    self.initial_gain = float(config.model.initial_gain)
    self._step = streaming.jitted_step(config)
    self.reset()

  def reset(self):
    """Back to the model's state before the first sample (silent history)."""
    self._state = streaming.init_state(self.config, 1, self.channels)

  def warm_up(self):
    """Compiles the step (seconds) on silence, then resets: the first live frame must not compile."""
    self.step(np.zeros((self.channels, self.spec.f2), np.float32), np.ones(self.channels, bool))
    self.reset()

  def step(self, block, mask):
    """One F2 frame.

    Args:
      block: [channels, f2] float32, finite, the samples of the frame.
      mask: [channels] bool, False for channels left out of this frame.
    Returns:
      [channels] float32: the gains the model predicts for the next F2 frame
      (0 for masked channels).
    """
    self._state, _, gains = self._step(self.variables, self._state, jnp.asarray(block[None]),
                                       jnp.asarray(mask[None]))
    return np.asarray(jax.device_get(gains))[0]
