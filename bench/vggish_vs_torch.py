r"""VGGish forward on the CPU: alm_jax (JAX/XLA) against the same network in PyTorch, side by side.

    pip install torch                        # optional peer, CPU wheel
    python bench/vggish_vs_torch.py          # batch 64, 2 threads, every variant below
    python bench/vggish_vs_torch.py --variants=default --repeats=20

One run prints, for each JAX variant, the median time of a batch of log-mel
patches [batch, 96, 64] through VGGish, torchvggish's architecture in PyTorch
(`torch.nn`, NCHW, the layers of harritaylor/torchvggish, whose flatten
transposes to NHWC as the TF graph does) with the same weights and input, and
the ratio JAX / torch. The two are timed alternately in the same process
(paired rounds, median of each), so load from other processes hits both alike;
the outputs are checked to agree. Each variant runs in its own child process,
since XLA flags are read once per process:

  default      `alm_jax.embeddings.vggish_network.VGGish` as the models run it, with its
               XLA:CPU compiler options (`embeddings.cpu_compiler_options`:
               convolutions by Eigen instead of YNNPACK);
  ynn          the same with XLA's default options (YNNPACK convolutions), as
               before those options existed;
  reshape_pool the same with each 2x2 max-pool written as reshape + max
               instead of `lax.reduce_window` (every map here has even sides);
  nchw         the convolutions in NCHW / OIHW layout, as torch stores them;
  im2col       each 3x3 convolution as one matmul: the 9 shifted copies of the
               padded input side by side [n, h, w, 9 cin] times the kernel
               [9 cin, cout] (XLA's dot path instead of its convolution);
  eigen_off    default with --xla_cpu_multi_thread_eigen=false (single-threaded
               Eigen convolutions);
  fast_math    default with --xla_cpu_enable_fast_math=true;
  no_thunks    default with --xla_cpu_use_thunk_runtime=false (the older
               compiled-loop CPU runtime), where this jaxlib still accepts it.
  no_ynn       this jaxlib hands convolutions and dots to YNNPACK by default
               (its HLO shows __ynn_fusion custom calls); this turns that off
               (Eigen's convolutions);
  ynn_dots     YNNPACK for the dots only (convolutions by Eigen);
  ynn_fused    YNNPACK also for the dots' fused bias/ReLU and the reductions;
  xnn_conv, onednn_conv
               YNNPACK off and each convolution handed to XNNPACK or oneDNN
               (--xla_cpu_experimental_{xnn,onednn}_fusion_type=
               LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION).
A flag this jaxlib does not know makes that child fail: it is reported, not fatal.
"""

import argparse
import json
import os
import subprocess
import sys
import time

BENCH = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(BENCH)

VARIANT_FLAGS = {
    'default': '', 'ynn': '', 'reshape_pool': '', 'nchw': '', 'im2col': '',
    'eigen_off': '--xla_cpu_multi_thread_eigen=false',
    'fast_math': '--xla_cpu_enable_fast_math=true',
    'no_thunks': '--xla_cpu_use_thunk_runtime=false',
    'no_ynn': '--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INVALID',
    'ynn_dots': '--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_DOT',
    'ynn_fused': ('--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION,'
                  'LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_ELTWISE,LIBRARY_FUSION_TYPE_REDUCE'),
    'xnn_conv': ('--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INVALID '
                 '--xla_cpu_experimental_xnn_fusion_type=LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION'),
    'onednn_conv': ('--xla_cpu_experimental_ynn_fusion_type=LIBRARY_FUSION_TYPE_INVALID '
                    '--xla_cpu_experimental_onednn_fusion_type='
                    'LIBRARY_FUSION_TYPE_INDIVIDUAL_CONVOLUTION'),
}


def _torch_vggish(params, torch):
  """torchvggish's VGG (features + embeddings) with alm_jax's VGGish parameters."""
  from alm_jax import embeddings  # pylint: disable=g-import-not-at-top
  from alm_jax.embeddings import vggish_network  # pylint: disable=g-import-not-at-top
  nn = torch.nn
  layers, c_in = [], 1
  for layer in vggish_network.VGGISH_LAYERS:
    if layer == 'pool':
      layers.append(nn.MaxPool2d(2, 2))
      continue
    name, features = layer
    conv = nn.Conv2d(c_in, features, 3, padding=1)
    k = params[name]['kernel']  # HWIO
    conv.weight.data = torch.from_numpy(k.transpose(3, 2, 0, 1).copy())
    conv.bias.data = torch.from_numpy(params[name]['bias'].copy())
    layers += [conv, nn.ReLU(inplace=True)]
    c_in = features
  fcs = []
  for name, _ in vggish_network.VGGISH_FC + (('fc2', 0),):
    k = params[name]['kernel']
    fc = nn.Linear(*k.shape)
    fc.weight.data = torch.from_numpy(k.T.copy())
    fc.bias.data = torch.from_numpy(params[name]['bias'].copy())
    fcs += [fc, nn.ReLU(inplace=True)]
  features, head = nn.Sequential(*layers), nn.Sequential(*fcs[:-1])  # TF release: linear fc2

  def forward(x):  # [n, 96, 64]
    y = features(x[:, None])
    y = torch.transpose(torch.transpose(y, 1, 3), 1, 2).contiguous()  # NCHW -> NHWC, as torchvggish
    return head(y.view(y.size(0), -1))

  return forward


def _jax_forward(variant, params):
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  import ml_collections  # pylint: disable=g-import-not-at-top
  from alm_jax import embeddings  # pylint: disable=g-import-not-at-top
  from alm_jax.embeddings import vggish_network  # pylint: disable=g-import-not-at-top
  # The models' compiler options, except for the variants that are XLA's defaults or flags.
  options = (None if VARIANT_FLAGS[variant] or variant == 'ynn' else
             embeddings.cpu_compiler_options(ml_collections.ConfigDict({'name': 'vggish'})))
  if variant not in ('reshape_pool', 'nchw', 'im2col'):
    net = vggish_network.VGGish(dim=128)
    return jax.jit(lambda p, x: net.apply({'params': p}, x), compiler_options=options)

  def pool(x, axes):  # 2x2, stride 2 on two even axes
    shape = list(x.shape)
    a, b = axes
    new = shape[:a] + [shape[a] // 2, 2] + shape[a + 1:b] + [shape[b] // 2, 2] + shape[b + 1:]
    return jnp.max(x.reshape(new), axis=(a + 1, b + 2))

  def im2col_conv(y, k):  # [n, h, w, cin] * HWIO 3x3 'SAME' -> [n, h, w, cout]
    n, h, w, _ = y.shape
    padded = jnp.pad(y, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = jnp.concatenate([padded[:, i:i + h, j:j + w] for i in range(3) for j in range(3)], -1)
    return cols @ k.reshape(-1, k.shape[-1])  # rows (i, j, cin) as HWIO flattens

  def forward(p, x):
    nchw = variant == 'nchw'
    y = x[:, None] if nchw else x[..., None]
    for layer in vggish_network.VGGISH_LAYERS:
      if layer == 'pool':
        y = pool(y, (2, 3) if nchw else (1, 2))
        continue
      name, _ = layer
      k = p[name]['kernel']
      dims = ('NCHW', 'HWIO', 'NCHW') if nchw else ('NHWC', 'HWIO', 'NHWC')
      if variant == 'im2col':
        y = im2col_conv(y, k)
      else:
        y = jax.lax.conv_general_dilated(y, k, (1, 1), 'SAME', dimension_numbers=dims)
      bias = p[name]['bias']
      y = jax.nn.relu(y + (bias[:, None, None] if nchw else bias))
    if nchw:
      y = jnp.transpose(y, (0, 2, 3, 1))
    y = y.reshape(y.shape[0], -1)
    for name, _ in vggish_network.VGGISH_FC:
      y = jax.nn.relu(y @ p[name]['kernel'] + p[name]['bias'])
    return y @ p['fc2']['kernel'] + p['fc2']['bias']

  return jax.jit(forward, compiler_options=options)


def child(args) -> None:
  """Times one variant against torch in this process; prints one JSON line."""
  sys.path.insert(0, REPO)
  import numpy as np  # pylint: disable=g-import-not-at-top
  import torch  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from alm_jax import embeddings  # pylint: disable=g-import-not-at-top
  from alm_jax.embeddings import vggish_network  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(args.threads)
  rng = np.random.default_rng(0)
  x = rng.standard_normal((args.batch, 96, 64)).astype(np.float32)
  params = jax.device_get(vggish_network.VGGish(dim=128).init(jax.random.key(0), x[:1])['params'])
  params = jax.tree.map(lambda a: np.asarray(a, np.float32), params)
  jax_fn = _jax_forward(args.variant, params)
  torch_fn = _torch_vggish(params, torch)
  xt = torch.from_numpy(x)
  t0 = time.perf_counter()
  ours = np.asarray(jax.block_until_ready(jax_fn(params, x)))
  compile_s = time.perf_counter() - t0
  with torch.inference_mode():
    theirs = torch_fn(xt).numpy()
  err = float(np.max(np.abs(ours - theirs)) / (np.max(np.abs(theirs)) + 1e-12))
  jt, tt = [], []
  with torch.inference_mode():
    for _ in range(args.repeats):  # paired rounds
      t = time.perf_counter()
      jax.block_until_ready(jax_fn(params, x))
      jt.append(time.perf_counter() - t)
      t = time.perf_counter()
      torch_fn(xt)
      tt.append(time.perf_counter() - t)
  ratios = sorted(a / b for a, b in zip(jt, tt))
  print(json.dumps({'variant': args.variant, 'jax_s': float(np.median(jt)),
                    'torch_s': float(np.median(tt)), 'ratio': ratios[len(ratios) // 2],
                    'ratio_min': ratios[0], 'ratio_max': ratios[-1], 'max_rel_err': err,
                    'compile_s': compile_s, 'torch': torch.__version__,
                    'jax': jax.__version__}), flush=True)


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--variants', default=','.join(VARIANT_FLAGS))
  p.add_argument('--batch', type=int, default=64, help='log-mel patches per call')
  p.add_argument('--threads', type=int, default=2, help='torch intra-op threads')
  p.add_argument('--repeats', type=int, default=10, help='paired timing rounds')
  p.add_argument('--json', default='')
  p.add_argument('--child', action='store_true', help=argparse.SUPPRESS)
  p.add_argument('--variant', default='default', help=argparse.SUPPRESS)
  args = p.parse_args()
  if args.child:
    child(args)
    return
  try:
    import torch  # pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    raise SystemExit('error: this benchmark compares against PyTorch; pip install torch (CPU).')
  sys.path.insert(0, BENCH)
  from common import machine  # pylint: disable=g-import-not-at-top
  print(f'Machine: {machine()}; batch {args.batch} patches [96, 64], torch threads {args.threads}')
  rows = []
  for v in [v for v in args.variants.split(',') if v]:
    if v not in VARIANT_FLAGS:
      p.error(f'unknown variant {v!r}; choose from {list(VARIANT_FLAGS)}')
    env = dict(os.environ)
    env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') + ' ' + VARIANT_FLAGS[v]).strip()
    cmd = [sys.executable, os.path.abspath(__file__), '--child', f'--variant={v}',
           f'--batch={args.batch}', f'--threads={args.threads}', f'--repeats={args.repeats}']
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    lines = [json.loads(l) for l in proc.stdout.splitlines() if l.startswith('{')]
    row = lines[-1] if lines else {'variant': v, 'error': (proc.stderr.strip().splitlines() or
                                                           [f'exit {proc.returncode}'])[-1][:100]}
    row['xla_flags'] = VARIANT_FLAGS[v]
    rows.append(row)
    print(json.dumps(row), flush=True)
  print()
  print(f'{"variant":<13} {"JAX ms":>8} {"torch ms":>9} {"JAX/torch":>10} {"(min-max)":>13} '
        f'{"max rel err":>12}  XLA flags')
  for r in rows:
    if 'error' in r:
      print(f'{r["variant"]:<13} error: {r["error"]}')
      continue
    print(f'{r["variant"]:<13} {1e3 * r["jax_s"]:>8.1f} {1e3 * r["torch_s"]:>9.1f} '
          f'{r["ratio"]:>10.2f} {r["ratio_min"]:>6.2f}-{r["ratio_max"]:<6.2f} '
          f'{r["max_rel_err"]:>12.1e}  {r["xla_flags"]}')
  print('(JAX/torch: median over paired rounds of the JAX time / the torch time; < 1: JAX faster)')
  if args.json:
    with open(args.json, 'w') as f:
      json.dump({'machine': machine(), 'batch': args.batch, 'rows': rows}, f, indent=1)


if __name__ == '__main__':
  main()
