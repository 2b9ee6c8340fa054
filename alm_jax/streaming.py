"""Zero-latency streaming mixer: the offline ALM, one block of samples at a time.

    state = init_state(config, batch, channels)
    step = jax.jit(make_step(config), donate_argnums=1)
    state, out, gains = step(params, state, block, channel_mask)  # any block size n

Each output sample is the sum over channels of its input samples times a gain
that was known before the sample arrived: the gain of F2 frame t is the one
predicted when F2 frame t - 1 completed (frame 0 gets
`config.model.initial_gain`). The streamed output equals the offline
`model.apply(params, audio, mask)['mix']` in zero-latency mode, to float
rounding, for any sequence of block sizes.

Work happens on F2 boundaries (every `f2` samples) that fall inside a block; a
block of n samples contains at most ceil(n / f2) of them, a static bound, so
one `lax.scan` over that many boundaries (skipping the ones past the block's
end) handles every block size with one compile per size. On each boundary:

* front end (when F2 frames are a whole number of log-mel hops, as in MR): the
  log-mel rows that the F2 frame completes (5 in MR) are computed with the
  offline causal resampler and pushed into a ring of the last 96 rows. An F1
  frame ends with an F2 frame, so on its boundary the ring *is* its patch:
  the front end costs the same on every boundary;
* F2 rate: RMS -> `condition` -> one GRU step (`recur`) -> `head`, the same
  model methods the offline mixer uses;
* F1 rate, on the boundary that completes the first F2 frame of a group (once
  per 300 ms in MR): the embedding of the F1 frame that ends with that very F2
  frame, then encoder 1. The resulting gain is needed by the next sample, so
  this can neither start earlier nor be deferred without adding latency. What
  can be done earlier is every part of it whose inputs have already arrived:
  with `spread=True` (the default) and the small embedding, whose layers map
  disjoint tiles of rows, every boundary computes the same-sized chunk of each
  layer's rows of the frame being prepared (rows whose log-mel rows are in the
  ring; see `make_plan`), so the embedding boundary only adds the mean, the
  projection and encoder 1. No branch selects this work, so every boundary
  runs the same program.

The first group has nothing prepared and runs the network whole once. VGGish
runs whole on its boundary (its fully connected layers need the whole map; on
one CPU thread it is far from real time anyway). In SR (975 ms F2 frames, not
a whole number of resampler blocks) every boundary is an embedding boundary and
embeds its F1 frame from the samples (`model.embed`). Measured costs are in
docs/streaming.md.

State (`init_state`, a flat dict so that it maps onto explicit tensors):
  ring   [b, c, size] float32: the latest input samples per channel, a ring
         buffer written at `write`, size = the front end's frame input + f2;
         zeros at the start, which is exactly the offline left-padding with
         silence. One F2 frame longer than the longest read so that a block of
         up to f2 samples can be written before it is read (in place).
  write  [] int32: next ring position to write.
  fill   [] int32: samples received of the current F2 frame.
  frame  [] int32: index of the current F2 frame (F2 frames completed).
  emb    [b, c, d_model] float32: the current group's embedding.
  carry  [b, c, gru_hidden] float32: the GRU state.
  gain   [b, c] float32: the gain applied to the current F2 frame.
  mel    [b, c, 96, 64] float32 (shared rows): the last 96 log-mel rows; rows
         of silence at the start, as offline.
  net<i> [b, c, h_i, w_i, features_i] float32 (spread small embedding): layer
         i's rows of the F1 frame being prepared.
"""

import dataclasses
import functools
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from alm_jax import frames
from alm_jax import frontend
from alm_jax.models import build_model
from alm_jax.models import embeddings


# ---------------------------------------------------------------------------
# Static plan: what each boundary of a group computes
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SpreadPlan:
  """How the front end and the embedding network are spread over a group's F2 boundaries.

  Phase k = t % stride of F2 frame t: phase 0 completes a group's first F2
  frame (the embedding boundary); on phase k > 0 the next group's F1 frame
  ends stride - k F2 frames later. A group's frame is prepared on phases 1,
  2, ..., stride - 1 of the group before and finished on its own phase 0.

  Attributes:
    rows_per_f2: log-mel rows each F2 frame completes (0: F1 frames are not on
      the row grid, each is embedded from its samples).
    mel_ready: mel_ready[k] = rows of the frame being prepared that are in the
      ring after phase k (96 on phase 0).
    net_heights: output rows of each small-embedding layer (24, 12, 6 in MR);
      () when the network runs whole on the embedding boundary.
    net_chunks: rows of layer i computed on every boundary (the same work on
      every boundary: no branch).
    net_starts: net_starts[k][i] = first row of layer i computed on phase k.
  """
  rows_per_f2: int
  mel_ready: tuple = ()
  net_heights: tuple = ()
  net_chunks: tuple = ()
  net_starts: tuple = ()


def _schedule(ready):
  """Equal chunks, one per phase in the given order, reading only ready rows, covering [0, ready[-1]).

  Returns:
    (chunk, starts): phase j computes rows [starts[j], starts[j] + chunk);
    a start may repeat rows already done (harmless), never rows not ready.
  """
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


def _net_heights(model_config, fs: frontend.FrontendSpec):
  """Output rows of each small-embedding layer, or () if the network runs whole."""
  emb = model_config.embedding
  if emb.name != 'small':
    return ()
  heights, h, w = [], fs.patch_frames, fs.n_mels
  for i in range(len(emb.small_features)):
    a, b = embeddings.small_tile(i)
    if h % a or w % b:
      return ()  # the module itself refuses such a patch
    h, w = h // a, w // b
    heights.append(h)
  return tuple(heights)


def make_plan(model_config, spread: bool = True) -> SpreadPlan:
  """Static plan of the per-phase work (see `SpreadPlan`)."""
  spec = frames.FrameSpec.from_config(model_config)
  fs = frontend.FrontendSpec.from_config(model_config)
  if model_config.name != 'alm' or not frontend.shares_rows(spec.f2, fs):
    return SpreadPlan(rows_per_f2=0)  # each F1 frame embedded from its samples (`model.embed`)
  up, down = fs.ratio
  rows_per_f2 = spec.f2 // down * up // fs.hop
  mel_ready = tuple(fs.patch_frames if k == 0 else
                    max(0, fs.patch_frames - (spec.stride - k) * rows_per_f2)
                    for k in range(spec.stride))
  plan = SpreadPlan(rows_per_f2=rows_per_f2, mel_ready=mel_ready)
  heights = _net_heights(model_config, fs)
  if not spread or not heights:
    return plan
  order = list(range(1, spec.stride)) + [0]  # preparation, then the embedding boundary
  chunks, starts = [], []
  ready = [mel_ready[k] for k in order]
  for i in range(len(heights)):
    a = embeddings.small_tile(i)[0]
    chunk, layer_starts = _schedule([r // a for r in ready])
    chunks.append(chunk)
    by_phase = dict(zip(order, layer_starts))
    starts.append(tuple(by_phase[k] for k in range(spec.stride)))
    ready = [s + chunk for s in layer_starts]  # rows of layer i done after each phase
    ready = [int(r) for r in np.maximum.accumulate(ready)]
  return dataclasses.replace(plan, net_heights=heights, net_chunks=tuple(chunks),
                             net_starts=tuple(zip(*starts)))


# ---------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------


def _check_model(config):
  name = config.model.name
  if name not in ('alm', 'dmc'):
    raise NotImplementedError(f'Streaming is implemented for the AiLive Mixer (config.model.name='
                              f"'alm') and the per-frame DMC, not for {name!r}.")
  if name == 'dmc' and not config.model.get('dmc_per_frame', False):
    raise ValueError(
        'This is a per-segment DMC (DMC-OG, config.model.dmc_per_frame=False): its gains depend on '
        'the whole segment, so it cannot be mixed live. Mix it offline with python -m alm_jax.mix '
        '(docs/baselines.md).')
  if not config.model.zero_latency:
    raise ValueError(
        'config.model.zero_latency is False: this model applies the gain predicted on an F2 frame '
        'to that same frame, which needs the whole frame before its first sample can be output, '
        'i.e. one F2 frame of latency. Streaming needs a zero-latency model '
        '(config.model.zero_latency=True).')


def _embedding_size(model_config) -> int:
  """Size of the F1-rate embedding `embed` returns: d_model (ALM) or the embedding's (DMC)."""
  return model_config.embedding.dim if model_config.name == 'dmc' else model_config.d_model


def _ring_size(model_config) -> int:
  spec = frames.FrameSpec.from_config(model_config)
  fs = frontend.FrontendSpec.from_config(model_config)
  return max(fs.frame_input_samples, spec.f2) + spec.f2


def _work_shapes(model_config, plan: SpreadPlan, batch: int, channels: int):
  """{'mel': log-mel ring, 'net<i>': layer i of the next frame} shapes."""
  fs = frontend.FrontendSpec.from_config(model_config)
  shapes = {}
  if plan.rows_per_f2:
    shapes['mel'] = (batch, channels, fs.patch_frames, fs.n_mels)
  w = fs.n_mels
  for i, h in enumerate(plan.net_heights):
    w //= embeddings.small_tile(i)[1]
    shapes[f'net{i}'] = (batch, channels, h, w, model_config.embedding.small_features[i])
  return shapes


def init_state(config, batch: int, channels: int, *, spread: bool = True):
  """The state before the first sample: silent history, `initial_gain` in force.

  Args:
    config: the full config (uses `config.model`).
    batch: streams mixed in parallel.
    channels: channels per stream (masked ones included).
    spread: must match `make_step`.
  Returns:
    dict of arrays, see the module docstring.
  """
  _check_model(config)
  if batch < 1 or channels < 1:
    raise ValueError(f'Need batch >= 1 and channels >= 1, got batch={batch}, channels={channels}.')
  max_channels = config.model.get('max_channels', None)
  if max_channels is not None and channels > max_channels:
    raise ValueError(f'{channels} channels is more than the {max_channels} this model allows '
                     '(config.model.max_channels).')
  m = config.model
  fs = frontend.FrontendSpec.from_config(m)
  state = {
      'ring': jnp.zeros((batch, channels, _ring_size(m)), jnp.float32),
      'write': jnp.zeros((), jnp.int32),
      'fill': jnp.zeros((), jnp.int32),
      'frame': jnp.zeros((), jnp.int32),
      'emb': jnp.zeros((batch, channels, _embedding_size(m)), jnp.float32),
      'carry': jnp.zeros((batch, channels, m.gru_hidden), jnp.float32),
      'gain': jnp.full((batch, channels), m.initial_gain, jnp.float32),
  }
  for key, shape in _work_shapes(m, make_plan(m, spread), batch, channels).items():
    if key == 'mel':
      # Rows of silence, computed as the front end computes them: log(0 + offset).
      state[key] = jnp.log(jnp.zeros(shape, jnp.float32) + jnp.float32(fs.log_offset))
    else:  # never read before written: the first group runs the network whole
      state[key] = jnp.zeros(shape, jnp.float32)
  return state


# ---------------------------------------------------------------------------
# Pieces of the work
# ---------------------------------------------------------------------------


def _recent(ring, write, block, block_in_ring: bool, start, length: int):
  """Samples [start, start + length) relative to the block's first sample: [b, c, length].

  Args:
    ring: [b, c, size] the ring buffer.
    write: ring position of the block's first sample (the write position
      before the block).
    block: [b, c, n] the block.
    block_in_ring: whether the block has already been written to the ring.
    start: first position (int or traced int32); the caller guarantees that
      every position read is still in the ring (>= n - size if the block is in
      the ring, >= -size otherwise) and < n.
    length: static count.
  """
  size = ring.shape[-1]
  pos = start + jnp.arange(length, dtype=jnp.int32)
  # write + pos lies in (-size, 2 size): wrap by comparisons rather than a modulo.
  idx = write + pos
  idx = jnp.where(idx < 0, idx + size, jnp.where(idx >= size, idx - size, idx))
  from_ring = jnp.take(ring, idx, axis=-1, mode='clip')
  if block_in_ring:
    return from_ring
  from_block = jnp.take(block, jnp.clip(pos, 0, block.shape[-1] - 1), axis=-1, mode='clip')
  return jnp.where(pos < 0, from_ring, from_block)


def _rows_reader(fs: frontend.FrontendSpec, num_rows: int):
  """(input samples, fn(samples [b, c, n_in]) -> the last `num_rows` log-mel rows ending at their end)."""
  up, down = fs.ratio
  need = (num_rows - 1) * fs.hop + fs.window  # 16 kHz samples the rows read
  blocks = -(-need // up)
  n_in = (blocks + 1) * down  # one more block: the resampler's history

  def rows(x):
    x16 = frontend.resample(x, fs)[..., blocks * up - need:]
    return frontend.log_mel_rows(x16, num_rows, fs)

  return n_in, rows


def _layer_rows(layer, x, r0, num_rows: int, i: int, dtype):
  """Rows [r0, r0 + num_rows) of SmallEmbedding layer i, as the module computes them.

  Args:
    layer: {'kernel' [a * b * in, out], 'bias' [out]}.
    x: [b, c, rows, width, in] the layer's input map, its row 0 at the layer's
      input row 0 (the caller offsets ring views).
    r0: first output row (int or traced int32).
  Returns:
    [b, c, num_rows, width / b, out].
  """
  a = embeddings.small_tile(i)[0]
  slab = jax.lax.dynamic_slice_in_dim(x, r0 * a, num_rows * a, axis=2)
  y = embeddings.tiles(slab.astype(dtype), embeddings.small_tile(i))
  return jax.nn.relu(y @ layer['kernel'].astype(dtype) + layer['bias'].astype(dtype))


# ---------------------------------------------------------------------------
# Step
# ---------------------------------------------------------------------------


def make_step(config, *, spread: bool = True):
  """The pure streaming step for `config` (any block size; one compile per size under jit).

  Args:
    config: the full config (`config.model` must be a zero-latency ALM).
    spread: compute the small embedding's layers in equal chunks on every
      boundary as their inputs arrive (see the module docstring). Must match
      `init_state`.
  Returns:
    step(params, state, block [b, c, n], channel_mask [b, c] bool) ->
      (new_state, out [b, n] float32, gains [b, c] float32), where `params` are
      the variables `model.apply` takes, `out` is the mixed block and `gains`
      the per-channel gains in force after the block's last sample (the gain
      the next sample will get; 0 on masked channels).
  """
  _check_model(config)
  model = build_model(config)
  mcfg = config.model
  spec = frames.FrameSpec.from_config(mcfg)
  fs = frontend.FrontendSpec.from_config(mcfg)
  frontend.check_frame(spec.f1, fs)
  plan = make_plan(mcfg, spread)
  f2, stride = spec.f2, spec.stride
  frame_in = fs.frame_input_samples
  dtype = jnp.dtype(model.config.dtype)
  rows_in, new_rows = _rows_reader(fs, max(plan.rows_per_f2, 1))
  work_keys = sorted(_work_shapes(mcfg, plan, 1, 1))
  num_layers = len(plan.net_heights)

  def step(params, state, block, channel_mask):
    ring = state['ring']
    b, c, _ = ring.shape
    if block.ndim != 3 or block.shape[:2] != (b, c):
      raise ValueError(f'block must be [batch, channels, samples] with (batch, channels) = {(b, c)} '
                       f'as the state was made for, got shape {tuple(block.shape)}.')
    if tuple(channel_mask.shape) != (b, c):
      raise ValueError(f'channel_mask must be [batch, channels] = {(b, c)}, '
                       f'got {tuple(channel_mask.shape)}.')
    if sorted(k for k in state if k == 'mel' or k.startswith('net')) != work_keys:
      raise ValueError('The state and the step disagree on spread: pass the same value to '
                       'init_state and make_step.')
    n = block.shape[-1]
    if n < 1:
      raise ValueError('block has no samples.')
    block = block.astype(jnp.float32)
    mask = channel_mask.astype(bool)
    write, fill = state['write'], state['fill']
    size = ring.shape[-1]
    # A block of at most f2 samples is written to the ring first: every sample
    # a boundary inside it reads is then still in the ring, and the write
    # happens before any read, so XLA updates the donated ring in place
    # instead of copying it. Longer blocks are read from the block and the old
    # ring, then written.
    write_first = n <= f2
    if n >= size:
      new_ring, new_write = block[..., n - size:], jnp.zeros((), jnp.int32)
    else:
      new_ring = ring.at[..., jnp.mod(write + jnp.arange(n, dtype=jnp.int32), size)].set(block)
      new_write = jnp.mod(write + n, size).astype(jnp.int32)
    recent = functools.partial(_recent, new_ring if write_first else ring, write, block, write_first)
    apply = functools.partial(model.apply, params)
    if num_layers:
      layers = [params['params']['embedding'][f'conv{i + 1}'] for i in range(num_layers)]
      fc = params['params']['embedding']['fc']

    # ---- front end: the log-mel rows each F2 frame completes ----
    def push_rows(work, end):
      rows = new_rows(recent(end - rows_in, rows_in))
      return {**work, 'mel': jnp.concatenate([work['mel'][:, :, plan.rows_per_f2:], rows], axis=2)}

    # ---- small embedding: the same chunk of every layer on every boundary ----
    def layer_chunks(work, phase):
      work = dict(work)
      starts = jnp.asarray(plan.net_starts, jnp.int32)[phase]
      # Row j of the frame being prepared sits at ring row j + offset.
      offset = jnp.mod(stride - phase, stride) * plan.rows_per_f2
      mel = jnp.pad(work['mel'], [(0, 0), (0, 0), (0, stride * plan.rows_per_f2), (0, 0)])
      x = embeddings.small_input(
          jax.lax.dynamic_slice_in_dim(mel, offset, work['mel'].shape[2], axis=2), dtype)
      for i, chunk in enumerate(plan.net_chunks):
        rows = _layer_rows(layers[i], x, starts[i], chunk, i, dtype).astype(jnp.float32)
        work[f'net{i}'] = jax.lax.dynamic_update_slice_in_dim(work[f'net{i}'], rows, starts[i],
                                                              axis=2)
        x = work[f'net{i}']
      return work

    # ---- F1 rate: the group's embedding on phase 0 ----
    def embed_whole(work, end, frame):
      del frame
      if plan.rows_per_f2:
        return apply(work['mel'][:, :, None], mask, method=model.embed_patches)[:, :, 0]
      return apply(recent(end - frame_in, frame_in), 1, mask, method=model.embed)[:, :, 0]

    def embed_finish(work, end, frame):
      """The last layer's map is complete: mean, projection, encoder 1."""
      def finish(work):
        feat = jnp.mean(work[f'net{num_layers - 1}'].astype(dtype), axis=(2, 3))
        feat = feat @ fc['kernel'].astype(dtype) + fc['bias'].astype(dtype)  # [b, c, dim]
        return apply(feat[:, :, None], mask, method=model.contextualize)[:, :, 0]
      # The first group had no boundaries before it to prepare its frame.
      return jax.lax.cond(frame == 0, lambda w: embed_whole(w, end, frame), finish, work)

    embed = embed_finish if num_layers else embed_whole

    # ---- F2 rate: on every boundary ----
    def f2_stages(emb, gcarry, end):
      rms = frames.frame_rms(recent(end - f2, f2))  # [b, c]
      x = apply(emb[:, :, None].astype(dtype), rms[:, :, None], mask, method=model.condition)
      gcarry, y = apply(gcarry, x, method=model.recur)
      pred = apply(y, mask, method=model.head)[:, :, 0]
      return gcarry.astype(jnp.float32), pred.astype(jnp.float32)

    def boundary(emb, work, gcarry, gain, end, frame):
      del gain
      phase = frame % stride
      if plan.rows_per_f2:
        work = push_rows(work, end)
      if num_layers:
        work = layer_chunks(work, phase)
      emb = jax.lax.cond(phase == 0, lambda w: embed(w, end, frame).astype(jnp.float32),
                         lambda w: emb, work)
      gcarry, gain = f2_stages(emb, gcarry, end)
      return emb, work, gcarry, gain

    def scan_body(carry, k):
      emb, work, gcarry, gain, frame = carry
      end = (f2 - fill) + k * f2  # one past the boundary's last sample, block-relative
      valid = end <= n
      emb, work, gcarry, gain = jax.lax.cond(
          valid, boundary, lambda emb, work, gcarry, gain, end, frame: (emb, work, gcarry, gain),
          emb, work, gcarry, gain, end, frame)
      return (emb, work, gcarry, gain, frame + valid.astype(jnp.int32)), gain

    max_boundaries = -(-n // f2)
    work0 = {k: state[k] for k in work_keys}
    init = (state['emb'], work0, state['carry'], state['gain'], state['frame'])
    (emb, work, gcarry, gain, frame), after = jax.lax.scan(
        scan_body, init, jnp.arange(max_boundaries, dtype=jnp.int32))

    # Sample i of the block lies in the (i + fill) // f2-th F2 frame that the
    # block touches; its gain is the one in force before that frame began.
    in_force = jnp.concatenate([state['gain'][None], after], axis=0)  # [K + 1, b, c]
    seg = (jnp.arange(n, dtype=jnp.int32) + fill) // f2
    g = jnp.where(mask[None], in_force[seg], 0.0)  # [n, b, c]
    out = jnp.einsum('bcn,nbc->bn', block, g)

    new_state = {
        'ring': new_ring,
        'write': new_write,
        'fill': jnp.mod(fill + n, f2).astype(jnp.int32),
        'frame': frame,
        'emb': emb,
        'carry': gcarry,
        'gain': gain,
        **work,
    }
    return new_state, out, jnp.where(mask, gain, 0.0)

  return step


# ---------------------------------------------------------------------------
# Host-side convenience
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _jitted_step(model_json: str, compute_dtype: str, spread: bool):
  config = ml_collections.ConfigDict({'model': ml_collections.ConfigDict(
      json.loads(model_json)), 'train': {'compute_dtype': compute_dtype}})
  return jax.jit(make_step(config, spread=spread), donate_argnums=1)


def jitted_step(config, *, spread: bool = True):
  """`jax.jit(make_step(config))` with the state donated, shared by every mixer with this model config.

  jax.jit keeps one executable per block size, so mixers of the same model
  reuse each other's compiles.
  """
  compute_dtype = config.get('train', {}).get('compute_dtype', 'float32')
  model_json = ml_collections.ConfigDict(config.model).to_json_best_effort(sort_keys=True)
  return _jitted_step(model_json, str(compute_dtype), bool(spread))


class StreamingMixer:
  """Mixes a live multitrack stream block by block (NumPy in and out).

  The jitted step is compiled once per distinct block size and shared by all
  mixers of the same model config (`jitted_step`); the state buffers are
  donated, so the ring buffer is updated in place.

  Attributes:
    gains: [batch, channels] the gains in force after the last block.
  """

  def __init__(self, config, params, batch: int = 1, channels: int | None = None,
               channel_mask=None, *, spread: bool = True):
    """Args:
      config: the full config the params were trained with.
      params: the model variables (as `model.apply` takes them).
      batch: streams mixed in parallel.
      channels: channels per stream; default config.model.max_channels.
      channel_mask: [batch, channels] bool, default all True.
      spread: see `make_step`.
    """
    if isinstance(config, dict) and not isinstance(config, ml_collections.ConfigDict):
      config = ml_collections.ConfigDict(config)
    self.config = config
    self.params = params
    self.batch = batch
    self.channels = int(config.model.max_channels if channels is None else channels)
    self.frame_spec = frames.FrameSpec.from_config(config.model)
    self._spread = spread
    self._step = jitted_step(config, spread=spread)
    self.set_channel_mask(np.ones((batch, self.channels), bool) if channel_mask is None
                          else channel_mask)
    self.reset()

  def reset(self):
    """Back to the state before the first sample."""
    self.state = init_state(self.config, self.batch, self.channels,
                            spread=self._spread)
    self.gains = np.where(self._mask, float(self.config.model.initial_gain), 0.0).astype(np.float32)

  def set_channel_mask(self, channel_mask):
    mask = np.asarray(channel_mask).astype(bool).reshape(self.batch, self.channels)
    empty = np.flatnonzero(~mask.any(axis=1))
    if empty.size:
      raise ValueError(f'streams {empty.tolist()} have every channel masked; each needs at least '
                       'one active channel.')
    self._mask = mask
    self._mask_device = jnp.asarray(mask)

  def process(self, block):
    """Mixes one block.

    Args:
      block: [batch, channels, n] (or [channels, n] when batch is 1) samples at
        config.model.sample_rate.
    Returns:
      the mixed block, float32 [batch, n] (or [n]).
    """
    block = np.asarray(block, np.float32)
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
      return np.zeros((self.batch, 0) if not squeeze else (0,), np.float32)
    bad = ~np.isfinite(block)
    if bad.any():
      b, ch, i = np.argwhere(bad)[0]
      raise ValueError(f'block holds NaN or Inf (first at stream {b}, channel {ch}, sample {i} of '
                       'the block); it would corrupt the mixer state: fix or mute that channel.')
    self.state, out, gains = self._step(self.params, self.state, jnp.asarray(block),
                                        self._mask_device)
    self.gains = np.asarray(gains)
    out = np.asarray(out)
    return out[0] if squeeze else out
