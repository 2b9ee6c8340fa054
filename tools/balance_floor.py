r"""How low can a mixer's balance error go on rendered_live? Static oracle mixers, measured.

    python tools/balance_floor.py [--split=test] [--segment_seconds=20] \
        [--config=configs/pretrained_alm_mr.py]

On the evaluation's own examples (`alm_jax.evaluate`'s segments: bleed and input levels
drawn with the same seed), each "mixer" below applies one static gain per channel computed
from the whole segment (non-causal, so no causal mixer does better by the same rule) and is
scored with the metric suite's balance error (`metrics.balance_error_db`):

- `equal level`: every channel at the same active level (`rendered.active_level_db`, measured
  on the input, bleed included): the preset's rule without its time constant.
- `role + level`: the same, plus the designed level of the channel's role
  (`rendered.ROLE_LEVELS_DB`, read from its instrument label): a mixer that recognises every
  role perfectly. What remains is the per-song level jitter (`rendered.LEVEL_JITTER_DB`), the
  bleed in the level measurement, and the segment's level against the song's.

Prints the mean ± std of each over the examples, and its mean per bleed-severity bin (the
bins of docs/results.md); the figures are quoted in docs/results_notes.md.
"""

import argparse
import runpy

import numpy as np

from alm_jax import metrics
from alm_jax.data import rendered
from alm_jax.evaluation import examples as examples_lib
from alm_jax.evaluation import report
from alm_jax.evaluation import run


def role_of(channel_name: str) -> str:
  """'3: bass:Fingered Bs.' -> 'bass' (`evaluation.examples` labels, rendered_live instruments)."""
  role = examples_lib.role_of(channel_name)
  if role not in rendered.ROLE_LEVELS_DB:
    raise ValueError(f'Channel {channel_name!r} names no rendered_live role '
                     f'({sorted(rendered.ROLE_LEVELS_DB)}): this tool needs rendered_live data.')
  return role


def static_gains_db(audio, roles=None) -> np.ndarray:
  """One gain (dB) per channel of audio [channels, samples]: equal active level, plus each
  role's designed level when `roles` is given."""
  level = np.array([rendered.active_level_db(x) for x in audio])
  offset = np.array([rendered.ROLE_LEVELS_DB[r] for r in roles]) if roles else 0.0
  return offset - level


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--config', default='configs/pretrained_alm_mr.py')
  parser.add_argument('--split', default='test')
  parser.add_argument('--segment_seconds', type=float, default=20.0)
  args = parser.parse_args(argv)
  config = examples_lib.eval_data_config(runpy.run_path(args.config)['get_config'](), args.split,
                                         segment_seconds=args.segment_seconds)
  examples = examples_lib.load_examples(config, args.split)
  errors = {'equal level': [], 'role + level': []}
  for ex in examples:
    if ex.target_gains is None:
      raise ValueError(f'{ex.where}: no known ideal gains; this tool needs rendered_live data.')
    roles = [role_of(n) for n in ex.channel_names]
    for name, gains_db in (('equal level', static_gains_db(ex.audio)),
                           ('role + level', static_gains_db(ex.audio, roles))):
      errors[name].append(float(metrics.balance_error_db(10.0 ** (gains_db / 20.0),
                                                         ex.target_gains)))
  labels, bin_of = report.severity_bins([e.bleed_severity_db for e in examples],
                                        config.data.bleed.severity_db, run.DEFAULT_SEVERITY_BINS)
  print(f'{args.split} split, {len(examples)} segments of {args.segment_seconds:g} s, '
        f'balance error (dB), mean ± std, then per bleed severity:')
  for name, values in errors.items():
    values = np.asarray(values)
    bins = '  '.join(f'{label} (n={np.sum(bin_of == i)}): {np.mean(values[bin_of == i]):.2f}'
                     for i, label in enumerate(labels) if np.any(bin_of == i))
    print(f'  {name:13s} {np.mean(values):.2f} ± {np.std(values):.2f}   {bins}')


if __name__ == '__main__':
  main()
