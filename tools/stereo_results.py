r"""Stereo figures of mixers on rendered_live: the evaluation's Stereo section, streaming, exports.

    python tools/stereo_results.py --system="ALM-MR stereo=pretrained:alm_mr_stereo" \
        --system="ALM-MR=pretrained:alm_mr" --system="equal-loudness preset=configs/loudness_preset.py" \
        --system="Dugan=configs/dugan.py" [--split=test] [--plots=DIR] [--check_streaming=N] \
        [--check_exports=DIR]

A thin caller of `alm_jax.evaluate`'s library, for the stereo figures alone (no audio written):
the evaluation's examples (`evaluation.examples`), each system restored and mixed as there
(`evaluation.systems`: a stereo mixer, found by its capabilities, with its pans, every other
system at the centre), measured by `evaluation.run.measure` (`metrics.mix_metrics` and
`metrics.stereo_metrics`) and printed as summary.md's "Stereo" section
(`evaluation.report.stereo_lines`: pan error, mid and side MR-STFT, balance error, paired
figures). `--plots` writes the stereo-image plot of each segment and stereo system
(`evaluation.run.plot_stereo_image`). Beyond the evaluation: `--check_streaming` streams the
first segments through `StreamingMixer` in blocks of random sizes and reports the largest
difference from the offline stereo mix; `--check_exports` exports each stereo system as a
SavedModel and an ONNX graph and reports their largest difference from JAX on the first
segment. `python -m alm_jax.evaluate` writes the same Stereo section into summary.md and
--results_doc (docs/evaluation.md); the figures are quoted in docs/results_stereo.md.
"""

import argparse
import os
import pathlib
import runpy
import tempfile

import numpy as np

from alm_jax.evaluation import examples as examples_lib
from alm_jax.evaluation import report
from alm_jax.evaluation import run as run_lib
from alm_jax.evaluation import systems as systems_lib
from alm_jax.inference import offline
from alm_jax.inference import streaming


def measure_all(systems, examples, config, plots: str = '') -> list[dict]:
  """Every system's metric rows over `examples` of `config` (`examples.eval_data_config`):
  `run.measure`'s, with 'system' and '_example'; with `plots` a folder, also each stereo
  system's stereo-image plot per segment there."""
  rows = []
  chunk = run_lib.chunk_seconds_of(config)  # as the evaluation mixes
  for system in systems:
    for i, ex in enumerate(examples):
      out = system.mix_stereo(ex.audio, np.ones(ex.audio.shape[0], bool),
                              target_gains=ex.target_gains, chunk_seconds=chunk, where=ex.where)
      row = {'system': system.name, '_example': i}
      row.update(run_lib.measure(system, ex, out['mix'], out['gains'], config.loss,
                                 pans=out['pans'], stereo_mix=out['stereo']))
      rows.append(row)
      if plots and system.stereo:
        os.makedirs(plots, exist_ok=True)
        run_lib.plot_stereo_image(
            out['pans'], ex, system.frame_seconds,
            os.path.join(plots, f'{ex.key}_{systems_lib.slugify(system.name)}.png'),
            f'{system.name}: {ex.where}')
  return rows


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
  examples = examples_lib.load_examples(config, args.split)
  systems = [systems_lib.load_system(*s.split('=', 1)) for s in args.system]
  rows = measure_all(systems, examples, config, args.plots)
  print(f'\n{config.data.name} {args.split}: {len(examples)} segments of '
        f'{args.segment_seconds:g} s\n')
  print('\n'.join(report.stereo_lines(rows, systems, plots_note=False)), flush=True)
  if args.plots:
    print(f'Stereo-image plots (each channel\'s pan over time, its designed pan dashed): '
          f'{args.plots}/<segment>_<system>.png', flush=True)
  for system in systems:  # the slow checks last: the table is out first
    if system.stereo and args.check_streaming:
      rng = np.random.default_rng(0)
      worst = max(stream_difference(system.loaded, ex.audio, rng)
                  for ex in examples[:args.check_streaming])
      print(f'{system.name}: streaming - offline, largest |difference| over '
            f'{args.check_streaming} segments: {worst:.3g}', flush=True)
    if system.stereo and args.check_exports:
      os.makedirs(args.check_exports, exist_ok=True)
      diffs = export_differences(system.loaded, examples[0].audio,
                                 tempfile.mkdtemp(dir=args.check_exports))
      print(f'{system.name}: exports - JAX on {examples[0].where}: ' +
            ', '.join(f'{k} {v:.3g}' for k, v in sorted(diffs.items())), flush=True)


if __name__ == '__main__':
  main()
