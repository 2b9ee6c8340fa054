"""Converts a musicnn release checkpoint (PyPI `musicnn` 0.1.0) into the .npz that alm_jax ships.

Run once, by a maintainer, with the wheel's files unpacked (no need to install
the package, whose numpy<1.17 pin clashes with ours):

    pip download musicnn==0.1.0 --no-deps -d /tmp/musicnn
    unzip /tmp/musicnn/musicnn-0.1.0-py3-none-any.whl -d /tmp/musicnn/whl
    python tools/convert_musicnn.py /tmp/musicnn/whl/musicnn/MTT_musicnn \
        alm_jax/embeddings/weights/musicnn_mtt.npz

The .npz keeps the checkpoint's own variable names (`conv2d/kernel`,
`batch_normalization_3/moving_mean`, ...) and values, minus the optimiser's
slots (`*/Adam*`, `beta*_power`), plus `tags` (the 50 MagnaTagATune labels
in output order, as musicnn's configuration.py lists them), `network` and `source`.
`alm_jax.embeddings.musicnn_weights` checks every name and shape on load.
"""

import argparse
import json
import os
import sys

import numpy as np

from alm_jax.embeddings import musicnn_network
from alm_jax.embeddings import musicnn_weights


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('checkpoint_dir', help='unpacked wheel: .../musicnn/MTT_musicnn')
  parser.add_argument('output', help='.npz to write')
  parser.add_argument('--source', default='musicnn 0.1.0 (PyPI wheel), MTT_musicnn')
  args = parser.parse_args(argv)
  variables = musicnn_weights.read_checkpoint(args.checkpoint_dir)
  name = os.path.basename(os.path.normpath(args.checkpoint_dir))
  if not name.startswith('MTT_'):
    raise SystemExit(f'{args.checkpoint_dir}: only the MagnaTagATune (MTT_*) networks are supported '
                     '(the tags list shipped is MTT\'s).')
  config_path = os.path.join(args.checkpoint_dir, 'config.json')
  if os.path.exists(config_path):
    with open(config_path) as f:
      n_classes = json.load(f)['num_classes_dataset']
    if n_classes != len(musicnn_network.MTT_TAGS):
      raise SystemExit(f'{config_path}: {n_classes} classes, expected {len(musicnn_network.MTT_TAGS)}.')
  np.savez_compressed(args.output, **variables, tags=np.array(musicnn_network.MTT_TAGS), network=np.array(name),
                      source=np.array(args.source))
  musicnn_weights.load_musicnn_params(args.output)  # names and shapes as the Flax module needs
  size = os.path.getsize(args.output)
  count = sum(v.size for v in variables.values())
  print(f'{args.output}: {len(variables)} arrays, {count} values, {size / 1e6:.2f} MB')


if __name__ == '__main__':
  sys.exit(main())
