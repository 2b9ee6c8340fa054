r"""The README example's gain error: how far each mixer's gains are from the example's ideal gains.

    python tools/example_gain_error.py [--checkpoints=ALM-MR=pretrained:alm_mr,...] \
        [--song=examples/live_song] [--ideal=examples/live_song.json]

For each mixer (a checkpoint, as `alm_jax.mix --checkpoint` takes it, or RAW, the plain sum),
mixes the example's channels offline and takes each channel's median applied gain in dB; the
gain error is the spread (population standard deviation over channels) of that median minus the
ideal gain (`ideal_gains_db` of the JSON file), so a common level offset is not an error. Also
prints the signed per-channel differences (median gain minus ideal, minus their mean: positive
is too loud) and the balance error (`metrics.balance_error_db`, their mean absolute value).
"""

import argparse
import json
import pathlib

import numpy as np

from alm_jax import metrics
from alm_jax import models
from alm_jax import restore
from alm_jax import songio
from alm_jax.inference import offline

DEFAULT = ('RAW,PRESET=configs/loudness_preset.py,ROLE-PRESET=configs/role_preset.py,'
           'ALM-MR=pretrained:alm_mr')


def gain_error(median_db, ideal_db):
  """(spread, signed centred differences [c], balance error) of median gains against ideal (dB)."""
  diff = np.asarray(median_db, np.float64) - np.asarray(ideal_db, np.float64)
  centred = diff - diff.mean()
  balance = float(metrics.balance_error_db(10 ** (np.asarray(median_db) / 20),
                                           10 ** (np.asarray(ideal_db) / 20)))
  return float(np.std(diff)), centred, balance


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--checkpoints', default=DEFAULT)
  parser.add_argument('--song', default='examples/live_song')
  parser.add_argument('--ideal', default='examples/live_song.json')
  args = parser.parse_args(argv)
  info = json.loads(pathlib.Path(args.ideal).read_text())
  ideal = np.asarray(info['ideal_gains_db'], np.float64)
  song = songio.discover_songs([args.song])[0]
  names = [pathlib.Path(p).stem for p in info['channels']]
  print(f'{args.song}: {len(names)} channels {names}; ideal gains (dB) {ideal.tolist()}')
  for entry in args.checkpoints.split(','):
    name, _, path = entry.partition('=')
    if name == 'RAW':
      median = np.zeros(len(ideal))
    else:
      config, params, _ = restore.restore_params(path)
      audio = songio.load_song(song, int(config.model.sample_rate))
      if audio.shape[0] != len(ideal):
        raise ValueError(f'{args.song} has {audio.shape[0]} channels, {args.ideal} '
                         f'{len(ideal)} ideal gains: give the matching JSON file with --ideal.')
      out = offline.mix_arrays(models.load(config, params), audio[None], np.ones((1, audio.shape[0]), bool))
      median = np.median(metrics.gains_to_db(out['gains'][0], -120.0), axis=-1)
    spread, centred, balance = gain_error(median, ideal)
    detail = ', '.join(f'{n} {d:+.1f}' for n, d in zip(names, centred))
    print(f'{name:12s} gain error {spread:.2f} dB (balance error {balance:.2f} dB); '
          f'median gain - ideal, centred: {detail}', flush=True)


if __name__ == '__main__':
  main()
