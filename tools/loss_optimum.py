r"""The static gains the training loss prefers: where the MR-STFT of the mix with bleed has its minimum.

    python tools/loss_optimum.py [--split=validation] [--segment_seconds=6] [--steps=150]

On `alm_jax.evaluate`'s segments of rendered_live (bleed and input levels as the evaluation draws
them), per segment: one static gain per channel (in dB, from the designed gains) fitted by Adam to
the multi-resolution STFT loss (`losses.mix_loss`, the model config's `config.loss`) of their
mono mix against the target. Prints the loss at the designed gains and at the fit, the fit's
balance error (`metrics.balance_error_db`, as docs/results.md) and its mean signed error per
role (positive: louder, relative to the other channels, than designed), as
`tools/role_errors.py` prints a mixer's. If a mixer's role offsets were the loss's own
preference, the fit would share them. Figures: docs/results_notes.md.
"""

import argparse
import collections
import os
import runpy
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import balance_floor  # pylint: disable=wrong-import-position

from alm_jax import losses  # pylint: disable=wrong-import-position
from alm_jax import metrics  # pylint: disable=wrong-import-position
from alm_jax.evaluation import examples as examples_lib  # pylint: disable=wrong-import-position


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--config', default='configs/alm_mr_register.py', help='whose config.loss')
  parser.add_argument('--data_config', default='configs/pretrained_alm_mr.py')
  parser.add_argument('--split', default='validation')
  parser.add_argument('--segment_seconds', type=float, default=6.0)
  parser.add_argument('--steps', type=int, default=150)
  parser.add_argument('--rate_db', type=float, default=0.1, help="Adam's step, dB")
  args = parser.parse_args(argv)
  loss_config = runpy.run_path(args.config)['get_config']().loss
  config = examples_lib.eval_data_config(runpy.run_path(args.data_config)['get_config'](),
                                         args.split, segment_seconds=args.segment_seconds)
  examples = examples_lib.load_examples(config, args.split)

  def loss(gains_db, audio, target):
    mix = jnp.sum(10.0 ** (gains_db[:, None] / 20.0) * audio, axis=0)
    return losses.mix_loss(mix[None], target[None], loss_config)[0]

  @jax.jit
  def fit(start_db, audio, target):
    opt = optax.adam(args.rate_db)

    def step(carry, _):
      g, state = carry
      grads = jax.grad(loss)(g, audio, target)
      updates, state = opt.update(grads, state, g)
      return (optax.apply_updates(g, updates), state), None

    (g, _), _ = jax.lax.scan(step, (start_db, opt.init(start_db)), None, length=args.steps)
    return g, loss(start_db, audio, target), loss(g, audio, target)

  signed, balance, before, after = collections.defaultdict(list), [], [], []
  for ex in examples:
    if ex.target_gains is None or not np.all(ex.target_gains > 0):
      raise SystemExit(f'{ex.song_id} has no designed gains: --data_config must be a dataset '
                       'with a designed balance (rendered_live).')
    g, l0, l1 = fit(jnp.asarray(20.0 * np.log10(ex.target_gains), jnp.float32),
                    jnp.asarray(ex.audio), jnp.asarray(ex.target))
    gains = 10.0 ** (np.asarray(g, np.float64) / 20.0)
    before.append(float(l0))
    after.append(float(l1))
    balance.append(float(metrics.balance_error_db(gains, ex.target_gains)))
    per_channel = metrics.balance_error_db(gains, ex.target_gains, per_channel=True)
    for name, e in zip(ex.channel_names, np.asarray(per_channel)):
      signed[balance_floor.role_of(name)].append(float(e))
  print(f'{len(examples)} segments of {args.segment_seconds:g} s ({args.split}): MR-STFT at the '
        f'designed gains {np.mean(before):.3f}, at the fit {np.mean(after):.3f}; the fit\'s '
        f'balance error {np.mean(balance):.2f} dB')
  print('mean signed error per role (dB): ' + ', '.join(
      f'{r} {np.mean(v):+.1f} (n={len(v)})' for r, v in sorted(signed.items())))


if __name__ == '__main__':
  main()
