r"""How often a running measure names a corpus work's melody (its top voice) and bass voice (its bottom).

    python tools/ends_accuracy.py [--split=validation] [--segment_seconds=20]

On `alm_jax.evaluate`'s segments of rendered_live (bleed and input levels as the evaluation draws
them), for every segment with a melody and a bass voice, per F2 frame from 2 s on: is the melody's
running value the highest of the segment's channels, and the bass voice's the lowest? For the
register (`register.frame_stats`, the power-weighted mean octave, which the relation and the
layout read) and the pitch (`register.frame_pitch`, which the ends term reads), each kept as
the model keeps it (`register.running`). Prints the mean over segments. Figures:
docs/model.md ("The ends term").
"""

import argparse
import os
import runpy
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import balance_floor  # pylint: disable=wrong-import-position

from alm_jax import frames  # pylint: disable=wrong-import-position
from alm_jax.evaluation import examples as examples_lib  # pylint: disable=wrong-import-position
from alm_jax.models import register  # pylint: disable=wrong-import-position


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--config', default='configs/alm_mr_ends.py', help='the model config')
  parser.add_argument('--data_config', default='configs/pretrained_alm_mr.py')
  parser.add_argument('--split', default='validation')
  parser.add_argument('--segment_seconds', type=float, default=20.0)
  args = parser.parse_args(argv)
  model = runpy.run_path(args.config)['get_config']().model
  spec = frames.FrameSpec.from_config(model)
  rule = register.rule(model, spec)
  config = examples_lib.eval_data_config(runpy.run_path(args.data_config)['get_config'](),
                                         args.split, segment_seconds=args.segment_seconds)
  measures = {'register': jax.jit(lambda f: register.frame_stats(f, rule)),
              'pitch': jax.jit(lambda f: register.frame_pitch(f, rule))}
  hits = {(m, end): [] for m in measures for end in ('top', 'bottom')}
  start = int(2.0 * spec.sample_rate / spec.f2)
  for ex in examples_lib.load_examples(config, args.split):
    roles = [balance_floor.role_of(n) for n in ex.channel_names]
    if 'melody' not in roles or 'bass_voice' not in roles:
      continue
    f2 = frames.f2_frames(jnp.asarray(ex.audio)[None], spec)  # [1, c, t, f2]
    for name, measure in measures.items():
      weight, value = measure(f2)
      _, kept = register.running(jnp.zeros(f2.shape[:2] + (register.STATE_SIZE,)), weight, value,
                                 rule)
      kept = np.asarray(kept[0])[:, start:]  # [c, t]
      hits[name, 'top'].append(np.mean(kept.argmax(0) == roles.index('melody')))
      hits[name, 'bottom'].append(np.mean(kept.argmin(0) == roles.index('bass_voice')))
  n = len(hits['pitch', 'top'])
  if not n:
    raise SystemExit(f'No segment of {args.split} has a melody and a bass voice: is --data_config '
                     'a rendered_live config?')
  for name in measures:
    print(f'{name:8s}: melody the top {np.mean(hits[name, "top"]):.0%}, bass voice the bottom '
          f'{np.mean(hits[name, "bottom"]):.0%} of the frames after 2 s ({n} segments, {args.split})')


if __name__ == '__main__':
  main()
