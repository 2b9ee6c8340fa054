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
end with `lax.cond`) handles every block size with one compile per size. On
each boundary the F2-rate stages run (RMS -> `condition` -> one GRU step via
`recur` -> `head`), the same model methods the offline mixer uses.

The F1-rate embedding runs only on the boundary that completes the first F2
frame of a group (once per 300 ms in MR): the F1 frame it embeds ends with that
very F2 frame and the resulting gain is needed by the next sample, so the
embedding can neither start earlier nor be deferred without adding latency.
What can be done earlier is every part of it whose inputs have already
arrived. With `spread=True` (the default) each of the other
`stride - 1` boundaries of a group does an equal share of the next group's F1
frame, exactly as the offline model computes it (see `make_plan`):

* front end: the log-mel rows whose resampler inputs have all arrived (MR: 89
  of the 96 rows, 18 per boundary), computed with the offline in-frame
  resampler's blocks and zero-extension at the frame edges;
* small embedding (`config.model.embedding.name == 'small'`): its 3x3 conv +
  2x2 max-pool layers are local in time, so each layer's rows whose inputs are
  ready are computed too (MR, 3 layers: 44 of 48, 21 of 24 and 10 of 12 pooled
  rows), keeping the pooled maps in the state. The mean over the last map,
  the projection and encoder 1 need the whole frame and run on the embedding
  boundary, with the last 7 log-mel rows and the conv rows they reach.

The first group has nothing done ahead and embeds its F1 frame whole
(`model.embed`). VGGish is spread over its front end only: its fully
connected layers need the whole map, and on one CPU thread it is far from real
time anyway. In SR (stride 1) every boundary is an embedding boundary, so
nothing is spread. Measured costs per block are in docs/streaming.md.

State (`init_state`, a flat dict so that it maps onto explicit tensors):
  ring   [b, c, f1 + f2] float32: the latest input samples per channel, a
         ring buffer written at `write`; zeros at the start, which is exactly
         the offline left-padding of the first F1 frames with silence. One F2
         frame longer than an F1 frame so that a block of up to f2 samples can
         be written before it is read (in place, see `make_step`).
  write  [] int32: next ring position to write.
  fill   [] int32: samples received of the current F2 frame (the partial F2
         frame itself is the newest `fill` samples of the ring).
  frame  [] int32: index of the current F2 frame (F2 frames completed).
  emb    [b, c, d_model] float32: the current group's embedding.
  carry  [b, c, gru_hidden] float32: the GRU state.
  gain   [b, c] float32: the gain applied to the current F2 frame.
  patch  [b, c, 96, 64] float32 (when spread): the next F1 frame's log-mel
         rows computed ahead.
  net<i> [b, c, h_i, w_i, features_i] float32 (when spread with the small
         embedding): conv layer i's pooled rows of the next F1 frame computed
         ahead.
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


# ---------------------------------------------------------------------------
# Static plan: which log-mel rows of the next F1 frame each boundary computes
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class SpreadPlan:
  """How the F1-rate work of a frame is spread over the F2 boundaries of the group before it.

  Phase k = t % stride of F2 frame t: phase 0 completes a group's first F2
  frame (the embedding boundary); on phases 1 ... stride - 1 the next group's
  F1 frame ends stride - k F2 frames later, and the work whose inputs have all
  arrived is done ahead, in equal chunks so that one compiled branch (with
  dynamic start rows) serves every phase.

  Attributes:
    mel_rows: log-mel rows of the next F1 frame computed ahead; the embedding
      boundary computes rows [mel_rows, patch_frames).
    mel_chunk: log-mel rows computed per phase.
    mel_starts: mel_starts[k - 1] = first log-mel row computed on phase k, or
      -1 where phase k does no F1-rate work.
    net_heights: for the incremental small embedding: the input height of
      each conv layer (96, 48, 24, ...); () when the network runs whole.
    net_rows: pooled output rows of each conv layer computed ahead.
    net_chunks: pooled rows of each layer computed per phase.
    net_starts: net_starts[k - 1][i] = first pooled row of layer i computed on
      phase k.
  """
  mel_rows: int
  mel_chunk: int
  mel_starts: tuple
  net_heights: tuple = ()
  net_rows: tuple = ()
  net_chunks: tuple = ()
  net_starts: tuple = ()


def _resampler(fs: frontend.FrontendSpec):
  """(up, down, pad, input blocks read per output block, weights) of the front end's resampler."""
  up, down, pad, weights = frontend.resampler_matrices(fs.in_rate, fs.out_rate, fs.zero_crossings,
                                                       fs.rolloff)
  return up, down, pad, -(-weights.shape[0] // down), weights


def _row_blocks(r0: int, num_rows: int, fs: frontend.FrontendSpec):
  """Resampler output blocks [q0, q1) that log-mel rows [r0, r0 + num_rows) read."""
  up = _resampler(fs)[0]
  return fs.hop * r0 // up, (fs.hop * (r0 + num_rows - 1) + fs.window - 1) // up + 1


def _row_input_end(r: int, fs: frontend.FrontendSpec) -> int:
  """One past the last F1-frame sample that log-mel row r reads (through the block resampler)."""
  _, down, pad, kb, _ = _resampler(fs)
  return (_row_blocks(r, 1, fs)[1] - 1 + kb) * down - pad


def _pooled_ready(input_ready: int, height: int) -> int:
  """Pooled rows of a 3x3 SAME conv + 2x2 pool whose inputs are within the first `input_ready` rows."""
  conv_ready = height if input_ready >= height else max(input_ready - 1, 0)
  return conv_ready // 2


def _equal_chunks(ready):
  """(chunk, starts) covering [0, ready[-1]) with one chunk per phase ending at that phase's ready count."""
  increments = np.diff([0] + list(ready))
  chunk = int(max(increments, default=0))
  return chunk, tuple(max(0, r - chunk) for r in ready)


def _incremental_net_heights(model_config, fs: frontend.FrontendSpec):
  """Conv-layer input heights if the embedding can run row by row, else ()."""
  emb = model_config.embedding
  if emb.name != 'small':
    return ()
  heights, h, w = [], fs.patch_frames, fs.n_mels
  for _ in emb.small_features:
    if h % 2 or w % 2:  # SAME pooling of an odd size pads: keep the plain path
      return ()
    heights.append(h)
    h, w = h // 2, w // 2
  return tuple(heights)


def make_plan(model_config, spread: bool = True) -> SpreadPlan:
  """Static plan of the F1-rate work per phase (see `SpreadPlan`)."""
  spec = frames.FrameSpec.from_config(model_config)
  fs = frontend.FrontendSpec.from_config(model_config)
  none = SpreadPlan(mel_rows=0, mel_chunk=0, mel_starts=(-1,) * (spec.stride - 1))
  if not spread or spec.stride == 1:
    return none
  ends = np.array([_row_input_end(r, fs) for r in range(fs.patch_frames)])
  ready = [int(np.sum(ends <= spec.f1 - (spec.stride - k) * spec.f2)) for k in range(spec.stride)]
  pre = ready[spec.stride - 1]
  if pre == 0:
    return none
  # Log-mel rows: the smallest equal chunk such that each phase computes only
  # rows that are ready and the phases together cover [0, pre).
  for chunk in range(-(-pre // (spec.stride - 1)), pre + 1):
    covered, starts, mel_ready = 0, [], []
    for k in range(1, spec.stride):
      end = min(ready[k], covered + chunk)
      if end - chunk < 0 or end <= covered:
        starts.append(-1)
      else:
        starts.append(end - chunk)
        covered = end
      mel_ready.append(covered)
    if covered == pre:
      break
  plan = SpreadPlan(mel_rows=pre, mel_chunk=chunk, mel_starts=tuple(starts))
  heights = _incremental_net_heights(model_config, fs)
  if not heights:
    return plan
  # Pooled rows of each layer ready after each phase, given the rows before it.
  net_ready = []
  level_ready = mel_ready
  for h in heights:
    level_ready = [_pooled_ready(r, h) for r in level_ready]
    net_ready.append(level_ready)
  chunks, per_level_starts = zip(*[_equal_chunks(r) for r in net_ready])
  return dataclasses.replace(
      plan, net_heights=heights, net_rows=tuple(r[-1] for r in net_ready), net_chunks=chunks,
      net_starts=tuple(zip(*per_level_starts)))


# ---------------------------------------------------------------------------
# State
# ---------------------------------------------------------------------------


def _check_model(config):
  name = config.model.name
  if name != 'alm':
    raise NotImplementedError(
        f'Streaming is implemented for the AiLive Mixer (config.model.name=\'alm\'), not for '
        f'{name!r}.')
  if not config.model.zero_latency:
    raise ValueError(
        'config.model.zero_latency is False: this model applies the gain predicted on an F2 frame '
        'to that same frame, which needs the whole frame before its first sample can be output, '
        'i.e. one F2 frame of latency. Streaming needs a zero-latency model '
        '(config.model.zero_latency=True).')


def _work_shapes(model_config, plan: SpreadPlan, batch: int, channels: int):
  """Buffers of the next F1 frame's work done ahead: {'patch': log-mel, 'net<i>': pooled layer i}."""
  fs = frontend.FrontendSpec.from_config(model_config)
  shapes = {}
  if plan.mel_rows:
    shapes['patch'] = (batch, channels, fs.patch_frames, fs.n_mels)
  w = fs.n_mels
  for i, h in enumerate(plan.net_heights):
    w //= 2
    shapes[f'net{i}'] = (batch, channels, h // 2, w, model_config.embedding.small_features[i])
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
  spec = frames.FrameSpec.from_config(m)
  state = {
      'ring': jnp.zeros((batch, channels, spec.f1 + spec.f2), jnp.float32),
      'write': jnp.zeros((), jnp.int32),
      'fill': jnp.zeros((), jnp.int32),
      'frame': jnp.zeros((), jnp.int32),
      'emb': jnp.zeros((batch, channels, m.d_model), jnp.float32),
      'carry': jnp.zeros((batch, channels, m.gru_hidden), jnp.float32),
      'gain': jnp.full((batch, channels), m.initial_gain, jnp.float32),
  }
  # Never read before written: the first group embeds its F1 frame whole.
  for key, shape in _work_shapes(m, make_plan(m, spread), batch, channels).items():
    state[key] = jnp.zeros(shape, jnp.float32)
  return state


# ---------------------------------------------------------------------------
# Pieces of the F1-rate work
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


def _log_mel_rows(frame_samples, r0, num_rows: int, num_blocks: int, fs: frontend.FrontendSpec,
                  frame_len: int):
  """Log-mel rows [r0, r0 + num_rows) of one F1 frame, computed as `frontend.log_mel` does.

  Same resampler blocks and weights, same window, FFT and mel matrix, so the
  rows equal the offline ones to float rounding.

  Args:
    frame_samples: fn(i0, length) -> [b, c, length], the F1 frame's samples
      i0 ... i0 + length - 1 (frame-local indices; those before the frame or
      past the samples the offline resampler keeps are zeroed here: the
      in-frame zero-extension).
    r0: first row (a Python int or a traced int32).
    num_rows: static row count.
    num_blocks: static resampler output blocks to compute, at least
      `_row_blocks(r0, num_rows)` spans.
    fs: the front-end spec.
    frame_len: F1 frame length in samples.
  Returns:
    [b, c, num_rows, n_mels].
  """
  up, down, pad, kb, weights = _resampler(fs)
  # The offline resampler keeps padded samples [0, total): frame samples
  # beyond total - pad never reach it.
  valid_end = min(frame_len, (-(-fs.patch_samples // up) - 1 + kb) * down - pad)
  q0 = fs.hop * r0 // up
  i0 = q0 * down - pad
  length = (num_blocks - 1 + kb) * down
  idx = i0 + jnp.arange(length, dtype=jnp.int32)
  x = jnp.where((idx >= 0) & (idx < valid_end), frame_samples(i0, length), 0.0)
  blocks = x.reshape(x.shape[:-1] + (num_blocks - 1 + kb, down))
  w = np.zeros((kb * down, up))
  w[:weights.shape[0]] = weights
  w = w.reshape(kb, down, up)
  x16 = 0.0
  for j in range(kb):
    # The same products as the offline dense block matmul, minus the all-zero
    # weight rows (most of the last input block): a third fewer multiplies.
    used = np.flatnonzero(np.any(w[j] != 0.0, axis=1))
    lo, hi = int(used[0]), int(used[-1]) + 1
    x16 = x16 + jnp.einsum('...qd,du->...qu', blocks[..., j:j + num_blocks, lo:hi],
                           jnp.asarray(w[j, lo:hi], dtype=x.dtype))
  x16 = x16.reshape(x16.shape[:-2] + (num_blocks * up,))
  starts = fs.hop * (r0 + jnp.arange(num_rows, dtype=jnp.int32)) - q0 * up
  win = jnp.take(x16, starts[:, None] + jnp.arange(fs.window, dtype=jnp.int32)[None, :], axis=-1,
                 mode='clip')
  win = win * jnp.asarray(frontend.periodic_hann(fs.window), x16.dtype)
  mag = jnp.abs(jnp.fft.rfft(win, n=fs.n_fft, axis=-1))
  mel = mag @ jnp.asarray(frontend.mel_matrix(fs.n_mels, fs.n_fft // 2 + 1, fs.out_rate, fs.fmin,
                                              fs.fmax), mag.dtype)
  return jnp.log(mel + fs.log_offset)


def _small_input(patch, dtype):
  """SmallEmbedding's input: log-mel [..., rows, bands] -> [..., rows, bands, 1] after its fixed affine."""
  return (patch[..., None].astype(dtype) + 2.0) * 0.25


def _conv_pool_rows(layer, x, p0, num_rows: int, dtype):
  """Pooled rows [p0, p0 + num_rows) of one SmallEmbedding layer (3x3 SAME conv, ReLU, 2x2 max-pool).

  Args:
    layer: {'kernel' [3, 3, in, out], 'bias' [out]}.
    x: [b, c, height, width, in] the layer's input; rows outside it are the
      conv's zero padding.
    p0: first pooled row (int or traced int32).
    num_rows: static count.
    dtype: the compute dtype.
  Returns:
    [b, c, num_rows, width // 2, out].
  """
  b, c, _, w, fin = x.shape
  kernel = layer['kernel'].astype(dtype)
  x = jnp.pad(x.reshape((b * c,) + x.shape[2:]).astype(dtype), ((0, 0), (1, 1), (0, 0), (0, 0)))
  # Conv rows 2 p0 ... 2 (p0 + num_rows) - 1 read input rows 2 p0 - 1 ... 2 (p0 + num_rows).
  slab = jax.lax.dynamic_slice_in_dim(x, 2 * p0, 2 * num_rows + 2, axis=1)
  if fin == 1:
    # XLA's CPU convolution is slow with one input feature (the log-mel layer:
    # ~4x the time of the same products as a matmul), so gather the 3 x 3
    # neighbourhoods and contract them with the kernel.
    slab = jnp.pad(slab[..., 0], ((0, 0), (0, 0), (1, 1)))
    cols = jnp.stack([slab[:, dy:dy + 2 * num_rows, dx:dx + w] for dy in range(3) for dx in range(3)],
                     axis=-1)  # [n, 2 rows, w, 9]
    y = cols @ kernel.reshape(9, -1)
  else:
    y = jax.lax.conv_general_dilated(slab, kernel, (1, 1), ((0, 0), (1, 1)),
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  y = jax.nn.relu(y + layer['bias'].astype(dtype))
  fout = y.shape[-1]
  y = y.reshape(b * c, num_rows, 2, w // 2, 2, fout).max(axis=(2, 4))
  return y.reshape(b, c, num_rows, w // 2, fout)


# ---------------------------------------------------------------------------
# Step
# ---------------------------------------------------------------------------


# Kinds of F1-rate work on a boundary (branches of the step's switch).
_WHOLE, _REST, _AHEAD, _NONE = range(4)


def make_step(config, *, spread: bool = True):
  """The pure streaming step for `config` (any block size; one compile per size under jit).

  Args:
    config: the full config (`config.model` must be a zero-latency ALM).
    spread: do the next F1 frame's work whose inputs have arrived
      on the non-embedding boundaries (see the module docstring). Must match
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
  plan = make_plan(mcfg, spread)
  f1, f2, stride = spec.f1, spec.f2, spec.stride
  dtype = jnp.dtype(model.config.dtype)
  pre, rows_total = plan.mel_rows, fs.patch_frames

  def blocks_spanned(r0, num_rows):
    q0, q1 = _row_blocks(r0, num_rows, fs)
    return q1 - q0

  tail_blocks = blocks_spanned(pre, rows_total - pre)
  # One compiled branch serves every start row, so it computes the most blocks any needs.
  chunk_blocks = max([blocks_spanned(r, plan.mel_chunk) for r in plan.mel_starts if r >= 0],
                     default=0)
  work_keys = sorted(_work_shapes(mcfg, plan, 1, 1))

  def step(params, state, block, channel_mask):
    ring = state['ring']
    b, c, _ = ring.shape
    if block.ndim != 3 or block.shape[:2] != (b, c):
      raise ValueError(f'block must be [batch, channels, samples] with (batch, channels) = {(b, c)} '
                       f'as the state was made for, got shape {tuple(block.shape)}.')
    if tuple(channel_mask.shape) != (b, c):
      raise ValueError(f'channel_mask must be [batch, channels] = {(b, c)}, '
                       f'got {tuple(channel_mask.shape)}.')
    if sorted(k for k in state if k == 'patch' or k.startswith('net')) != work_keys:
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
    # a boundary inside it reads is then still in the ring (it holds f1 + f2),
    # and the write happens before any read, so XLA updates the donated ring
    # in place instead of copying it. Longer blocks are read from the block
    # and the old ring, then written.
    write_first = n <= f2
    if n >= size:
      new_ring, new_write = block[..., n - size:], jnp.zeros((), jnp.int32)
    else:
      new_ring = ring.at[..., jnp.mod(write + jnp.arange(n, dtype=jnp.int32), size)].set(block)
      new_write = jnp.mod(write + n, size).astype(jnp.int32)
    recent = functools.partial(_recent, new_ring if write_first else ring, write, block, write_first)
    apply = functools.partial(model.apply, params)
    if plan.net_heights:
      layers = [params['params']['embedding'][f'conv{i + 1}'] for i in range(len(plan.net_heights))]
      fc = params['params']['embedding']['fc']

    def frame_reader(frame_start):
      return lambda i0, length: recent(frame_start + i0, length)

    def net_input(work, i):
      return _small_input(work['patch'], dtype) if i == 0 else work[f'net{i - 1}']

    # ---- F1 rate: embed on phase 0, work ahead on the others ----
    def embed_whole(emb, work, end, phase):
      del emb, phase
      e = apply(recent(end - f1, f1)[:, :, None], mask, method=model.embed)
      return e[:, :, 0].astype(jnp.float32), work

    def embed_rest(emb, work, end, phase):
      """The F1 frame's work not done ahead: the last log-mel rows, then the rest of the network."""
      del emb, phase
      work = dict(work)
      tail = _log_mel_rows(frame_reader(end - f1), pre, rows_total - pre, tail_blocks, fs, f1)
      work['patch'] = jax.lax.dynamic_update_slice_in_dim(work['patch'], tail, pre, axis=2)
      if not plan.net_heights:
        e = apply(work['patch'][:, :, None], mask, method=model.embed_patches)
        return e[:, :, 0].astype(jnp.float32), work
      for i, h in enumerate(plan.net_heights):
        r = plan.net_rows[i]
        rows = _conv_pool_rows(layers[i], net_input(work, i), r, h // 2 - r, dtype)
        work[f'net{i}'] = jax.lax.dynamic_update_slice_in_dim(
            work[f'net{i}'], rows.astype(jnp.float32), r, axis=2)
      feat = jnp.mean(work[f'net{len(layers) - 1}'].astype(dtype), axis=(2, 3))
      feat = feat @ fc['kernel'].astype(dtype) + fc['bias'].astype(dtype)  # [b, c, dim]
      e = apply(feat[:, :, None], mask, method=model.contextualize)
      return e[:, :, 0].astype(jnp.float32), work

    def work_ahead(emb, work, end, phase):
      work = dict(work)
      r0 = jnp.asarray(plan.mel_starts, jnp.int32)[phase - 1]
      # The next group's F1 frame ends stride - phase F2 frames after this boundary.
      frame_end = end + (stride - phase) * f2
      rows = _log_mel_rows(frame_reader(frame_end - f1), r0, plan.mel_chunk, chunk_blocks, fs, f1)
      work['patch'] = jax.lax.dynamic_update_slice_in_dim(work['patch'], rows, r0, axis=2)
      if plan.net_heights:
        starts = jnp.asarray(plan.net_starts, jnp.int32)[phase - 1]
        for i, chunk in enumerate(plan.net_chunks):
          if chunk:
            out = _conv_pool_rows(layers[i], net_input(work, i), starts[i], chunk, dtype)
            work[f'net{i}'] = jax.lax.dynamic_update_slice_in_dim(
                work[f'net{i}'], out.astype(jnp.float32), starts[i], axis=2)
      return emb, work

    def no_f1_work(emb, work, end, phase):
      del end, phase
      return emb, work

    # One flat switch: nested conditionals would copy the work buffers at
    # every level. The first group has nothing done ahead, so it embeds whole.
    branches = [embed_whole, embed_rest, work_ahead, no_f1_work]
    ahead_or_none = jnp.asarray([_AHEAD if r >= 0 else _NONE for r in plan.mel_starts] or [_NONE],
                                jnp.int32)

    def f1_kind(valid, phase, frame):
      if not pre:
        kind = jnp.where(phase == 0, _WHOLE, _NONE)
      else:
        kind = jnp.where(phase == 0, jnp.where(frame == 0, _WHOLE, _REST),
                         ahead_or_none[jnp.maximum(phase - 1, 0)])
      return jnp.where(valid, kind, _NONE)

    if not pre:  # never selected: keep them out of the compiled program
      branches[_REST] = branches[_AHEAD] = no_f1_work

    # ---- F2 rate: on every boundary ----
    def f2_stages(emb, gcarry, end):
      rms = frames.frame_rms(recent(end - f2, f2))  # [b, c]
      x = apply(emb[:, :, None].astype(dtype), rms[:, :, None], mask, method=model.condition)
      gcarry, y = apply(gcarry, x, method=model.recur)
      pred = apply(y, mask, method=model.head)[:, :, 0]
      return gcarry.astype(jnp.float32), pred.astype(jnp.float32)

    def scan_body(carry, k):
      emb, work, gcarry, gain, frame = carry
      end = (f2 - fill) + k * f2  # one past the boundary's last sample, block-relative
      valid = end <= n
      phase = frame % stride
      emb, work = jax.lax.switch(f1_kind(valid, phase, frame), branches, emb, work, end, phase)
      gcarry, gain = jax.lax.cond(valid, f2_stages, lambda emb, gcarry, end: (gcarry, gain),
                                  emb, gcarry, end)
      carry = (emb, work, gcarry, gain, frame + valid.astype(jnp.int32))
      return carry, gain

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
