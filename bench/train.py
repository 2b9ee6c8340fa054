r"""Training speed: steps/s and seconds of audio per second, compile time apart.

    python bench/train.py                                  # cpu shape, ALM-MR and ALM-SR, f32 and bf16
    python bench/train.py --shapes=paper --dtypes=float32 --steps=2 --time_limit=1800
    python bench/train.py --json=bench/results/train_cpu.json
    python bench/train.py --config=configs/alm_mr_stage.py   # a recipe: steps/hour, where the time goes

Each case (model x shape x compute dtype) runs in its own child process (fresh
JAX, its own peak memory, killed at --time_limit seconds) and times
`alm_jax.train.train_step` — forward, backward and AdamW on one global batch,
jitted with the state donated, as `alm_jax.train.train_and_evaluate` runs it —
on random audio of the batch's shape (speed does not depend on the values):

  compile   lowering + XLA compilation of the step (once per run);
  step      wall time per step after compilation (median over the steps run,
            each ended with block_until_ready), --steps steps or fewer when the
            time limit comes first;
  rates     steps/s, seconds of multitrack audio per second (batch x segment
            / step time; x 8 for channel-seconds), achieved GFLOP/s from XLA's
            cost analysis (bench/flops.py, GRU loop corrected) and its fraction
            of this machine's measured float32 matmul peak.

Phases (--phases): `finetune`, every parameter differentiated, and `frozen`,
the step of the embedding freeze (the first freeze_embedding_epochs), whose
backward pass stops at the embedding. --grad_accum, --accum_loop and --remat_chunk set
config.train.grad_accum_steps, grad_accum_loop and remat_embedding_chunk; --memory_only compiles
and reports XLA's buffer assignment ("XLA GB") without running steps. "RSS GB"
is the child process's measured peak resident memory (compile included).

Shapes:
  paper     the config as is: batch 4, 8 channels, 20 s segments, VGGish (the
            paper's recipe); ALM-MR's step needs ~46 GB of XLA buffers in
            float32 (bench/flops.py), more than a small machine has: such a
            case is reported as skipped, not run;
  paper_b1  the same with batch 1 (a quarter of a paper step; the audio rate is
            comparable, the per-step figures are not);
  cpu       the small CNN embedding (config's small_features), batch 4, 8
            channels, 4 s segments: the other networks at the paper's sizes.
The input pipeline is not part of these timings (bench/input_pipeline.py
measures it). On a shared machine the load average is printed: numbers
measured under load are lower bounds.

--config=PATH times one training recipe as `python -m alm_jax.main` runs it, on
its own data, in one process (`recipe`):
  pipeline  make_train_iterator with the config's num_workers: batches/s over
            --batches batches (a second pass over the same steps, so a stage
            song's responses, computed once per process, are not counted);
  step      the compiled update on a real batch (the phase the recipe starts
            in), median of --steps, with the process's user and kernel CPU
            seconds per step;
  parts     jitted alone on that batch: the embedding's forward (front end +
            network, frozen or not), the MR-STFT loss forward and backward on a
            mix of the batch's shape, the model's forward with the loss;
  loop      --loop_steps updates fed by the pipeline as train_and_evaluate
            feeds them (dispatched without waiting, one sync at the end; no
            checkpoints, logging or validation): steps/s and steps/hour.
The process applies `alm_jax.allocator.tune_for_training()` first, as
alm_jax.main does (--malloc_tuning=0: glibc's defaults, for comparison).
"""

import argparse
import json
import os
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)
MODELS = {'alm_mr': 'mr', 'alm_sr': 'sr'}
SHAPES = {'paper': {}, 'paper_b1': {'batch': 1},
          'cpu': {'embedding': 'small', 'batch': 4, 'seconds': 4.0}}


def child(args) -> None:
  """Runs one case in this process; prints one JSON line per stage."""
  started = time.perf_counter()
  sys.path.insert(0, REPO)
  sys.path.insert(0, BENCH)
  import resource  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import flops  # pylint: disable=g-import-not-at-top  (bench/flops.py)
  from alm_jax import gradients  # pylint: disable=g-import-not-at-top
  from alm_jax import losses  # pylint: disable=g-import-not-at-top
  from alm_jax import train  # pylint: disable=g-import-not-at-top
  from alm_jax.models import build_model  # pylint: disable=g-import-not-at-top
  from alm_jax.models import compiler_options  # pylint: disable=g-import-not-at-top

  def emit(**kw):
    kw['peak_rss_gb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
    print(json.dumps(kw), flush=True)

  shape = SHAPES[args.shape]
  config = flops.load_config(MODELS[args.model])
  config.train.compute_dtype = args.dtype
  if 'embedding' in shape:
    config.model.embedding.name = shape['embedding']
  config.train.batch_size = shape.get('batch', int(config.train.batch_size))
  config.data.segment_seconds = shape.get('seconds', float(config.data.segment_seconds))
  b, c, n = flops.shapes(config)
  rate = int(config.model.sample_rate)
  emit(stage='config', batch=b, channels=c, segment_s=n / rate,
       embedding=str(config.model.embedding.name))

  rng = np.random.default_rng(0)
  batch = {'audio': (0.1 * rng.standard_normal((b, c, n))).astype(np.float32),
           'channel_mask': np.ones((b, c), bool)}
  batch['target'] = batch['audio'].sum(1)
  model = build_model(config)
  tx = train.make_optimizer(config, 1)
  loss_spec = losses.MRSTFTSpec.from_config(config.loss)
  state = jax.jit(train.create_train_state, static_argnums=(1, 2, 3))(
      jax.random.key(0), model, tx, loss_spec)
  key = jax.random.key(1)

  t0 = time.perf_counter()
  options = {'accum_steps': args.grad_accum, 'remat_chunk': args.remat_chunk}
  loop = args.accum_loop or gradients.accumulation_loop(config.train)
  frozen = args.phase == 'frozen'
  # The update as train_and_evaluate compiles it: train_step, or with --accum_loop=host one
  # micro-batch program run grad_accum times and the AdamW program. Programs run one after
  # another, so the largest one's buffers bound the step's.
  update = train.compile_update(None, None, None, options, loop, compiler_options(config))
  compiled = {name: low.compile() for name, low in update.lower(state, batch, key, frozen).items()}
  compile_s = time.perf_counter() - t0
  mem = [c.memory_analysis() for c in compiled.values()]
  # FLOPs from a program without micro-batch or remat loops (XLA counts a loop body once):
  # this one, or (not with --memory_only) the same step compiled without them.
  if args.grad_accum == 1 and args.remat_chunk == 0:
    cost = flops.train_step_cost(config, compiled=compiled['train_step'])
  elif args.memory_only:
    cost = {'flops': float('nan')}
  else:
    cost = flops.train_step_cost(config, frozen=frozen)
  need = max(flops._buffers(c) for c in compiled.values())  # pylint: disable=protected-access
  avail = _mem_available()
  emit(stage='compiled', compile_s=compile_s, gflop_per_step=cost['flops'] / 1e9,
       buffers_gb=need / 1e9, accum_loop=loop, available_gb=avail / 1e9,
       temp_gb=max(m.temp_size_in_bytes for m in mem) / 1e9 if all(mem) else float('nan'))
  if args.memory_only:
    return
  if avail and need > 0.75 * avail:  # a shared machine: leave room for others
    emit(stage='skipped', reason=f'needs {need / 1e9:.1f} GB of XLA buffers, '
         f'{avail / 1e9:.1f} GB available')
    return
  if 'train_step' in compiled:  # the compiled program itself: no second compilation
    step = compiled['train_step']
    update = lambda state, batch, key, frozen: step(state, batch, key)

  times = []
  deadline = started + args.step_budget  # the parent kills this process at its time limit
  for _ in range(args.steps):
    t = time.perf_counter()
    state, metrics = update(state, batch, key, frozen)  # host loop: compiles again on the first
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - t)
    emit(stage='step', step_s=times[-1], loss=float(metrics['loss']))
    if time.perf_counter() + times[-1] > deadline:
      break
  # The host loop's jitted programs compile on their first call: that step is not timed
  # where a later one was.
  timed = times[1:] if 'train_step' not in compiled and len(times) > 1 else times
  emit(stage='done', step_s=float(np.median(timed)), steps=len(timed))


def recipe(args) -> dict:
  """Times the recipe at args.config in this process (module docstring, --config); prints and returns it."""
  if args.malloc_tuning:
    try:
      from alm_jax import allocator  # pylint: disable=g-import-not-at-top
      # An editable install resolves a module this checkout lacks from another one: not ours.
      if not os.path.abspath(allocator.__file__).startswith(os.path.join(REPO, '')):
        raise ImportError(allocator.__file__)
      tuned = allocator.tune_for_training()
    except ImportError:  # a checkout from before alm_jax.allocator
      tuned = False
  else:
    tuned = False
  sys.path.insert(0, REPO)
  sys.path.insert(0, BENCH)
  import common  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  from alm_jax import gradients  # pylint: disable=g-import-not-at-top
  from alm_jax import losses  # pylint: disable=g-import-not-at-top
  from alm_jax import optimizer  # pylint: disable=g-import-not-at-top
  from alm_jax import train  # pylint: disable=g-import-not-at-top
  from alm_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from alm_jax.models import build_model  # pylint: disable=g-import-not-at-top
  from alm_jax.models import compiler_options  # pylint: disable=g-import-not-at-top

  out = {'config': args.config, 'malloc_tuning': tuned, 'machine': common.machine()}
  print(f'Machine: {out["machine"]}', flush=True)
  config = common.load_config(args.config)
  tc = config.train
  workers = pipeline.num_workers(config)
  t0 = time.perf_counter()
  spe = optimizer.steps_per_epoch(tc, lambda: pipeline.num_train_songs(config))
  out['setup_s'] = time.perf_counter() - t0

  def stream(start=0):
    return pipeline.make_train_iterator(config, steps_per_epoch=spe, start_step=start)

  # ---- pipeline alone: a first pass fills the per-song caches, the second is timed.
  n_batches = max(args.batches, args.loop_steps + 2)
  for timed in (False, True):
    it = stream()
    first = next(it)
    w, c = time.perf_counter(), time.process_time()
    for _ in range(n_batches - 1):
      next(it)
    wall, cpu = time.perf_counter() - w, time.process_time() - c
    it.close()
  out.update(pipeline_workers=workers, pipeline_batches_per_s=(n_batches - 1) / wall,
             pipeline_cpu_s_per_batch=cpu / (n_batches - 1))
  print(f'pipeline ({workers} worker(s)): {out["pipeline_batches_per_s"]:.2f} batches/s, '
        f'{out["pipeline_cpu_s_per_batch"]:.3f} CPU-s per batch', flush=True)

  # ---- the step, as train_and_evaluate compiles it.
  model = build_model(config)
  tx = train.make_optimizer(config, spe)
  spec = losses.MRSTFTSpec.from_config(config.loss)
  statics = (model, tx, spec, *train.gain_term_weights(config), *train.stereo_term_weights(config))
  statics_at = tuple(range(1, len(statics) + 1))
  fresh = lambda: jax.jit(train.create_train_state, static_argnums=statics_at)(
      jax.random.key(0), *statics)
  state = fresh()
  frozen = optimizer.freeze_steps(tc, spe) >= 1
  xo = compiler_options(config)
  update = train.compile_update(None, None, None, train.step_options(tc),
                                gradients.accumulation_loop(tc), xo)
  batch = jax.device_put(first)
  key = jax.random.key(1)
  t0 = time.perf_counter()
  state, metrics = update(state, batch, key, frozen)
  jax.block_until_ready(state)
  out['compile_s'] = time.perf_counter() - t0
  times, user, system = [], 0.0, 0.0
  for _ in range(args.steps):
    t0, c0 = time.perf_counter(), os.times()
    state, metrics = update(state, batch, key, frozen)
    jax.block_until_ready(state)
    c1 = os.times()
    times.append(time.perf_counter() - t0)
    user, system = user + c1.user - c0.user, system + c1.system - c0.system
  out.update(phase='frozen' if frozen else 'finetune', step_s=float(np.median(times)),
             step_user_s=user / args.steps, step_sys_s=system / args.steps)
  print(f'step ({out["phase"]}): {out["step_s"]:.3f} s median of {args.steps} (compile '
        f'{out["compile_s"]:.1f} s); CPU per step: user {out["step_user_s"]:.3f} s, kernel '
        f'{out["step_sys_s"]:.3f} s', flush=True)

  # ---- parts of the step, each jitted alone on the same batch.
  def part(name, fn, *fargs):
    jax.block_until_ready(fn(*fargs))
    ts = []
    for _ in range(args.steps):
      t0 = time.perf_counter()
      jax.block_until_ready(fn(*fargs))
      ts.append(time.perf_counter() - t0)
    out[f'part_{name}_s'] = float(np.median(ts))
    print(f'  {name:<28} {out[f"part_{name}_s"]:.3f} s', flush=True)

  def embedding_forward(m, audio):
    signal, g = m.front.frame_input(audio, m.frame_spec)
    patches = m.front.log_mel_frames(signal, g, m.frame_spec.stride * m.frame_spec.f2)
    return m.embedding(patches.reshape((-1,) + patches.shape[-2:]))

  variables = {'params': state.params}
  part('embedding forward', jax.jit(lambda v, a: model.apply(v, a, method=embedding_forward),
                                    compiler_options=xo), variables, batch['audio'])
  mix = model.apply(variables, batch['audio'], batch['channel_mask'])['mix']
  mr = lambda m: jnp.sum(losses.mix_loss(m, batch['target'], spec))
  part('MR-STFT loss fwd+bwd', jax.jit(jax.value_and_grad(mr)), mix)
  example_losses = train.example_losses(state)
  part('model + loss forward', jax.jit(lambda p, b: example_losses(p, b, key), compiler_options=xo),
       state.params, batch)

  # ---- the loop: the pipeline feeding the updates, as in train_and_evaluate.
  state = fresh()
  state, _ = update(state, batch, key, frozen)
  it = stream()
  for _ in range(workers + 2):  # the pool filled, as after the loop's first steps
    state, _ = update(state, jax.device_put(next(it)), key, frozen)
  jax.block_until_ready(state)
  t0, c0 = time.perf_counter(), os.times()
  for _ in range(args.loop_steps):
    state, metrics = update(state, jax.device_put(next(it)), key, frozen)
  jax.block_until_ready(state)
  wall, c1 = time.perf_counter() - t0, os.times()
  it.close()
  out.update(loop_steps=args.loop_steps, loop_steps_per_s=args.loop_steps / wall,
             loop_steps_per_hour=3600 * args.loop_steps / wall,
             loop_cores=(c1.user - c0.user + c1.system - c0.system) / wall,
             loop_sys_share=(c1.system - c0.system) / max(c1.user - c0.user + c1.system - c0.system, 1e-9))
  print(f'loop: {out["loop_steps_per_s"]:.3f} steps/s = {out["loop_steps_per_hour"]:.0f} steps/hour '
        f'over {args.loop_steps} steps; {out["loop_cores"]:.2f} cores busy, '
        f'{100 * out["loop_sys_share"]:.0f} % of it in the kernel', flush=True)
  import resource  # pylint: disable=g-import-not-at-top
  out['peak_rss_gb'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
  print(f'peak RSS {out["peak_rss_gb"]:.1f} GB (the training songs are held in memory as int16)',
        flush=True)
  out['machine_end'] = common.machine()
  print(f'(malloc tuning: {"on" if tuned else "off"}; at the end: '
        f'{out["machine_end"].rsplit(";", 1)[-1].strip()})', flush=True)
  return out


def _mem_available() -> float:
  try:
    with open('/proc/meminfo') as f:
      for line in f:
        if line.startswith('MemAvailable:'):
          return float(line.split()[1]) * 1024
  except OSError:
    pass
  return 0.0


def run_case(model, shape, dtype, phase, args) -> dict:
  """Runs one case in a child process; returns what it reported before ending or timing out."""
  cmd = [sys.executable, os.path.abspath(__file__), '--child', f'--model={model}',
         f'--shape={shape}', f'--dtype={dtype}', f'--steps={args.steps}',
         f'--step_budget={args.time_limit}', f'--phase={phase}', f'--grad_accum={args.grad_accum}',
         f'--remat_chunk={args.remat_chunk}', f'--accum_loop={args.accum_loop}'] + (
             ['--memory_only'] if args.memory_only else [])
  result = {'model': model, 'shape': shape, 'dtype': dtype, 'phase': phase,
            'grad_accum': args.grad_accum, 'remat_chunk': args.remat_chunk}
  t0 = time.perf_counter()
  proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  lines = []
  try:
    out, err = proc.communicate(timeout=args.time_limit)
  except subprocess.TimeoutExpired:
    proc.kill()
    out, err = proc.communicate()
    result['timeout_s'] = args.time_limit
  for line in out.splitlines():
    if line.startswith('{'):
      lines.append(json.loads(line))
  for event in lines:
    stage = event.pop('stage')
    if stage == 'step':
      result.setdefault('step_times', []).append(event['step_s'])
      result['peak_rss_gb'] = event['peak_rss_gb']
    else:
      result.update(event)
  result['wall_s'] = time.perf_counter() - t0
  if proc.returncode not in (0, None) and 'timeout_s' not in result:
    result['error'] = err.strip().splitlines()[-1] if err.strip() else f'exit {proc.returncode}'
  if 'step_times' in result and 'step_s' not in result:  # timed out after some steps
    result['step_s'] = sorted(result['step_times'])[len(result['step_times']) // 2]
  if 'step_s' in result:
    audio = result['batch'] * result['segment_s']
    result['steps_per_s'] = 1.0 / result['step_s']
    result['audio_s_per_s'] = audio / result['step_s']
    result['channel_s_per_s'] = result['audio_s_per_s'] * result['channels']
    result['gflop_per_s'] = result['gflop_per_step'] / result['step_s']
  return result


def _accum(r) -> str:
  """'4 host' / '4 scan': micro-batches and their loop; '1' without accumulation."""
  k = r['grad_accum']
  return f'{k} {r.get("accum_loop", "")}'.strip() if k > 1 else '1'


def _fmt(v, spec):
  return format(v, spec) if isinstance(v, (int, float)) else str(v)


def print_table(results, peak_flops, machine):
  print()
  print(f'Machine: {machine}')
  print(f'CPU float32 matmul peak (measured, best of before and after): {peak_flops / 1e9:.1f} GFLOP/s')
  head = (f'{"model":<7} {"shape":<8} {"dtype":<9} {"phase":<8} {"emb":<7} {"b x ch x s":<11} '
          f'{"accum":>6} {"remat":>5} {"compile s":>9} '
          f'{"step s":>8} {"steps/s":>8} {"s-audio/s":>10} {"ch-s/s":>8} {"GFLOP/step":>11} '
          f'{"GFLOP/s":>8} {"% peak":>7} {"XLA GB":>7} {"RSS GB":>7}  note')
  print(head)
  for r in results:
    shape = (f'{r["batch"]}x{r["channels"]}x{r["segment_s"]:.0f}' if 'batch' in r else '-')
    note = ''
    if 'error' in r:
      note = f'error: {r["error"][:60]}'
    elif 'reason' in r:
      note = f'skipped: {r["reason"]}'
    elif 'timeout_s' in r:
      note = (f'time limit {r["timeout_s"]} s reached' +
              (f' after {len(r.get("step_times", []))} step(s)' if 'step_times' in r
               else (' during the first step' if 'compile_s' in r else ' while compiling')))
    elif r.get('steps', 0):
      note = f'{r["steps"]} step(s) timed'
    pct = (100 * r['gflop_per_s'] * 1e9 / peak_flops) if 'gflop_per_s' in r else '-'
    print(f'{r["model"]:<7} {r["shape"]:<8} {r["dtype"]:<9} {r["phase"]:<8} '
          f'{r.get("embedding", "-"):<7} {shape:<11} {_accum(r):>6} {r["remat_chunk"]:>5} '
          f'{_fmt(r.get("compile_s", "-"), ".1f"):>9} {_fmt(r.get("step_s", "-"), ".3f"):>8} '
          f'{_fmt(r.get("steps_per_s", "-"), ".3f"):>8} {_fmt(r.get("audio_s_per_s", "-"), ".2f"):>10} '
          f'{_fmt(r.get("channel_s_per_s", "-"), ".1f"):>8} '
          f'{_fmt(r.get("gflop_per_step", "-"), ".1f"):>11} {_fmt(r.get("gflop_per_s", "-"), ".1f"):>8} '
          f'{_fmt(pct, ".1f"):>7} {_fmt(r.get("buffers_gb", "-"), ".2f"):>7} '
          f'{_fmt(r.get("peak_rss_gb", "-"), ".2f"):>7}  {note}')
  print('(s-audio/s: seconds of 8-channel audio trained on per second; ch-s/s counts each '
        'channel; GFLOP from XLA cost analysis; % peak: achieved / measured matmul peak; XLA GB: '
        'buffer assignment of the step, arguments + temporaries + outputs - aliased; RSS GB: the '
        'process\'s peak resident memory, compile included)')


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--models', default='alm_mr,alm_sr')
  p.add_argument('--shapes', default='cpu', help='comma list of paper, paper_b1, cpu')
  p.add_argument('--dtypes', default='float32,bfloat16')
  p.add_argument('--steps', type=int, default=5, help='steps timed per case (at most)')
  p.add_argument('--time_limit', type=int, default=900, help='seconds per case, compile included')
  p.add_argument('--phases', default='finetune,frozen',
                 help='comma list of finetune (every parameter) and frozen (the embedding '
                 'freeze: no backward through it)')
  p.add_argument('--grad_accum', type=int, default=1, help='config.train.grad_accum_steps')
  p.add_argument('--remat_chunk', type=int, default=0, help='config.train.remat_embedding_chunk')
  p.add_argument('--accum_loop', default='', choices=('', 'scan', 'host'),
                 help="config.train.grad_accum_loop ('': the config's, auto: host on CPU)")
  p.add_argument('--memory_only', action='store_true',
                 help='compile and report XLA\'s buffer assignment only (no steps run)')
  p.add_argument('--json', default='')
  p.add_argument('--config', default='',
                 help='a training config (configs/alm_mr_stage.py): time that recipe on its data '
                 '(pipeline, step, its parts, the loop; module docstring) instead of the table')
  p.add_argument('--batches', type=int, default=32, help='--config: pipeline batches timed')
  p.add_argument('--loop_steps', type=int, default=60, help='--config: loop steps timed')
  p.add_argument('--malloc_tuning', type=int, default=1, choices=(0, 1),
                 help='--config: apply alm_jax.allocator.tune_for_training() first (as alm_jax.main)')
  p.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  p.add_argument('--phase', default='finetune', help=argparse.SUPPRESS)
  p.add_argument('--model', help=argparse.SUPPRESS)
  p.add_argument('--shape', help=argparse.SUPPRESS)
  p.add_argument('--dtype', help=argparse.SUPPRESS)
  p.add_argument('--step_budget', type=float, default=900, help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.child:
    child(args)
    return
  if args.config:
    sys.path.insert(0, REPO)
    result = recipe(args)
    if args.json:
      os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
      with open(args.json, 'w') as f:
        json.dump(result, f, indent=1)
    return
  sys.path.insert(0, REPO)
  sys.path.insert(0, BENCH)
  import flops  # pylint: disable=g-import-not-at-top
  models = [m for m in args.models.split(',') if m]
  shapes = [s for s in args.shapes.split(',') if s]
  dtypes = [d for d in args.dtypes.split(',') if d]
  for m in models:
    if m not in MODELS:
      p.error(f'unknown model {m!r}; choose from {list(MODELS)}')
  for s in shapes:
    if s not in SHAPES:
      p.error(f'unknown shape {s!r}; choose from {list(SHAPES)}')
  peak = flops.cpu_matmul_peak()
  machine = flops.machine()
  results = []
  phases = [ph for ph in args.phases.split(',') if ph]
  for ph in phases:
    if ph not in ('finetune', 'frozen'):
      p.error(f'unknown phase {ph!r}; choose from finetune, frozen')
  for shape in shapes:
    for model in models:
      for dtype, phase in [(d, ph) for d in dtypes for ph in phases]:
        r = run_case(model, shape, dtype, phase, args)
        results.append(r)
        print(f'{model} {shape} {dtype} {phase}: ' + ', '.join(
            f'{k}={_fmt(v, ".3g")}' for k, v in r.items()
            if k in ('compile_s', 'step_s', 'audio_s_per_s', 'error', 'reason', 'timeout_s')),
              flush=True)
  machine_end = flops.machine()
  # On a shared machine the matmul peak measured under load is too low: keep the best.
  peak = max(peak, flops.cpu_matmul_peak())
  print_table(results, peak, f'{machine} (at the end: {machine_end.rsplit(";", 1)[-1].strip()})')
  if args.json:
    os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
    with open(args.json, 'w') as f:
      json.dump({'machine': machine, 'machine_end': machine_end, 'cpu_peak_flops': peak,
                 'results': results}, f, indent=1)


if __name__ == '__main__':
  main()
