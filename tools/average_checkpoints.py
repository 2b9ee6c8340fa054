r"""The mean of several trained mixers' parameters, written as a new workdir (a model soup).

    python tools/average_checkpoints.py --checkpoints=/tmp/alm_kits,/tmp/alm_kits_timbre \
        --workdir=/tmp/alm_soup [--weights=1,1]

Runs that continue one another (`train.init_params_from`) start from one point and stay in one
basin of the loss, and the mean of their parameters often generalises better than any one of
them (Izmailov et al. 2018, "Averaging weights leads to wider optima"; Wortsman et al. 2022,
"Model soups"). Each --checkpoints entry is what `--checkpoint` takes (a workdir, a step
directory, 'pretrained:NAME'); all must share one `config.model`. The result is a
parameters-only checkpoint (`checkpoints.save_params`) at the largest step, with the first
entry's config: mix, evaluate, export, ship and `train.init_params_from` take it like any run.
"""

import argparse
import sys

import jax
import numpy as np

from alm_jax import checkpoints
from alm_jax import restore


def average(paths, weights=None):
  """(config, mean params, largest step) of the mixers at `paths`, weighted by `weights`.

  Raises:
    ConfigMismatchError: the mixers' models differ (their parameters cannot be averaged).
  """
  weights = np.ones(len(paths)) if weights is None else np.asarray(weights, np.float64)
  if len(weights) != len(paths) or np.any(weights < 0) or weights.sum() <= 0:
    raise ValueError(f'--weights needs {len(paths)} non-negative numbers, not all zero.')
  weights = weights / weights.sum()
  config, trees, step = None, [], 0
  for path in paths:  # each after the first checked against the first's model
    saved, params, at = restore.restore_params(path, config)
    config = config or saved
    trees.append(params)
    step = max(step, at)
  mean = jax.tree.map(lambda *leaves: sum(w * x for w, x in zip(weights, leaves)), *trees)
  return config, mean, step


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--checkpoints', required=True, help='comma-separated, at least two')
  parser.add_argument('--workdir', required=True, help='a new folder for the result')
  parser.add_argument('--weights', default='', help='comma-separated, one per checkpoint')
  args = parser.parse_args(argv)
  paths = [p for p in args.checkpoints.split(',') if p]
  if len(paths) < 2:
    parser.error('--checkpoints needs at least two mixers to average.')
  weights = [float(w) for w in args.weights.split(',')] if args.weights else None
  try:
    config, params, step = average(paths, weights)
    checkpoints.save_params(args.workdir, config, step, params)
  except (checkpoints.CheckpointError, ValueError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 1
  print(f'{args.workdir}: the mean of {len(paths)} mixers, step {step}.')
  return 0


if __name__ == '__main__':
  sys.exit(main())
