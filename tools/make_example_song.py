r"""Writes examples/live_song/: one song of the rendered_live test split as a live recording.

    python tools/make_example_song.py [--song=N] [--seconds=10] [--output=examples]

The song is rendered with the test split's own soundfont and drum kit (MuseScore
General Lite, AVL Red Zeppelin: timbres the pretrained mixer never heard) and
passed through the evaluation pipeline exactly as `alm_jax.evaluate` sees it:
room bleed between the channels and random input levels (bad gain staging).
Writes one 16-bit FLAC per channel under OUTPUT/live_song/ (what
`python -m alm_jax.mix --input=examples/live_song/` mixes), the designed target
mix as OUTPUT/live_song_target.flac, and OUTPUT/live_song.json (instruments,
ideal gains, bleed severity). All channels and the target share one scale, so
the balance problem is kept and nothing clips. Needs the rendered_live dataset
(built on first use: docs/data.md).
"""

import argparse
import json
import pathlib
import re
import runpy

import numpy as np
import soundfile as sf

from alm_jax import metrics
from alm_jax.data import pipeline

REPO = pathlib.Path(__file__).resolve().parent.parent


def main():
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument('--song', type=int, default=0, help='index of the example in the test split')
  parser.add_argument('--seconds', type=float, default=10.0)
  parser.add_argument('--output', default=str(REPO / 'examples'))
  args = parser.parse_args()

  config = runpy.run_path(str(REPO / 'configs' / 'pretrained_alm_mr.py'))['get_config']()
  config.data.eval_segment_seconds = args.seconds
  config.train.batch_size = 1
  batches = pipeline.make_eval_batches(config, 'test')
  if not 0 <= args.song < len(batches):
    raise SystemExit(f'error: --song must be in [0, {len(batches)}).')
  b = batches[args.song]
  mask = b['channel_mask'][0]
  audio, target = b['audio'][0][mask], b['target'][0]
  names = [n for n, m in zip(b['instruments'][0], mask) if m]
  ideal = metrics.ideal_input_gains(b['target_gains'], b['input_gain_db'])[0][mask]
  scale = 0.9 / max(np.abs(audio).max(), np.abs(target).max())

  out = pathlib.Path(args.output)
  song_dir = out / 'live_song'
  song_dir.mkdir(parents=True, exist_ok=True)
  for old in song_dir.glob('*.flac'):
    old.unlink()
  files = []
  for i, (name, x) in enumerate(zip(names, audio)):
    # 'lead:Violin' -> '01_lead_violin.flac': portable file names.
    files.append(f'{i + 1:02d}_' + re.sub(r'[^a-z0-9]+', '_', name.lower()).strip('_') + '.flac')
    sf.write(song_dir / files[-1], scale * x, 44100, subtype='PCM_16')
  sf.write(out / 'live_song_target.flac', scale * target, 44100, subtype='PCM_16')
  info = {
      'source': f'rendered_live/default test split, example {args.song} '
                f'({b["song_id"][0]}), {args.seconds:g} s from {float(b["segment_start"][0]):.2f} s',
      'made_by': 'python tools/make_example_song.py ' + ' '.join(
          f'--{k}={v}' for k, v in (('song', args.song), ('seconds', args.seconds))),
      'channels': files,
      'ideal_gains_db': [round(float(20 * np.log10(g)), 2) for g in ideal],
      'bleed_severity_db': round(float(b['bleed_severity'][0]), 2),
      'input_gain_db': [round(float(g), 2) for g in b['input_gain_db'][0][mask]],
  }
  (out / 'live_song.json').write_text(json.dumps(info, indent=2) + '\n')
  print(json.dumps(info, indent=2))


if __name__ == '__main__':
  main()
