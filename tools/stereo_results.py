r"""Stereo figures of mixers on rendered_live: placement, mid/side MR-STFT, balance, streaming, exports.

    python tools/stereo_results.py --system="ALM-MR stereo=pretrained:alm_mr_stereo" \
        --system="ALM-MR=pretrained:alm_mr" --system="equal-loudness preset=configs/loudness_preset.py" \
        --system="Dugan=configs/dugan.py" [--split=test] [--plots=DIR] [--check_streaming] \
        [--check_exports=DIR]

On the evaluation's own examples (`evaluation.examples`: the split's segments with bleed and
input levels drawn as `alm_jax.evaluate` draws them), each system is mixed offline
(`offline.mix_arrays`; a mono mixer is placed at the centre, as `protocol.step_stereo` places
it) and scored with the one metric suite: `metrics.mix_metrics` (the mono mix against the
mono target: MR-STFT, balance error) and `metrics.stereo_metrics` (the stereo mix's mid and
side MR-STFT against the stereo target's, the pan error against the designed placement,
docs/data.md "Stereo placement"). Prints a markdown table (mean over the segments) and, for
each system, the side MR-STFT paired against every other (mean difference ± 95 % interval).
`--plots` writes a stereo-image plot per segment and stereo system (each channel's pan over
time, its designed pan dashed). `--check_streaming` streams the first segments through
`StreamingMixer` in blocks of random sizes and reports the largest difference from the offline
stereo mix; `--check_exports` exports each stereo system as a SavedModel and an ONNX graph and
reports their largest difference from JAX on the first segment. The figures are quoted in
docs/results.md ("Stereo") and docs/pretrained.md.
"""

import argparse
import os
import pathlib
import runpy
import tempfile

import numpy as np

from alm_jax import metrics
from alm_jax import restore
from alm_jax import stereo
from alm_jax.data import common
from alm_jax.data import pipeline
from alm_jax.evaluation import examples as examples_lib
from alm_jax.evaluation import plots
from alm_jax.inference import offline
from alm_jax.inference import streaming

COLUMNS = (('mr_stft', 'MR-STFT (mono)'), ('mr_stft_mid', 'MR-STFT mid'),
           ('mr_stft_side', 'MR-STFT side'), ('pan_error', 'pan error'),
           ('balance_error_db', 'balance error (dB)'))


def stereo_examples(config, split: str):
  """[(song_id, audio [c, n], target [n], target_stereo [2, n], ideal_pans [c], ideal_gains [c])]."""
  examples = []
  for batch in pipeline.make_eval_batches(config, split):
    for e in np.flatnonzero(batch['example_mask']):
      c = int(np.sum(batch['channel_mask'][e]))
      ideal = metrics.ideal_input_gains(batch['target_gains'][e, :c], batch['input_gain_db'][e, :c])
      examples.append((batch['song_id'][e], batch['audio'][e, :c], batch['target'][e],
                       batch['target_stereo'][e], batch['ideal_pans'][e, :c], ideal,
                       batch['instruments'][e][:c]))
  return examples


def mix_stereo(loaded, audio):
  """{'mix' [n], 'gains' [c, t], 'pans' [c, t], 'stereo' [2, n]} of one segment (mono: centred)."""
  out = offline.mix_arrays(loaded, audio[None], np.ones((1, audio.shape[0]), bool))
  out = {k: v[0] for k, v in out.items()}
  if 'stereo' not in out:
    out['pans'] = np.zeros_like(out['gains'])
    out['stereo'] = stereo.centred(out['mix'])
  return out


def score(out, target, target_stereo, ideal_pans, ideal_gains, loss_config, frame_seconds):
  """Every figure of one mixed segment (`COLUMNS`), as floats."""
  found = metrics.mix_metrics(out['mix'], target, out['gains'], rate=common.SAMPLE_RATE,
                              frame_seconds=frame_seconds, ideal_gains=ideal_gains,
                              loss_config=loss_config)
  found.update(metrics.stereo_metrics(out['stereo'], target_stereo, out['pans'], ideal_pans,
                                      loss_config=loss_config))
  return {k: float(found[k]) for k, _ in COLUMNS}


def paired(a, b):
  """Mean of a - b over the segments where both are finite, and its 95 % interval half-width."""
  d = np.asarray(a) - np.asarray(b)
  d = d[np.isfinite(d)]
  if d.size < 2:
    return float('nan'), float('nan')
  return float(np.mean(d)), float(1.96 * np.std(d, ddof=1) / np.sqrt(d.size))


def table(rows: dict) -> str:
  """Markdown: one line per system, the mean of each column over its finite values."""
  lines = ['| system | ' + ' | '.join(h for _, h in COLUMNS) + ' |',
           '|---|' + '---|' * len(COLUMNS)]
  for name, values in rows.items():
    cells = []
    for key, _ in COLUMNS:
      v = np.array([r[key] for r in values])
      v = v[np.isfinite(v)]
      cells.append(f'{np.mean(v):.3f}' if v.size else 'n/a')
    lines.append(f'| {name} | ' + ' | '.join(cells) + ' |')
  return '\n'.join(lines)


def stream_difference(loaded, audio, rng) -> float:
  """Largest |streamed - offline| sample of the stereo (or mono) mix, blocks of random sizes."""
  ref = offline.mix_arrays(loaded, audio[None], np.ones((1, audio.shape[0]), bool))
  ref = ref.get('stereo', ref['mix'])[0]
  mixer = streaming.StreamingMixer(loaded, batch=1, channels=audio.shape[0])
  # A few block sizes in random order (each size compiles once), none a whole F2 frame.
  cuts = np.cumsum(rng.choice([128, 441, 1000, 3001], audio.shape[-1] // 400))
  blocks = [mixer.process(b) for b in np.split(audio, cuts[cuts < audio.shape[-1]], axis=-1)]
  return float(np.max(np.abs(np.concatenate(blocks, axis=-1) - ref)))


def export_differences(loaded, audio, folder) -> dict:
  """Largest |export - JAX| of every offline output, SavedModel and ONNX, on one segment."""
  import onnxruntime as ort  # pylint: disable=g-import-not-at-top  (optional, heavy)
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  from alm_jax import export  # pylint: disable=g-import-not-at-top
  folder = pathlib.Path(folder)
  mask = np.ones((1, audio.shape[0]), bool)
  ref = offline.mix_arrays(loaded, audio[None], mask)
  export.export_offline(loaded, folder / 'savedmodel', overwrite=True)
  serve = tf.saved_model.load(str(folder / 'savedmodel')).signatures['serving_default']
  out = serve(audio=tf.constant(audio[None]), channel_mask=tf.constant(mask))
  diffs = {f'savedmodel {k}': float(np.max(np.abs(out[k].numpy() - ref[k]))) for k in ref}
  export.export_onnx(loaded, folder / 'onnx', stream=False, channels=audio.shape[0],
                     samples=audio.shape[-1], overwrite=True)
  session = ort.InferenceSession(str(folder / 'onnx' / 'offline.onnx'),
                                 providers=['CPUExecutionProvider'])
  names = [o.name for o in session.get_outputs()]
  values = session.run(names, {'audio': audio[None], 'channel_mask': mask})
  diffs.update({f'onnx {k}': float(np.max(np.abs(v - ref[k]))) for k, v in zip(names, values)})
  return diffs


def plot_placement(out, ideal_pans, names, frame_seconds, path, title):
  """A stereo-image plot: each channel's pan over time (the designed pans in the legend)."""
  labels = [f'{n} (designed {p:+.2f})' for n, p in zip(names, ideal_pans)]
  plots.plot_gains(out['pans'], frame_seconds, labels, path, scale='pan', title=title)


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--system', action='append', required=True,
                      help='NAME=CHECKPOINT (a workdir, pretrained:NAME or a console config file).')
  parser.add_argument('--config', default='configs/pretrained_alm_mr_stereo.py',
                      help='The data and loss settings of the examples.')
  parser.add_argument('--split', default='test')
  parser.add_argument('--segment_seconds', type=float, default=20.0)
  parser.add_argument('--plots', default='', help='Folder for the stereo-image plots.')
  parser.add_argument('--check_streaming', type=int, default=0,
                      help='Stream this many segments per stereo system (0: none).')
  parser.add_argument('--check_exports', default='', help='Folder for the parity exports.')
  args = parser.parse_args(argv)
  base = runpy.run_path(args.config)['get_config']()
  config = examples_lib.eval_data_config(base, args.split, segment_seconds=args.segment_seconds)
  examples = stereo_examples(config, args.split)
  systems = [s.split('=', 1) for s in args.system]
  rows = {}
  for name, path in systems:
    loaded = restore.load_mixer(path)
    caps = loaded.capabilities
    frame_seconds = caps.f2 / caps.sample_rate
    rows[name] = []
    for i, (song_id, audio, target, target_st, pans, ideal, names) in enumerate(examples):
      out = mix_stereo(loaded, audio)
      rows[name].append(score(out, target, target_st, pans, ideal, config.loss, frame_seconds))
      if args.plots and caps.stereo:
        os.makedirs(args.plots, exist_ok=True)
        plot_placement(out, pans, names, frame_seconds,
                       os.path.join(args.plots, f'{song_id}_{i:03d}_{name}.png'.replace(' ', '_')),
                       f'{name}: {song_id} stereo placement')
  print(f'\n{config.data.name} {args.split}: {len(examples)} segments of '
        f'{args.segment_seconds:g} s\n')
  print(table(rows), flush=True)
  print('\nSide MR-STFT, paired (row - column, mean ± 95 % interval):')
  for a in rows:
    for b in rows:
      if a != b:
        m, h = paired([r['mr_stft_side'] for r in rows[a]], [r['mr_stft_side'] for r in rows[b]])
        print(f'  {a} - {b}: {m:+.3f} ± {h:.3f}')
  print('Balance error (dB), paired:')
  for a in rows:
    for b in rows:
      if a != b:
        m, h = paired([r['balance_error_db'] for r in rows[a]],
                      [r['balance_error_db'] for r in rows[b]])
        print(f'  {a} - {b}: {m:+.3f} ± {h:.3f}')
  for name, path in systems:  # the slow checks last: the table is out first
    loaded = restore.load_mixer(path)
    if loaded.capabilities.stereo and args.check_streaming:
      rng = np.random.default_rng(0)
      worst = max(stream_difference(loaded, ex[1], rng) for ex in examples[:args.check_streaming])
      print(f'{name}: streaming - offline, largest |difference| over {args.check_streaming} '
            f'segments: {worst:.3g}', flush=True)
    if loaded.capabilities.stereo and args.check_exports:
      os.makedirs(args.check_exports, exist_ok=True)
      diffs = export_differences(loaded, examples[0][1],
                                 tempfile.mkdtemp(dir=args.check_exports))
      print(f'{name}: exports - JAX on {examples[0][0]}: ' +
            ', '.join(f'{k} {v:.3g}' for k, v in sorted(diffs.items())), flush=True)


if __name__ == '__main__':
  main()
