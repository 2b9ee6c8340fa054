r"""FLOPs per second of audio for each model, from XLA's cost analysis, and what they imply.

    python bench/flops.py                                     # 4 models x {small, VGGish}
    python bench/flops.py --models=alm_mr --embeddings=vggish --utilisation=0.3

For ALM-MR, ALM-SR, DMC-OG and DMC-B-0L (configs/mr.py, sr.py, dmc_og.py,
dmc_b_0l.py), each with the small CNN embedding and with VGGish, at the
paper's training shape (config batch, 8 channels, 20 s segments):

  forward      FLOPs of the jitted model call, `jax.jit(f).lower(...).compile()
               .cost_analysis()['flops']`, per second of multitrack audio
               (one second of all 8 channels);
  train step   the same for `alm_jax.train.train_step` (forward, backward, AdamW),
               in the fine-tune phase and in the frozen phase (the first
               freeze_embedding_epochs: no backward through the embedding);
  buffers      XLA's memory analysis of the train step (arguments + temporaries):
               the device memory one step needs at the paper's batch, without
               rematerialisation or gradient accumulation (bench/train.py
               reports those).

XLA counts a while loop's body once, whatever its trip count: the ALM's GRU
runs as one `lax.scan` over the F2 frames, so (frames - 1) x the cost of one
GRU step (forward, or forward + backward for the train step, measured the same
way) is added. The 'loops' column gives the compiled program's while loops as
GRU/other: ALM 1/0 forward and 2/n in the train step, where the n others are
the threefry hash loops (5 trips each) that draw dropout masks: integer bit
operations whose remaining 4 trips are not counted (not floating-point work).

Then the implications, clearly separated into what was measured here and
what is extrapolated:

  CPU          this machine's "peak" is measured: the best FLOP/s of a large
               float32 matmul (--matmul_size); the bound is the audio rate a
               train step would reach at that peak. bench/train.py measures the
               real rate and reports its fraction of this peak.
  H100         NOT measured (no GPU was available when these figures were
               made): NVIDIA's published dense BF16 tensor-core peak of an H100
               SXM, 989 TFLOP/s, times an assumed utilisation (--utilisation),
               gives the time of the paper's full recipe: --train_songs songs
               per epoch in batches of config.train.batch_size (the last batch
               of an epoch cycles songs, as alm_jax.data.pipeline does), for
               config.train.num_epochs epochs of random 20 s segments. It is an
               extrapolation from FLOP counts, not a timing.

A reference check is printed first: XLA's count for one VGGish example against
the published ~1.73 GFLOP (REFERENCE.md). XLA counts only the multiply-adds of
taps inside the image (2 x 791 M for VGGish's 3x3 SAME convolutions and fc
layers = 1.582 GFLOP); 1.728 GFLOP counts the taps on the zero padding too.
"""

import argparse
import json
import math
import re
import time

# load_config and machine are bench/common.py's; bench/train.py uses them as flops.*.
from common import load_config, machine  # pylint: disable=unused-import
import jax  # pylint: disable=wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from alm_jax import frames  # pylint: disable=wrong-import-position
from alm_jax import losses  # pylint: disable=wrong-import-position
from alm_jax import optimizer  # pylint: disable=wrong-import-position
from alm_jax import train  # pylint: disable=wrong-import-position
from alm_jax.models import abstract_params  # pylint: disable=wrong-import-position
from alm_jax.models import build_model  # pylint: disable=wrong-import-position

# NVIDIA H100 SXM5 datasheet: 989 TFLOP/s dense BF16 tensor core (1979 "with sparsity").
H100_BF16_PEAK = 989e12
VGGISH_REFERENCE_GFLOP = 1.73  # per 0.96 s example (REFERENCE.md)
PAPER_TRAIN_SONGS = 35  # MedleyDB songs with <= 8 raw tracks: 35 train / 8 validation (the paper)
MODELS = {'alm_mr': 'mr', 'alm_sr': 'sr', 'dmc_og': 'dmc_og', 'dmc_b_0l': 'dmc_b_0l'}
EMBEDDINGS = ('small', 'vggish')


# ---- configs and machine ----------------------------------------------------------------


def model_config(model: str, embedding: str, compute_dtype: str = 'float32'):
  """The paper config of `model` ('alm_mr', ...) with the 'small' or 'vggish' embedding."""
  config = load_config(MODELS[model])
  config.model.embedding.name = embedding  # 'small' keeps the config's small_features and dim
  config.train.compute_dtype = compute_dtype
  return config


def cpu_matmul_peak(size: int = 2048, repeats: int = 5, dtype=jnp.float32) -> float:
  """Best FLOP/s of a jitted size x size matmul: this machine's practical peak."""
  a = jnp.asarray(np.random.default_rng(0).standard_normal((size, size)), dtype)
  f = jax.jit(lambda x, y: x @ y)
  f(a, a).block_until_ready()
  best = math.inf
  for _ in range(repeats):
    t = time.perf_counter()
    f(a, a).block_until_ready()
    best = min(best, time.perf_counter() - t)
  return 2.0 * size**3 / best


# ---- cost analysis --------------------------------------------------------------------


def _flops(compiled) -> float:
  ca = compiled.cost_analysis()
  if isinstance(ca, (list, tuple)):  # older JAX: one dict per program
    ca = ca[0]
  return float(ca.get('flops', 0.0))


def _loops(compiled, scan_length: int) -> tuple[int, int]:
  """(while loops running `scan_length` times: the GRU's, other while loops) in the program."""
  scan, other = 0, 0
  for line in compiled.as_text().splitlines():
    if ' while(' not in line:
      continue
    trips = re.search(r'known_trip_count[^0-9]*(\d+)', line)
    if trips and int(trips.group(1)) == scan_length:
      scan += 1
    else:
      other += 1
  return scan, other


def _buffers(compiled) -> float:
  m = compiled.memory_analysis()
  if m is None:
    return float('nan')
  return float(m.argument_size_in_bytes + m.temp_size_in_bytes + m.output_size_in_bytes
               - m.alias_size_in_bytes)


def shapes(config, batch: int | None = None, seconds: float | None = None):
  """(batch, channels, samples) of a training batch (defaults: the config's)."""
  b = int(config.train.batch_size) if batch is None else int(batch)
  s = float(config.data.segment_seconds) if seconds is None else float(seconds)
  return b, int(config.model.max_channels), int(round(s * int(config.model.sample_rate)))


def _abstract_batch(b, c, n):
  return {'audio': jax.ShapeDtypeStruct((b, c, n), jnp.float32),
          'channel_mask': jax.ShapeDtypeStruct((b, c), jnp.bool_),
          'target': jax.ShapeDtypeStruct((b, n), jnp.float32)}


def abstract_train_state(config):
  """TrainState shapes (no arrays) and its static parts for `config`."""
  model = build_model(config)
  tx = train.make_optimizer(config, 1)
  loss_spec = losses.MRSTFTSpec.from_config(config.loss)
  return jax.eval_shape(lambda k: train.create_train_state(k, model, tx, loss_spec),
                        jax.random.key(0))


def recurrence_step_flops(config, b: int, c: int, with_grad: bool) -> float:
  """FLOPs of one step of the ALM's GRU (forward, or forward + backward); 0 for other models."""
  if config.model.name != 'alm':
    return 0.0
  model = build_model(config)
  params = abstract_params(config)
  dtype = jnp.dtype(config.train.compute_dtype)
  carry = jax.ShapeDtypeStruct((b, c, int(config.model.gru_hidden)), jnp.float32)
  x = jax.ShapeDtypeStruct((b, c, 1, int(config.model.d_model)), dtype)

  def step(p, h, xs):
    return model.apply({'params': p}, h, xs, method='recur')[1].astype(jnp.float32)

  fn = (jax.value_and_grad(lambda p, h, xs: jnp.sum(step(p, h, xs)), argnums=(0, 1, 2))
        if with_grad else step)
  return _flops(jax.jit(fn).lower(params, carry, x).compile())


def _scan_length(config, n: int) -> int:
  return frames.FrameSpec.from_config(config.model).num_f2_frames(n)


def _corrected_flops(compiled, config, b: int, c: int, n: int, with_grad: bool):
  """(FLOPs, loops) of a compiled program, the GRU scan's steps counted (XLA counts a body once)."""
  flops = _flops(compiled)
  t = _scan_length(config, n)
  loops = _loops(compiled, t)
  if loops[0]:
    flops += (t - 1) * recurrence_step_flops(config, b, c, with_grad=with_grad)
  return flops, loops


def forward_cost(config, batch: int | None = None, seconds: float | None = None) -> dict:
  """XLA's FLOPs of one forward pass on a [b, c, n] batch (GRU loop corrected)."""
  b, c, n = shapes(config, batch, seconds)
  model = build_model(config)
  params = abstract_params(config)
  t0 = time.perf_counter()
  compiled = jax.jit(lambda p, a, m: model.apply({'params': p}, a, m)['mix']).lower(
      params, jax.ShapeDtypeStruct((b, c, n), jnp.float32),
      jax.ShapeDtypeStruct((b, c), jnp.bool_)).compile()
  compile_s = time.perf_counter() - t0
  flops, loops = _corrected_flops(compiled, config, b, c, n, with_grad=False)
  return {'flops': flops, 'loops': loops, 'compile_s': compile_s}


def train_step_cost(config, batch: int | None = None, seconds: float | None = None,
                    compiled=None, frozen: bool = False, options: dict | None = None) -> dict:
  """XLA's FLOPs and buffer bytes of one `train.train_step` (GRU loops corrected).

  `compiled`: an already compiled train step for this config and shape (bench/train.py
  passes its own), else one is compiled from shapes alone. frozen: the step of the
  embedding freeze (no backward through params['embedding']). options: train_step's
  accum_steps / remat_chunk; by default none, since XLA counts the body of their loops
  once (the FLOPs of one update are the same, remat adds one embedding forward).
  """
  b, c, n = shapes(config, batch, seconds)
  compile_s = float('nan')
  if compiled is None:
    state = abstract_train_state(config)
    t0 = time.perf_counter()
    opts = {'accum_steps': 1, 'remat_chunk': 0, **(options or {})}
    step = jax.jit(train.train_step, static_argnums=(3, 4, 5))
    compiled = step.lower(state, _abstract_batch(b, c, n), jax.random.key(0), frozen,
                          opts['accum_steps'], opts['remat_chunk']).compile()
    compile_s = time.perf_counter() - t0
  flops, loops = _corrected_flops(compiled, config, b, c, n, with_grad=True)
  return {'flops': flops, 'loops': loops, 'buffer_bytes': _buffers(compiled),
          'compile_s': compile_s}


def vggish_example_gflop() -> float:
  """XLA's GFLOP for the VGGish network on one [96, 64] log-mel patch."""
  from alm_jax import embeddings  # pylint: disable=g-import-not-at-top
  from alm_jax.embeddings import vggish_network  # pylint: disable=g-import-not-at-top
  net = vggish_network.VGGish(dim=128)
  x = jax.ShapeDtypeStruct((1, 96, 64), jnp.float32)
  params = jax.eval_shape(net.init, jax.random.key(0), x)
  return _flops(jax.jit(net.apply).lower(params, x).compile()) / 1e9


# ---- the paper's recipe -----------------------------------------------------------------


def recipe(config, train_songs: int = PAPER_TRAIN_SONGS) -> dict:
  """Steps, segments and audio of the full training recipe of `config`."""
  bsz = int(config.train.batch_size)
  steps_per_epoch = optimizer.steps_per_epoch(config.train, train_songs)
  steps = optimizer.total_steps(config.train, steps_per_epoch)
  seconds = float(config.data.segment_seconds)
  return {'steps': steps, 'steps_per_epoch': steps_per_epoch, 'segments': steps * bsz,
          'frozen_steps': min(steps, optimizer.freeze_steps(config.train, steps_per_epoch)),
          'audio_seconds': steps * bsz * seconds,
          'channel_seconds': steps * bsz * seconds * int(config.model.max_channels)}


# ---- the table --------------------------------------------------------------------------


def run(args) -> dict:
  print(f'Machine: {machine()}')
  peak = cpu_matmul_peak(args.matmul_size)
  print(f'CPU peak (measured): {peak / 1e9:.1f} GFLOP/s, best float32 {args.matmul_size}^2 matmul')
  vgg = vggish_example_gflop()
  print(f'Check: XLA counts {vgg:.3f} GFLOP for one VGGish example '
        f'(published: ~{VGGISH_REFERENCE_GFLOP} GFLOP counting taps on the zero padding; '
        f'1.582 without them)')
  rows = []
  for model in args.models:
    for embedding in args.embeddings:
      config = model_config(model, embedding)
      b, c, n = shapes(config)
      audio_s = b * n / int(config.model.sample_rate)  # seconds of multitrack audio per step
      fwd = forward_cost(config, batch=1)
      step = train_step_cost(config)
      frozen = train_step_cost(config, frozen=True)
      row = {
          'model': model, 'embedding': embedding, 'batch': b, 'channels': c,
          'segment_s': n / int(config.model.sample_rate),
          'fwd_gflop_per_audio_s': fwd['flops'] / 1e9 / (n / int(config.model.sample_rate)),
          'train_gflop_per_step': step['flops'] / 1e9,
          'train_gflop_per_audio_s': step['flops'] / 1e9 / audio_s,
          'loops_fwd': fwd['loops'], 'loops_train': step['loops'],
          'train_buffers_gb': step['buffer_bytes'] / 1e9,
          'frozen_gflop_per_step': frozen['flops'] / 1e9,
          'frozen_buffers_gb': frozen['buffer_bytes'] / 1e9,
          'cpu_bound_audio_s_per_s': peak / (step['flops'] / audio_s),
      }
      r = recipe(config, args.train_songs)
      # The first freeze_embedding_epochs run the frozen step, the rest the fine-tune step.
      total = frozen['flops'] * r['frozen_steps'] + step['flops'] * (r['steps'] - r['frozen_steps'])
      row.update({
          'recipe_steps': r['steps'], 'recipe_frozen_steps': r['frozen_steps'],
          'recipe_audio_s': r['audio_seconds'],
          'recipe_pflop_frozen': frozen['flops'] * r['frozen_steps'] / 1e15,
          'recipe_pflop': total / 1e15,
          'h100_hours_at_utilisation': total / (H100_BF16_PEAK * args.utilisation) / 3600,
          'h100_utilisation_for_1h': total / (H100_BF16_PEAK * 3600),
          'h100_needed_audio_s_per_s_for_1h': r['audio_seconds'] / 3600,
      })
      rows.append(row)
      print(f'  {model} {embedding}: train {row["train_gflop_per_step"]:.1f} GFLOP/step, frozen '
            f'{row["frozen_gflop_per_step"]:.1f} (compile {step["compile_s"]:.1f} + '
            f'{frozen["compile_s"]:.1f} s)', flush=True)
  return {'machine': machine(), 'cpu_peak_flops': peak, 'vggish_gflop': vgg, 'rows': rows,
          'utilisation': args.utilisation, 'train_songs': args.train_songs}


def print_tables(result: dict):
  rows = result['rows']
  print()
  print('FLOPs per second of multitrack audio (8 channels), XLA cost analysis, float32, '
        'paper training shape')
  print(f'{"model":<10} {"embedding":<9} {"fwd GFLOP/s-audio":>18} {"train GFLOP/s-audio":>20} '
        f'{"train GFLOP/step":>17} {"frozen GFLOP/step":>18} {"loops fwd train":>15} '
        f'{"XLA buffers GB":>15} {"frozen buffers GB":>18} {"CPU bound s-audio/s":>20}')
  for r in rows:
    loops = '{}/{} {}/{}'.format(*r['loops_fwd'], *r['loops_train'])
    print(f'{r["model"]:<10} {r["embedding"]:<9} {r["fwd_gflop_per_audio_s"]:>18.1f} '
          f'{r["train_gflop_per_audio_s"]:>20.1f} {r["train_gflop_per_step"]:>17.1f} '
          f'{r["frozen_gflop_per_step"]:>18.1f} {loops:>15} {r["train_buffers_gb"]:>15.2f} '
          f'{r["frozen_buffers_gb"]:>18.2f} {r["cpu_bound_audio_s_per_s"]:>20.2f}')
  print(f'(CPU bound: audio rate of the train step at the measured matmul peak, '
        f'{result["cpu_peak_flops"] / 1e9:.1f} GFLOP/s; a bound, not a measurement)')
  u = result['utilisation']
  print()
  print(f'EXTRAPOLATION, not measured (no GPU here): the full recipe on one H100 SXM at the '
        f'published {H100_BF16_PEAK / 1e12:.0f} TFLOP/s dense BF16 and an assumed '
        f'{u:.0%} utilisation; {result["train_songs"]} training songs')
  print(f'{"model":<10} {"embedding":<9} {"steps":>7} {"frozen":>7} {"audio h":>8} '
        f'{"PFLOP":>9} {"of it frozen":>12} '
        f'{"H100 h at " + format(u, ".0%"):>14} {"util. for 1 h":>14} {"s-audio/s for 1 h":>18}')
  for r in rows:
    print(f'{r["model"]:<10} {r["embedding"]:<9} {r["recipe_steps"]:>7} '
          f'{r["recipe_frozen_steps"]:>7} {r["recipe_audio_s"] / 3600:>8.0f} '
          f'{r["recipe_pflop"]:>9.1f} {r["recipe_pflop_frozen"]:>12.1f} '
          f'{r["h100_hours_at_utilisation"]:>14.2f} {r["h100_utilisation_for_1h"]:>14.1%} '
          f'{r["h100_needed_audio_s_per_s_for_1h"]:>18.0f}')
  print('("util. for 1 h": the fraction of the BF16 peak a run needs to finish in one hour; '
        '"s-audio/s for 1 h": the rate the input pipeline must sustain)')


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--models', default=','.join(MODELS), help=f'comma list of {list(MODELS)}')
  p.add_argument('--embeddings', default=','.join(EMBEDDINGS))
  p.add_argument('--utilisation', type=float, default=0.3,
                 help='assumed fraction of the H100 BF16 peak, for the extrapolation')
  p.add_argument('--train_songs', type=int, default=PAPER_TRAIN_SONGS)
  p.add_argument('--matmul_size', type=int, default=2048)
  p.add_argument('--json', default='', help='also write the figures to this JSON file')
  args = p.parse_args()
  args.models = [m for m in args.models.split(',') if m]
  args.embeddings = [e for e in args.embeddings.split(',') if e]
  for m in args.models:
    if m not in MODELS:
      p.error(f'unknown model {m!r}; choose from {list(MODELS)}')
  for e in args.embeddings:
    if e not in EMBEDDINGS:
      p.error(f'unknown embedding {e!r}; choose from {list(EMBEDDINGS)}')
  result = run(args)
  print_tables(result)
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(result, f, indent=1)


if __name__ == '__main__':
  main()
