r"""Balance error by role on rendered_live: each system's mean signed error per role, and the paired comparison.

    python tools/role_errors.py --checkpoints=PRESET=configs/loudness_preset.py,\
ROLE-PRESET=configs/role_preset.py,ALM-MR=pretrained:alm_mr [--split=validation] \
        [--segment_seconds=20] [--reference=PRESET] [--json=OUT.json]

On `alm_jax.evaluate`'s examples (the same segments, bleed and input levels, seed 0), each system
mixes every segment as the evaluation mixes it (`evaluation.systems.load_system(...).mix`), and
the metric suite (`evaluation.run.measure`, as docs/results.md) is taken, and its balance error
(`metrics.balance_error_db`) also per channel, signed
(positive: the channel ends louder, relative to the others, than the designed balance). Prints
per system: the balance error (mean ± std over segments, as docs/results.md), the paired
difference against --reference (mean, 95 % interval, segments where it is lower), and the mean
signed error per role (the channel's `rendered_live` role label; roles with fewer than 3 channels
marked), plus the two static oracle rules of tools/balance_floor.py. --json also keeps each
channel's signed error and role, for medians and spreads.
"""

import argparse
import json
import os
import runpy
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import balance_floor  # pylint: disable=wrong-import-position

from alm_jax import metrics  # pylint: disable=wrong-import-position
from alm_jax.evaluation import examples as examples_lib  # pylint: disable=wrong-import-position
from alm_jax.evaluation import run as run_lib  # pylint: disable=wrong-import-position
from alm_jax.evaluation import systems as systems_lib  # pylint: disable=wrong-import-position
from alm_jax.inference import offline  # pylint: disable=wrong-import-position

ROLE_ORDER = ('lead', 'melody', 'kick', 'snare', 'drums', 'hats', 'overheads', 'bass', 'bass_voice',
              'comp', 'pad', 'inner')


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--checkpoints', required=True)
  parser.add_argument('--data_config', default='configs/pretrained_alm_mr.py')
  parser.add_argument('--split', default='validation')
  parser.add_argument('--segment_seconds', type=float, default=20.0)
  parser.add_argument('--reference', default='PRESET')
  parser.add_argument('--json', default='')
  parser.add_argument('--max_segments', type=int, default=0, help='only the first N (quick checks)')
  args = parser.parse_args(argv)
  config = examples_lib.eval_data_config(runpy.run_path(args.data_config)['get_config'](),
                                         args.split, segment_seconds=args.segment_seconds)
  examples = examples_lib.load_examples(config, args.split)
  if args.max_segments:
    examples = examples[:args.max_segments]
  chunk = min(offline.DEFAULT_CHUNK_SECONDS, args.segment_seconds)
  roles = [[balance_floor.role_of(n) for n in ex.channel_names] for ex in examples]
  signed, overall, suite = {}, {}, {}
  for entry in ['EQUAL-LEVEL-ORACLE', 'ROLE-ORACLE'] + args.checkpoints.split(','):
    name, _, path = entry.partition('=')
    system = systems_lib.load_system(name, path) if path else None
    signed[name], overall[name], suite[name] = [], [], []
    for ex, r in zip(examples, roles):
      if system is None:  # the static oracle rules of tools/balance_floor.py
        gains = 10 ** (balance_floor.static_gains_db(ex.audio, r if name == 'ROLE-ORACLE' else
                                                     None) / 20)
      else:
        mix, gains = system.mix(ex.audio, np.ones(ex.audio.shape[0], bool),
                                target_gains=ex.target_gains, chunk_seconds=chunk, where=ex.where)
        suite[name].append(run_lib.measure(system, ex, mix, gains, config.loss))
      overall[name].append(float(metrics.balance_error_db(gains, ex.target_gains)))
      signed[name].append(np.asarray(metrics.balance_error_db(gains, ex.target_gains,
                                                              per_channel=True)))
    means = {k: float(np.nanmean([row[k] for row in suite[name]])) for k in
             (suite[name][0] if suite[name] else {})}
    print(f'{name}: balance error {np.mean(overall[name]):.2f} ± {np.std(overall[name]):.2f} dB; '
          f'metric suite means {json.dumps({k: round(v, 4) for k, v in means.items()})}',
          flush=True)
  flat_roles = np.concatenate([np.array(r) for r in roles])
  present = [r for r in ROLE_ORDER if r in set(flat_roles)]
  counts = {r: int(np.sum(flat_roles == r)) for r in present}
  print(f'\n{args.split} split, {len(examples)} segments of {args.segment_seconds:g} s')
  print('| System | Balance error (dB) | vs ' + args.reference + ' (paired, 95 %) | ' +
        ' | '.join(f'{r} (n={counts[r]})' for r in present) + ' |')
  print('|---' * (3 + len(present)) + '|')
  out = {'split': args.split, 'segments': len(examples), 'counts': counts,
         'roles': flat_roles.tolist(), 'systems': {}}
  ref = np.array(overall.get(args.reference, []))
  for name in signed:
    errs = np.concatenate(signed[name])
    per_role = {r: float(np.mean(errs[flat_roles == r])) for r in present}
    vals = np.array(overall[name])
    if len(ref) and name != args.reference:
      d = vals - ref
      half = 1.96 * d.std(ddof=1) / np.sqrt(len(d))
      paired = f'{d.mean():+.2f} ± {half:.2f} ({np.sum(d < 0)}/{len(d)} lower)'
    else:
      paired, d = '', None
    print(f'| {name} | {vals.mean():.2f} ± {vals.std():.2f} | {paired} | ' +
          ' | '.join(f'{per_role[r]:+.1f}' for r in present) + ' |')
    out['systems'][name] = {'balance_error_db': vals.tolist(), 'per_role_signed_db': per_role,
                            'per_channel_signed_db': errs.tolist(), 'paired': paired,
                            'suite': suite[name]}
  if args.json:
    with open(args.json, 'w') as f:
      json.dump(out, f, indent=1)


if __name__ == '__main__':
  main()
