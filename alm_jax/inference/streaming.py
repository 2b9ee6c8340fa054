"""Zero-latency streaming: any mixer that streams, fed blocks of any size.

    stream = BlockStream(loaded.mixer)          # loaded: restore.load_mixer(...)
    state = stream.init_state(batch, channels)
    state, out, gains, faults = jax.jit(stream.step, donate_argnums=1)(params, state, block, mask)

Each output sample gets gains known before it arrived, and every F2 frame a block completes
runs the mixer's own `Mixer.step`, so the stream equals the offline mix for any block sizes
(one compile per size); faulty samples mute their channel for the block. `StreamingMixer` is
the NumPy host wrapper. How it works, faults, state and costs: docs/streaming.md.
"""

import jax
import jax.numpy as jnp
import numpy as np

from alm_jax import frames
from alm_jax import stereo
from alm_jax.inference import offline
from alm_jax.models import compiler_options
from alm_jax.models import protocol


class BlockStream:
  """A mixer's `step` over whole F2 frames, driven by blocks of any size.

  State: the mixer's own state (its keys), plus `pending` [b, c, f2] (the last
  f2 input samples: the current F2 frame's first `fill` samples end it) and
  `fill` [] int32 (samples received of the current F2 frame).
  """

  def __init__(self, mixer: protocol.Mixer):
    mixer.refuse('stream')
    self.mixer = mixer
    self.capabilities = mixer.capabilities

  def init_state(self, batch: int, channels: int) -> dict:
    state = dict(self.mixer.init_state(batch, channels))
    for key in ('pending', 'fill'):
      if key in state:
        raise ValueError(f'Mixer state key {key!r} collides with the block stream\'s own.')
    state['pending'] = jnp.zeros((batch, channels, self.capabilities.f2), jnp.float32)
    state['fill'] = jnp.zeros((), jnp.int32)
    return state

  def step(self, params, state, block, channel_mask):
    """block [b, c, n] (any n >= 1) -> (state, out [b, n], gains [b, c], faults [b, c] bool).

    `gains` are the gains in force after the block's last sample (those the
    next sample gets; 0 on masked channels); `faults` marks channels muted for
    this block. A stereo mixer's `out` is [b, 2, n] (left, right), each sample
    panned with the pans in force (`stereo.pan_law`), as offline.
    """
    f2 = self.capabilities.f2
    b, c = state['pending'].shape[:2]
    if block.ndim != 3 or tuple(block.shape[:2]) != (b, c):
      raise ValueError(f'block must be [batch, channels, samples] with (batch, channels) = {(b, c)} '
                       f'as the state was made for, got shape {tuple(block.shape)}.')
    if tuple(channel_mask.shape) != (b, c):
      raise ValueError(f'channel_mask must be [batch, channels] = {(b, c)}, '
                       f'got {tuple(channel_mask.shape)}.')
    n = block.shape[-1]
    if n < 1:
      raise ValueError('block has no samples.')
    mask = channel_mask.astype(bool)
    block = block.astype(jnp.float32)
    faults = jnp.any(~jnp.isfinite(block) | (jnp.abs(block) > protocol.MAX_ABS_SAMPLE), axis=-1)
    block = jnp.where(faults[..., None], 0.0, block)
    fill = state['fill']
    mixer_state = {k: v for k, v in state.items() if k not in ('pending', 'fill')}
    # Block sample p sits at ext[f2 + p]; the F2 frame ending just before block
    # position e (exclusive) is ext[e : e + f2].
    ext = jnp.concatenate([state['pending'], block], axis=-1)

    def slot(mstate, k):
      end = (f2 - fill) + k * f2  # block-relative end of the k-th frame this block completes

      def run(mstate):
        frame = jax.lax.dynamic_slice_in_dim(ext, end, f2, axis=-1)
        mstate, _, _ = self.mixer.step(params, mstate, frame, mask)
        return mstate

      mstate = jax.lax.cond(end <= n, run, lambda s: s, mstate)
      return mstate, self._in_force(mstate)

    in_force0 = self._in_force(mixer_state)
    mixer_state, after = jax.lax.scan(slot, mixer_state, jnp.arange(-(-n // f2), dtype=jnp.int32))
    # Sample i lies in the (i + fill) // f2-th frame the block touches; its
    # gain is the one in force before that frame began.
    in_force = jax.tree.map(lambda a, b: jnp.concatenate([a[None], b], axis=0),
                            in_force0, after)  # [K + 1, b, c] each
    seg = (jnp.arange(n, dtype=jnp.int32) + fill) // f2
    if self.capabilities.stereo:
      gains_now, pans_now = in_force
      g = jnp.where(mask[None], gains_now[seg], 0.0)  # [n, b, c]
      left, right = stereo.pan_law(pans_now[seg])
      out = frames.stack([jnp.einsum('bcn,nbc->bn', block, g * left),
                          jnp.einsum('bcn,nbc->bn', block, g * right)], axis=1)
    else:
      g = jnp.where(mask[None], in_force[seg], 0.0)  # [n, b, c]
      out = jnp.einsum('bcn,nbc->bn', block, g)
    new_state = dict(mixer_state, pending=ext[..., ext.shape[-1] - f2:],
                     fill=jnp.mod(fill + n, f2).astype(jnp.int32))
    gains = jnp.where(mask, self.mixer.gains_in_force(mixer_state), 0.0)
    return new_state, out, gains, faults

  def _in_force(self, mstate):
    """The gains in force (and, for a stereo mixer, the pans): [b, c] each."""
    if self.capabilities.stereo:
      return self.mixer.gains_in_force(mstate), self.mixer.pans_in_force(mstate)
    return self.mixer.gains_in_force(mstate)


def block_stream(loaded: protocol.LoadedMixer) -> BlockStream:
  """The cached `BlockStream` of the loaded mixer (one per config: `offline.cached`)."""
  return offline.cached('stream', loaded.config, make=lambda: BlockStream(loaded.mixer))


def jitted_step(loaded: protocol.LoadedMixer):
  """`jax.jit(BlockStream.step)` with the state donated, shared by every stream of this config."""
  stream = block_stream(loaded)
  return offline.cached('stream-step', loaded.config,
                        make=lambda: jax.jit(stream.step, donate_argnums=(1,),
                                             compiler_options=compiler_options(loaded.config)))


class StreamingMixer:
  """Mixes a live multitrack stream block by block (NumPy in and out).

  A stereo mixer's blocks come out as [batch, 2, n] (left, right).

  Attributes:
    gains: [batch, channels] the gains in force after the last block.
    pans: [batch, channels] the pans in force after the last block (0: a mono mixer).
    faults: [batch, channels] int, blocks in which each channel was muted for
      non-finite or absurd samples.
  """

  def __init__(self, loaded: protocol.LoadedMixer, batch: int = 1, channels: int | None = None,
               channel_mask=None):
    """Args:
      loaded: the mixer and its parameters (`restore.load_mixer`, `models.load`).
      batch: streams mixed in parallel.
      channels: channels per stream; default: the mixer's max_channels.
      channel_mask: [batch, channels] bool, default all True.
    """
    protocol.check_params_convention(loaded.params)
    self.stream = block_stream(loaded)
    caps = self.stream.capabilities
    self.params = loaded.params
    self.batch = batch
    self.channels = int(caps.max_channels if channels is None else channels)
    self._step = jitted_step(loaded)
    self.set_channel_mask(np.ones((batch, self.channels), bool) if channel_mask is None
                          else channel_mask)
    self.reset()

  def reset(self):
    """Back to the state before the first sample."""
    self.state = self.stream.init_state(self.batch, self.channels)
    self.gains = np.where(self._mask, self.stream.capabilities.initial_gain, 0.0).astype(np.float32)
    self.pans = np.zeros((self.batch, self.channels), np.float32)
    self.faults = np.zeros((self.batch, self.channels), np.int64)

  def set_channel_mask(self, channel_mask):
    mask = np.asarray(channel_mask).astype(bool).reshape(self.batch, self.channels)
    empty = np.flatnonzero(~mask.any(axis=1))
    if empty.size:
      raise ValueError(f'streams {empty.tolist()} have every channel masked; each needs at least '
                       'one active channel.')
    self._mask = mask
    self._mask_device = jnp.asarray(mask)

  def process(self, block):
    """Mixes one block [batch, channels, n] (or [channels, n] when batch is 1) -> [batch, n] (or [n]).

    A stereo mixer returns [batch, 2, n] (or [2, n]).

    The block is float audio, full scale +-1; integer PCM is refused (it would mix at x32767).
    """
    block = np.asarray(block)
    if not np.issubdtype(block.dtype, np.floating):
      raise TypeError(f'StreamingMixer.process takes float blocks (full scale +-1), got {block.dtype}:'
                      ' convert integer PCM first, e.g. block.astype(np.float32) / 32768 for int16.')
    block = block.astype(np.float32, copy=False)
    squeeze = block.ndim == 2
    if squeeze:
      if self.batch != 1:
        raise ValueError(f'A [channels, samples] block needs batch=1; this mixer has batch='
                         f'{self.batch}: pass [batch, channels, samples].')
      block = block[None]
    if block.ndim != 3 or block.shape[:2] != (self.batch, self.channels):
      raise ValueError(f'Expected a block of shape [{self.batch}, {self.channels}, samples], got '
                       f'{block.shape}.')
    if block.shape[-1] == 0:
      lead = (2,) if self.stream.capabilities.stereo else ()
      return np.zeros(((self.batch,) if not squeeze else ()) + lead + (0,), np.float32)
    self.state, out, gains, faults = self._step(self.params, self.state, jnp.asarray(block),
                                                self._mask_device)
    self.gains = np.asarray(gains)
    if self.stream.capabilities.stereo:
      self.pans = np.where(self._mask, np.asarray(self.stream.mixer.pans_in_force(self.state)), 0.0)
    self.faults += np.asarray(faults)
    out = np.asarray(out)
    return out[0] if squeeze else out
