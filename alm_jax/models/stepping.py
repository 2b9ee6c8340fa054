"""The `Mixer.step` of models built from per-stage methods (the ALM and the per-frame DMC).

A staged model's flax module has `embed` (front-end input -> F1 embeddings),
`embed_patches`/`contextualize` (the same from log-mel patches), `condition`, `recur` and
`head` (the F2-rate stages). `StagedMixer.step(params, state, chunk [b, c, k*f2], mask [b, c])`
runs them over whole F2 frames: all F1 frames at once for a chunk of whole F1 hops starting on a
hop, else frame by frame in a `lax.scan` (streaming), with the same numbers; `make_plan` builds
the `SpreadPlan` that spreads an F1 frame's embedding over the F2 frames before it. Both paths,
the plan and the state layout: docs/streaming.md ("What it computes", "Where the work goes").
"""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from alm_jax import embeddings
from alm_jax import frames
from alm_jax import stereo
from alm_jax.models import protocol


@dataclasses.dataclass(frozen=True)
class SpreadPlan:
  """How the front end and the embedding are spread over a group's F2 frames.

  Phase k = t % stride of F2 frame t: phase 0 completes an F1 frame; a
  group's F1 frame is prepared on phases 1 .. stride - 1 of the group before.

  Attributes:
    rows_per_f2: log-mel rows each F2 frame completes (0: F1 frames are not on
      the row grid and each is embedded from its samples).
    mel_ready: mel_ready[k] = rows of the frame being prepared that are in the
      ring after phase k (patch_frames on phase 0).
    net_heights: output rows of each embedding layer; () if it runs whole.
    net_chunks: rows of layer i computed on every frame.
    net_starts: net_starts[k][i] = first row of layer i computed on phase k.
  """
  rows_per_f2: int
  mel_ready: tuple = ()
  net_heights: tuple = ()
  net_chunks: tuple = ()
  net_starts: tuple = ()


def _schedule(ready):
  """Equal chunks, one per phase in the given order, reading only ready rows, covering [0, ready[-1])."""
  last = ready[-1]
  for chunk in range(-(-last // len(ready)), last + 1):
    done, starts = 0, []
    for r in ready:
      end = min(r, done + chunk)
      if end < chunk:
        break  # not enough ready rows for a whole chunk yet
      starts.append(end - chunk)
      done = max(done, end)
    if len(starts) == len(ready) and done == last:
      return chunk, tuple(starts)
  raise AssertionError('unreachable: one chunk of all rows on the last phase always works')


def make_plan(spec: frames.FrameSpec, front: embeddings.Frontend, row_tiles, spread: bool = True):
  """The static per-phase plan (see `SpreadPlan`) for an embedding with these `row_tiles`."""
  if not front.shares_rows(spec.f2):
    return SpreadPlan(rows_per_f2=0)
  fs = front.spec
  up, down = fs.ratio
  rows_per_f2 = spec.f2 // down * up // fs.hop
  mel_ready = tuple(fs.patch_frames if k == 0 else
                    max(0, fs.patch_frames - (spec.stride - k) * rows_per_f2)
                    for k in range(spec.stride))
  plan = SpreadPlan(rows_per_f2=rows_per_f2, mel_ready=mel_ready)
  heights, h, w = [], fs.patch_frames, fs.n_mels
  for a, b in row_tiles:
    if h % a or w % b:
      return plan  # the module itself refuses such a patch
    h, w = h // a, w // b
    heights.append(h)
  if not spread or not heights or spec.stride == 1:
    return plan
  order = list(range(1, spec.stride)) + [0]  # preparation, then the frame that completes it
  chunks, starts = [], []
  ready = [mel_ready[k] for k in order]
  for (a, _), _ in zip(row_tiles, heights):
    chunk, layer_starts = _schedule([r // a for r in ready])
    chunks.append(chunk)
    by_phase = dict(zip(order, layer_starts))
    starts.append(tuple(by_phase[k] for k in range(spec.stride)))
    ready = [int(r) for r in np.maximum.accumulate([s + chunk for s in layer_starts])]
  return dataclasses.replace(plan, net_heights=tuple(heights), net_chunks=tuple(chunks),
                             net_starts=tuple(zip(*starts)))


def rows_reader(front: embeddings.Frontend, num_rows: int):
  """(input samples, fn(samples [b, c, n_in]) -> the last `num_rows` log-mel rows ending at their end)."""
  fs = front.spec
  up, down = fs.ratio
  need = (num_rows - 1) * fs.hop + fs.window  # 16 kHz samples the rows read
  blocks = -(-need // up)
  n_in = (blocks + 1) * down  # one more block: the resampler's history

  def rows(x):
    x16 = front.resample(x)[..., blocks * up - need:]
    return front.log_mel_rows(x16, num_rows)

  return n_in, rows


class StagedMixer:
  """`protocol.Mixer` for a causal flax module with per-stage methods (see the module docstring)."""

  def __init__(self, module, capabilities: protocol.Capabilities, *, embedding_dim: int,
               spread: bool = True):
    """Args:
      module: the flax module (AiLiveMixer, per-frame DMC).
      capabilities: what it promises.
      embedding_dim: size of what `embed` returns per channel and F1 frame.
      spread: spread a row-by-row embedding over the F2 frames (see SpreadPlan).
    """
    self.module = module
    self.capabilities = capabilities
    cfg = module.config
    self.spec = frames.FrameSpec.from_config(cfg)
    self.front = embeddings.frontend_for(cfg)
    self.fs = self.front.spec
    self.front.check_frame(self.spec.f1)
    self.embedding_dim = int(embedding_dim)
    self.carry_size = int(module.carry_size)  # the module's recurrent state per channel
    # The module's gain ramp (the ALM's config.model.gain_smooth_s), 1.0 for modules without one.
    self.gain_smooth = float(getattr(module, 'gain_smooth', 1.0))
    self.zero_latency = bool(cfg.zero_latency)
    self.history = max(0, self.fs.frame_input_samples - self.spec.f2)
    emb = embeddings.build_embedding(cfg.embedding)
    self.row_tiles = tuple(getattr(emb, 'row_tiles', ()))
    self.features = tuple(cfg.embedding.get('small_features', ()))
    # A lagged model (config.model.f1_lag = L > 0) embeds an F1 frame's channels in L parts, one
    # on each of the L F2 frames after the frame's end, and uses it from the L-th: no F2 frame
    # carries a whole F1 frame's embedding work. The row plan is not needed then.
    self.lag = int(getattr(module, 'f1_lag', 0))  # the module's own (the ALM's; 0 for DMC)
    if frames.lag_problem(self.lag, self.spec.stride):
      raise ValueError(frames.lag_problem(self.lag, self.spec.stride))
    # A module whose embedding reads each patch whole before its first layer (the ALM's
    # config.model.embed_level: the patch's own level) cannot have it spread row by row.
    whole = bool(getattr(module, 'embeds_whole_patches', False))
    # One whose patches are levelled by the channel's running level (the ALM's
    # config.model.embed_level.reference = 'running') reads it as each F1 frame ends.
    self.running_level = bool(getattr(module, 'embeds_at_running_level', False))
    self.plan = make_plan(self.spec, self.front, self.row_tiles, spread and not self.lag and not whole)
    self.raw_dim = int(cfg.embedding.get('dim', 0))  # the embedding network's output, per frame
    # Off the row grid (rows_per_f2 = 0) but with F2 frames of whole resampler blocks (the
    # student's 3 s frame, 50 ms F2), a lagged stream resamples each F2 frame once into a ring of
    # the last patch's resampled samples (`resampled`), so an F1 frame's parts read the ring
    # instead of resampling its whole input again: the offline pass resamples each signal once too.
    self.resampled_ring = bool(self.lag and not self.plan.rows_per_f2
                               and self.spec.f2 % self.fs.ratio[1] == 0)
    self.stereo = capabilities.stereo  # the module's head also returns pans

  def refuse(self, use: str) -> None:
    caps = self.capabilities
    if use == 'stream' and not caps.streams:
      raise protocol.UnsupportedModelError(caps.streaming_refusal)
    if use == 'segments':
      raise protocol.UnsupportedModelError(
          f'{caps.description} is causal and gives a gain per F2 frame: it is mixed chunk by chunk '
          '(there are no segments to give it); drop --segment_seconds.')

  # ---- state -------------------------------------------------------------------------------

  def _work_shapes(self, batch, channels):
    shapes = {}
    if self.plan.rows_per_f2:
      shapes['mel'] = (batch, channels, self.fs.patch_frames, self.fs.n_mels)
    w = self.fs.n_mels
    for i, h in enumerate(self.plan.net_heights):
      w //= self.row_tiles[i][1]
      shapes[f'net{i}'] = (batch, channels, h, w, self.features[i])
    return shapes

  def init_state(self, batch: int, channels: int) -> dict:
    """The state before the first sample.

    Returns a flat dict:
      history  [b, c, H] the last H = frame_input_samples - f2 input samples
               (silence before the signal, as offline);
      frame    [] int32 F2 frames mixed so far;
      emb      [b, c, E] the current F1 frame's embedding;
      carry    [b, c, carry_size] the recurrent state (the module's `carry_size`);
      gain     [b, c] the gain the next F2 frame gets (initial_gain at first);
      pan      [b, c] the pan the next F2 frame gets (the centre at first; stereo only);
      faults   [b, c] int32 F2 frames muted by `contain_faults`;
      mel      [b, c, patch_frames, n_mels] the last log-mel rows (MR only);
      prepared [] bool whether net<i> holds the next F1 frame's rows (spread only);
      net<i>   [b, c, h_i, w_i, features_i] layer i of the F1 frame being prepared;
      f1_input [b, c, ...] the last F1 frame's input: its log-mel patch (MR on the row
               grid), its resampled samples (F2 on resampler blocks) or its samples
               (lagged models only);
      resampled [b, c, patch_samples] the last patch's resampled samples (lagged, off the
               row grid, F2 on resampler blocks);
      raw_next [b, c, dim] its embedding-network outputs, part by part (lagged only);
      f1_level [b, c] the running level as that F1 frame ended (lagged, levelled by it).
    """
    if batch < 1 or channels < 1:
      raise ValueError(f'Need batch >= 1 and channels >= 1, got batch={batch}, channels={channels}.')
    caps = self.capabilities
    if channels > caps.max_channels:
      raise ValueError(f'{channels} channels is more than the {caps.max_channels} this model '
                       'allows (config.model.max_channels).')
    state = {
        'history': jnp.zeros((batch, channels, self.history), jnp.float32),
        'frame': jnp.zeros((), jnp.int32),
        'emb': jnp.zeros((batch, channels, self.embedding_dim), jnp.float32),
        'carry': jnp.zeros((batch, channels, self.carry_size), jnp.float32),
        'gain': jnp.full((batch, channels), caps.initial_gain, jnp.float32),
        'faults': jnp.zeros((batch, channels), jnp.int32),
    }
    if self.stereo:
      state['pan'] = jnp.full((batch, channels), stereo.CENTRE, jnp.float32)
    if self.resampled_ring:  # silence before the signal resamples to silence, as offline
      state['resampled'] = jnp.zeros((batch, channels, self.fs.patch_samples), jnp.float32)
    if self.lag:
      state['f1_input'] = jnp.zeros((batch, channels) + self._f1_input_shape(), jnp.float32)
      if self.running_level:
        state['f1_level'] = jnp.zeros((batch, channels), jnp.float32)
      state['raw_next'] = jnp.zeros((batch, channels, self.raw_dim), jnp.float32)
    for key, shape in self._work_shapes(batch, channels).items():
      if key == 'mel':  # rows of silence, exactly as the front end computes them
        state[key] = jnp.broadcast_to(self._silent_row(), shape)
      else:  # read only once prepared
        state[key] = jnp.zeros(shape, jnp.float32)
    if self.plan.net_heights:
      state['prepared'] = jnp.zeros((), bool)
    return state

  def _f1_input_shape(self):
    if self.plan.rows_per_f2:
      return (self.fs.patch_frames, self.fs.n_mels)
    if self.resampled_ring:
      return (self.fs.patch_samples,)
    return (self.fs.frame_input_samples,)

  def gains_in_force(self, state):
    return state['gain']

  def pans_in_force(self, state):
    self._refuse_mono()
    return state['pan']

  def _refuse_mono(self):
    if not self.stereo:
      raise protocol.UnsupportedModelError(
          f"{self.capabilities.description} sets gains only (config.model.outputs = ('gain',)): "
          'it has no pans; use protocol.step_stereo, which places its mix at the centre.')

  def _silent_row(self):
    n_in, rows = rows_reader(self.front, 1)
    return rows(jnp.zeros((1, 1, n_in), jnp.float32))[0, 0, 0].astype(jnp.float32)

  # ---- step ----------------------------------------------------------------------------------

  def step(self, params, state, chunk, channel_mask):
    """See `protocol.Mixer.step`."""
    state, gains, _, chunk, mask = self._advance(params, state, chunk, channel_mask)
    return state, gains, frames.apply_gains(chunk, gains, mask, self.spec)

  def step_stereo(self, params, state, chunk, channel_mask):
    """See `protocol.Mixer.step_stereo`."""
    self._refuse_mono()
    state, gains, pans, chunk, mask = self._advance(params, state, chunk, channel_mask)
    return state, {'gains': gains, 'pans': pans,
                   'mix': frames.apply_gains(chunk, gains, mask, self.spec),
                   'stereo': stereo.apply_gains_stereo(chunk, gains, pans, mask, self.spec)}

  def _advance(self, params, state, chunk, channel_mask):
    """(state, gains [b, c, k], pans [b, c, k] or None, the chunk with faults muted, mask)."""
    spec = self.spec
    n = chunk.shape[-1]
    if n % spec.f2:
      raise ValueError(f'A step takes whole F2 frames ({spec.f2} samples each), got {n} samples.')
    chunk, bad = protocol.contain_faults(chunk.astype(jnp.float32), spec.f2)
    mask = channel_mask.astype(bool)
    t = n // spec.f2
    if t % spec.stride == 0:
      if spec.stride == 1:
        new_state, gains, pans = self._whole_hops(params, state, chunk, mask)
      else:
        new_state, gains, pans = jax.lax.cond(
            state['frame'] % spec.stride == 0, self._whole_hops, self._frame_by_frame,
            params, state, chunk, mask)
    else:
      new_state, gains, pans = self._frame_by_frame(params, state, chunk, mask)
    new_state = dict(new_state, faults=state['faults'] + jnp.sum(bad, axis=-1, dtype=jnp.int32))
    return new_state, gains, pans, chunk, mask

  def _apply(self, params, *args, method):
    return self.module.apply({'params': params}, *args, method=method)

  def _head(self, params, y, mask, previous):
    """GRU output -> (predicted gains [b, c, t], pans [b, c, t] or None), float32.

    previous [b, c]: the gain predicted on the frame before, which a gain ramp
    (the module's `gain_smooth`, as offline) starts from.
    """
    pred = self._apply(params, y, mask, method=self.module.head)
    gains, pans = pred if self.stereo else (pred, None)
    gains = frames.smooth_gains(gains.astype(jnp.float32), previous, self.gain_smooth)
    return gains, None if pans is None else pans.astype(jnp.float32)

  def _gains_applied(self, state, pred, mask, key: str = 'gain'):
    """Predicted gains (or pans, key='pan') [b, c, t] -> those applied to the frames."""
    if self.zero_latency:
      gains = jnp.concatenate([state[key][..., None], pred[..., :-1]], axis=-1)
    else:
      gains = pred
    return jnp.where(mask[..., None], gains, 0.0)

  def _f1_levels(self, params, state, f2_frames, num_frames: int = 1):
    """The running level as each F1 frame these F2 frames [b, c, t, f2] start with ends
    [b, c, num_frames] dB where the module's patches are levelled by it
    (`self.running_level`), else None."""
    if not self.running_level:
      return None
    return self._apply(params, state['carry'], f2_frames, num_frames,
                       method=self.module.f1_levels)

  def _whole_hops(self, params, state, chunk, mask):
    """A chunk of whole hops starting on a hop: every stage once over the chunk."""
    spec, fs = self.spec, self.fs
    hop = spec.stride * spec.f2
    groups = chunk.shape[-1] // hop
    ext = jnp.concatenate([state['history'], chunk], axis=-1)
    # The chunk's last F1 frame ends hop - f2 samples before the chunk does; an
    # F2 frame longer than the front end's input (no history then) reads only its end.
    signal = ext[..., :ext.shape[-1] - (hop - spec.f2)]
    signal = signal[..., max(0, spec.f2 - fs.frame_input_samples):]
    f2_frames = frames.f2_frames(chunk, spec)
    level = self._f1_levels(params, state, f2_frames, groups)
    emb = self._apply(params, signal, groups, mask, *(() if level is None else (True, level)),
                      method=self.module.embed)  # [b, c, g, E]
    per_frame = jnp.repeat(emb, spec.stride, axis=2)
    if self.lag:  # a group's first `lag` frames still use the F1 frame before it
      before = jnp.concatenate([state['emb'][:, :, None].astype(emb.dtype), emb[:, :, :-1]], axis=2)
      phase = jnp.arange(per_frame.shape[2]) % spec.stride
      per_frame = jnp.where((phase >= self.lag)[:, None], per_frame,
                            jnp.repeat(before, spec.stride, axis=2))
    x = self._apply(params, per_frame, f2_frames, mask, method=self.module.condition)
    carry, y = self._apply(params, state['carry'], x, method=self.module.recur)
    pred, pred_pans = self._head(params, y, mask, state['gain'])
    gains = self._gains_applied(state, pred, mask)
    new_state = dict(state)
    new_state.update(
        history=ext[..., ext.shape[-1] - self.history:],
        frame=state['frame'] + chunk.shape[-1] // spec.f2,
        emb=emb[:, :, -1].astype(jnp.float32),
        # Fixed dtypes: a low-precision compute dtype must not change the state's type.
        carry=carry.astype(jnp.float32),
        gain=pred[..., -1])
    pans = None
    if self.stereo:
      pans = self._gains_applied(state, pred_pans, mask, 'pan')
      new_state['pan'] = pred_pans[..., -1]
    if self.plan.rows_per_f2:
      n_in, rows = rows_reader(self.front, fs.patch_frames)
      new_state['mel'] = rows(ext[..., ext.shape[-1] - n_in:]).astype(jnp.float32)
    if self.resampled_ring:
      new_state['resampled'] = self.front.resample(
          ext[..., ext.shape[-1] - fs.frame_input_samples:])[..., fs.patch_offset:]
    if self.plan.net_heights:
      new_state['prepared'] = jnp.zeros((), bool)  # the next F1 frame is embedded whole
    return new_state, gains, pans

  def _frame_by_frame(self, params, state, chunk, mask):
    """Any chunk of whole F2 frames: the stages one frame at a time in a scan."""
    spec = self.spec
    b, c, n = chunk.shape
    framed = jnp.moveaxis(chunk.reshape(b, c, n // spec.f2, spec.f2), 2, 0)  # [t, b, c, f2]

    def body(st, frame):
      st, gain, pan = self._one_frame(params, st, frame, mask)
      return st, (gain, pan)

    new_state, (gains, pans) = jax.lax.scan(body, dict(state), framed)
    gains = jnp.moveaxis(gains, 0, -1)  # [b, c, t]
    return new_state, gains, None if pans is None else jnp.moveaxis(pans, 0, -1)

  def _one_frame(self, params, st, frame, mask):
    """One F2 frame [b, c, f2] -> (state, gain applied to it [b, c], pan or None)."""
    spec, fs, plan, m = self.spec, self.fs, self.plan, self.module
    ext = jnp.concatenate([st['history'], frame], axis=-1)
    phase = st['frame'] % spec.stride
    st = dict(st)
    if plan.rows_per_f2:
      n_in, rows = rows_reader(self.front, plan.rows_per_f2)
      new_rows = rows(ext[..., ext.shape[-1] - n_in:])
      st['mel'] = jnp.concatenate([st['mel'][:, :, plan.rows_per_f2:], new_rows], axis=2)
    if plan.net_heights:
      st = self._prepare_rows(params, st, phase)
    if self.resampled_ring:  # this frame's blocks, each read with the block before it
      down = fs.ratio[1]
      new = self.front.resample(ext[..., ext.shape[-1] - spec.f2 - down:])
      st['resampled'] = jnp.concatenate([st['resampled'][..., new.shape[-1]:], new], axis=-1)

    def embed_whole(st):
      level = self._f1_levels(params, st, frame[:, :, None])  # [b, c, 1] or None
      at_level = () if level is None else (True, level)
      if plan.rows_per_f2:
        return self._apply(params, st['mel'][:, :, None], mask, *at_level,
                           method=m.embed_patches)[:, :, 0]
      frame_in = fs.frame_input_samples
      return self._apply(params, ext[..., ext.shape[-1] - frame_in:], 1, mask, *at_level,
                         method=m.embed)[:, :, 0]

    def embed_prepared(st):
      last = len(plan.net_heights) - 1
      return self._apply(params, st[f'net{last}'], mask,
                         method=lambda mod, x, msk: mod.contextualize(
                             mod.embedding.pool(x)[:, :, None], msk)[:, :, 0])

    def embed_now(st):
      if plan.net_heights:
        return jax.lax.cond(st['prepared'], embed_prepared, embed_whole, st).astype(jnp.float32)
      return embed_whole(st).astype(jnp.float32)

    if self.lag:
      st = self._lagged_embedding(params, st, ext, phase, mask)
      emb = st['emb']
    else:
      emb = jax.lax.cond(phase == 0, embed_now, lambda st: st['emb'], st)
    x = self._apply(params, emb[:, :, None], frame[:, :, None], mask, method=m.condition)
    carry, y = self._apply(params, st['carry'], x, method=m.recur)
    pred, pred_pan = self._head(params, y, mask, st['gain'])
    pred = pred[:, :, 0]
    applied = jnp.where(mask, st['gain'] if self.zero_latency else pred, 0.0)
    st.update(history=ext[..., ext.shape[-1] - self.history:], frame=st['frame'] + 1, emb=emb,
              carry=carry.astype(jnp.float32), gain=pred)
    pan = None
    if self.stereo:
      pan = jnp.where(mask, st['pan'] if self.zero_latency else pred_pan[:, :, 0], 0.0)
      st['pan'] = pred_pan[:, :, 0]
    if plan.net_heights:
      # After an F1 frame's own frame, the next ones prepare the following F1 frame.
      st['prepared'] = st['prepared'] | (phase == 0)
    return st, applied, pan

  def _prepare_rows(self, params, st, phase):
    """This phase's share of every embedding layer's rows of the F1 frame being prepared."""
    plan, spec = self.plan, self.spec
    starts = jnp.asarray(plan.net_starts, jnp.int32)[phase]
    # Row j of the frame being prepared sits at ring row j + offset.
    offset = jnp.mod(spec.stride - phase, spec.stride) * plan.rows_per_f2
    mel = jnp.pad(st['mel'], [(0, 0), (0, 0), (0, spec.stride * plan.rows_per_f2), (0, 0)])
    view = jax.lax.dynamic_slice_in_dim(mel, offset, st['mel'].shape[2], axis=2)
    x = self._apply(params, view, method=lambda mod, v: mod.embedding.first_map(v))
    for i, chunk in enumerate(plan.net_chunks):
      a = self.row_tiles[i][0]
      slab = jax.lax.dynamic_slice_in_dim(x, starts[i] * a, chunk * a, axis=2)
      rows = self._apply(params, slab, method=lambda mod, s, i=i: mod.embedding.layer(s, i))
      st[f'net{i}'] = jax.lax.dynamic_update_slice_in_dim(st[f'net{i}'], rows.astype(jnp.float32),
                                                          starts[i], axis=2)
      x = st[f'net{i}']
    return st

  def _lagged_embedding(self, params, st, ext, phase, mask):
    """A lagged model's F1 work on phase `phase`: keep, embed one part, or put in force.

    Phase 0 keeps the F1 frame that ends with it (`f1_input`); phases 1 .. lag each run the
    embedding network on ceil(channels / lag) of its channels (`raw_next`); phase lag then
    contextualises them (encoder 1) into the embedding in force (`emb`), as the offline model's
    `frames.f1_index` with the lag reads it.
    """
    lag = self.lag
    st = dict(st)
    if self.plan.rows_per_f2:
      source = st['mel']
    elif self.resampled_ring:
      source = st['resampled']
    else:
      source = ext[..., ext.shape[-1] - self.fs.frame_input_samples:]
    # A cond, not a select: the whole frame's input is copied on phase 0 only, not every frame.
    st['f1_input'] = jax.lax.cond(phase == 0, lambda: source, lambda: st['f1_input'])
    if self.running_level:  # the level as the F1 frame ends, for its parts' patches
      frame = ext[..., ext.shape[-1] - self.spec.f2:][:, :, None]
      st['f1_level'] = jax.lax.cond(phase == 0,
                                    lambda: self._f1_levels(params, st, frame)[..., 0],
                                    lambda: st['f1_level'])
    channels = st['f1_input'].shape[1]
    part = -(-channels // lag)

    def embed_part(st):
      # The last part may overlap the one before (the slice is clamped): same values again.
      start = jnp.minimum((phase - 1) * part, channels - part)
      x = jax.lax.dynamic_slice_in_dim(st['f1_input'], start, part, axis=1)
      if self.plan.rows_per_f2:
        patches = x[:, :, None]
      elif self.resampled_ring:
        patches = self.front.log_mel_rows(x, self.fs.patch_frames)[:, :, None]
      else:
        hop = self.spec.stride * self.spec.f2
        patches = self.front.log_mel_frames(x, 1, hop)
      level = None
      if self.running_level:
        level = jax.lax.dynamic_slice_in_dim(st['f1_level'], start, part, axis=1).reshape(-1)
      raw = self._apply(params, patches, method=lambda mod, p: mod.embedding_of(
          p.reshape((-1,) + p.shape[-2:]), level).reshape(p.shape[:2] + (-1,)))
      return dict(st, raw_next=jax.lax.dynamic_update_slice_in_dim(
          st['raw_next'], raw.astype(jnp.float32), start, axis=1))

    st = jax.lax.cond((phase >= 1) & (phase <= lag), embed_part, lambda st: st, st)

    def in_force(st):
      emb = self._apply(params, st['raw_next'][:, :, None], mask,
                        method=lambda mod, e, msk: mod.contextualize(e, msk)[:, :, 0])
      return dict(st, emb=emb.astype(jnp.float32))

    return jax.lax.cond(phase == lag, in_force, lambda st: st, st)
