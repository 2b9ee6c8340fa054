"""Embedding cost per F1 frame per channel (musicnn, VGGish, small), and musicnn's F1 tag agreement.

    python bench/embeddings.py                 # cost on 2 CPU threads (--threads 1: streaming view)
    python bench/embeddings.py --agreement     # tags of shorter patches vs 3 s (needs fluidsynth)

Cost: for each embedding with random weights (the cost does not depend on
them), the network alone on a [channels, rows, bands] batch of patches, and
front end + network from each channel's F1 frame input (44.1 kHz): GFLOP per
frame from XLA's cost analysis, and the wall time of front end + network per
frame per channel (median over repeats of an 8-channel batch) and the p99 of
the whole batch: one MR hop's embedding work at 8 channels; and "in the mixer": a
new F1 frame as the mixer computes it (the resampling of one F1 hop of new input,
then the patch's log-mel rows and the network; `in_mixer`). Agreement: General MIDI parts written here
rendered with fluidsynth and a Debian soundfont; for each patch length the
tags of patches ending at the same instants as 3 s patches are compared with
those (top-1 equal, top-5 overlap, mean |Δp|, embedding cosine), and, with
librosa installed, the JAX causal front end with musicnn's own librosa
pipeline (resample, centred frames, float16) on clip-average tags.
"""

import argparse
import os
import struct
import subprocess
import sys
import tempfile
import time

ARGS = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
ARGS.add_argument('--threads', type=int, default=2, help='XLA CPU threads (default 2)')
ARGS.add_argument('--channels', type=int, default=8)
ARGS.add_argument('--repeats', type=int, default=30)
ARGS.add_argument('--agreement', action='store_true', help='musicnn F1 tag agreement instead of cost')
ARGS.add_argument('--lengths', default='1,1.5,2,3', help='--agreement patch lengths in seconds')
ARGS.add_argument('--clips', help='--agreement: comma-separated clip names (default all)')
ARGS.add_argument('--soundfont', default='/usr/share/sounds/sf2/TimGM6mb.sf2')
ARGS.add_argument('--json', help='also write the results here')

if __name__ == '__main__':
  _ARGS = ARGS.parse_args()
  os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '') +
                             f' --xla_cpu_multi_thread_eigen={str(_ARGS.threads > 1).lower()}'
                             f' intra_op_parallelism_threads={_ARGS.threads}')

import common  # pylint: disable=wrong-import-position
import jax  # pylint: disable=wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position
import numpy as np  # pylint: disable=wrong-import-position

from alm_jax import embeddings  # pylint: disable=wrong-import-position
from alm_jax import frames as framing  # pylint: disable=wrong-import-position
from alm_jax.embeddings import musicnn_frontend  # pylint: disable=wrong-import-position
from alm_jax.embeddings import musicnn_network  # pylint: disable=wrong-import-position
from alm_jax.embeddings import musicnn_weights  # pylint: disable=wrong-import-position
from alm_jax.embeddings import small  # pylint: disable=wrong-import-position
from alm_jax.embeddings import student  # pylint: disable=wrong-import-position
from alm_jax.embeddings import vggish_frontend as frontend  # pylint: disable=wrong-import-position
from alm_jax.embeddings import vggish_network  # pylint: disable=wrong-import-position

RATE = 44100


def musicnn_spec(seconds: float):
  return musicnn_frontend.MusicnnSpec.for_f1(framing.ms_to_samples(1000 * seconds, RATE))


# F1 hops of the mixers these embeddings serve: a new 3 s (or 1-2 s) musicnn/student frame every
# second (configs/alm_mr_staged.py: 20 F2 frames), a VGGish/small frame every 300 ms (configs/mr.py).
MUSICNN_HOP_S = 1.0
VGGISH_HOP_S = 0.3


def candidates():
  """(label, module, front end spec, front end (x [n, samples]) -> patches, F1 hop in seconds)."""
  out = []
  for seconds in (1.0, 2.0, 3.0):
    spec = musicnn_spec(seconds)
    out.append((f'musicnn F1 {seconds:g} s ({spec.patch_frames} rows)', musicnn_network.Musicnn(),
                spec, lambda x, s=spec: musicnn_frontend.log_mel_frames(x, 1, s.frame_input_samples, s)[:, 0],
                MUSICNN_HOP_S))
  for seconds in (1.0, 3.0):  # distilled from musicnn, on musicnn's front end
    spec = musicnn_spec(seconds)
    out.append((f'student F1 {seconds:g} s ({spec.patch_frames} rows)', student.Student(),
                spec, lambda x, s=spec: musicnn_frontend.log_mel_frames(x, 1, s.frame_input_samples, s)[:, 0],
                MUSICNN_HOP_S))
  vspec = frontend.FrontendSpec()
  for label, module in (('VGGish (0.975 s)', vggish_network.VGGish()),
                        ('small (0.975 s)', small.SmallEmbedding())):
    out.append((label, module, vspec,
                lambda x, s=vspec: frontend.log_mel_frames(x, 1, s.frame_input_samples, s)[:, 0],
                VGGISH_HOP_S))
  return out


def in_mixer(module, spec, hop_s):
  """Front end + network per F1 frame as the mixer runs them: (fn(params, new, x16), new shape, x16 shape).

  Offline the mixer resamples each signal once and a lagged stream keeps a ring of resampled
  samples (alm_jax.models.stepping, `resampled`), so a new F1 frame costs the resampling of one
  F1 hop of new input (`new`, with the block before it) and the log-mel rows and network of its
  patch (`x16`, the resampled samples the patch reads).
  """
  up, down = spec.ratio
  hop = int(round(hop_s * RATE)) // down * down
  if isinstance(spec, musicnn_frontend.MusicnnSpec):
    rows_fn = lambda x16, s=spec: musicnn_frontend.log_mel_rows(x16, s.patch_frames, s)
  else:
    rows_fn = lambda x16, s=spec: frontend.log_mel_rows(x16, s.patch_frames, s)

  resampler = getattr(spec, 'resampler', spec)

  def fn(params, new, x16):
    return frontend.resample(new, resampler), module.apply({'params': params}, rows_fn(x16))

  return fn, (hop + down,), (spec.patch_samples,)


def timed(fn, args, repeats):
  jax.block_until_ready(fn(*args))
  times = []
  for _ in range(repeats):
    t = time.perf_counter()
    jax.block_until_ready(fn(*args))
    times.append(time.perf_counter() - t)
  return np.asarray(times)


def cost(args):
  rows = []
  n = args.channels
  for label, module, spec, front, hop_s in candidates():
    shape, input_samples = (spec.patch_frames, spec.n_mels), spec.frame_input_samples
    params = module.init(jax.random.key(0), jnp.zeros((1,) + shape))['params']
    net = jax.jit(lambda p, x, m=module: m.apply({'params': p}, x))
    full = jax.jit(lambda p, a, m=module, f=front: m.apply({'params': p}, f(a)))
    patches = jax.random.normal(jax.random.key(1), (n,) + shape)
    audio = 0.1 * jax.random.normal(jax.random.key(2), (n, input_samples))
    result = {'embedding': label, 'dim': int(net(params, patches[:1]).shape[-1]),
              'params_M': sum(x.size for x in jax.tree.leaves(params)) / 1e6}
    for key, fn, x in (('net', net, patches), ('total', full, audio)):
      compiled = fn.lower(params, x).compile()
      result[f'{key}_gflop'] = compiled.cost_analysis()['flops'] / n / 1e9
    mixer_fn, new_shape, x16_shape = in_mixer(module, spec, hop_s)
    mixer_fn = jax.jit(mixer_fn)
    mixer_args = (params, 0.1 * jax.random.normal(jax.random.key(3), (n,) + new_shape),
                  0.1 * jax.random.normal(jax.random.key(4), (n,) + x16_shape))
    result['mixer_gflop'] = mixer_fn.lower(*mixer_args).compile().cost_analysis()['flops'] / n / 1e9
    # Timed: front end + network, the work of one hop (one new F1 frame per channel).
    t = timed(full, (params, audio), args.repeats)
    result['ms'] = 1e3 * float(np.median(t)) / n
    result['p99_batch_ms'] = 1e3 * float(np.percentile(t, 99))
    result['mixer_ms'] = 1e3 * float(np.median(timed(mixer_fn, mixer_args, args.repeats))) / n
    rows.append(result)
    print(f'{label}: {result}', flush=True)
  print(f'\n{args.threads} thread(s), {n}-channel batch; {common.machine()}\n')
  print('| embedding | dim | params M | net GFLOP/frame | front end + net GFLOP/frame | ms/frame/ch '
        f'| p99 ms, {n} ch | in the mixer GFLOP/frame | in the mixer ms/frame/ch |')
  print('|---|---|---|---|---|---|---|---|---|')
  for r in rows:
    print(f"| {r['embedding']} | {r['dim']} | {r['params_M']:.2f} | {r['net_gflop']:.3f} | "
          f"{r['total_gflop']:.3f} | {r['ms']:.1f} | {r['p99_batch_ms']:.0f} | "
          f"{r['mixer_gflop']:.3f} | {r['mixer_ms']:.1f} |")
  by_label = {r['embedding'].split(' (')[0]: r for r in rows}
  print('\nThe student against musicnn at the same F1 frame (times x):')
  for f1 in ('1', '3'):
    a, b = by_label.get(f'musicnn F1 {f1} s'), by_label.get(f'student F1 {f1} s')
    if a and b:
      print(f'- F1 {f1} s: network {a["net_gflop"] / b["net_gflop"]:.1f}, front end + network '
            f'{a["total_gflop"] / b["total_gflop"]:.1f}, in the mixer '
            f'{a["mixer_gflop"] / b["mixer_gflop"]:.1f} (GFLOP); in the mixer '
            f'{a["mixer_ms"] / b["mixer_ms"]:.1f} (ms)')
  return rows


# ---------------------------------------------------------------------------
# Agreement


def _vlq(n):
  out = [n & 0x7f]
  n >>= 7
  while n:
    out.append(0x80 | (n & 0x7f))
    n >>= 7
  return bytes(reversed(out))


def write_midi(path, tracks, tpq=480, bpm=110):
  """Format-0 MIDI of tracks [(program or None, channel, [(start beat, beats, pitch, velocity)])]."""
  events = []
  for program, channel, notes in tracks:
    if program is not None:
      events.append((0, 0, bytes([0xc0 | channel, program])))
    for start, beats, pitch, velocity in notes:
      events.append((int(start * tpq), 2, bytes([0x90 | channel, pitch, velocity])))
      events.append((int((start + beats) * tpq), 1, bytes([0x80 | channel, pitch, 0])))
  events.sort(key=lambda e: (e[0], e[1]))
  data = _vlq(0) + b'\xff\x51\x03' + int(60e6 / bpm).to_bytes(3, 'big')
  now = 0
  for tick, _, message in events:
    data += _vlq(tick - now) + message
    now = tick
  data += _vlq(tpq) + b'\xff\x2f\x00'
  with open(path, 'wb') as f:
    f.write(b'MThd' + struct.pack('>IHHH', 6, 0, 1, tpq) + b'MTrk' + struct.pack('>I', len(data)) +
            data)


def parts():
  """{name: tracks}: 8 bars of ii-V-I-vi in F written here, one instrument per part, and two mixes."""
  chords = [(55, 58, 62), (60, 64, 67), (53, 57, 60), (50, 53, 57)] * 2
  comp, melody, bass, drums, pads = [], [], [], [], []
  line = (0, 2, 4, 2, 1, 0, -1, 0)
  for bar, chord in enumerate(chords):
    comp += [(bar * 4 + i * 0.5, 0.5, chord[(i * 2) % 3] + 12 * (i // 4), 78) for i in range(8)]
    melody += [(bar * 4 + i, 1, chord[0] + 12 + line[(bar + i) % 8], 88) for i in range(4)]
    bass += [(bar * 4 + b, 1, chord[0] - 24, 95) for b in (0, 1.5, 2, 3)]
    pads += [(bar * 4, 4, p, 80) for p in chord]
    drums += [(bar * 4 + i * 0.5, 0.25, 42, 70) for i in range(8)]
    drums += [(bar * 4 + b, 0.25, 36, 110) for b in (0, 1.75, 2.5)]
    drums += [(bar * 4 + b, 0.25, 38, 100) for b in (1, 3)]
  kit = (None, 9, drums)
  out = {name: [(program, 0, notes)] for name, program, notes in (
      ('piano', 0, comp), ('acoustic guitar', 25, comp), ('distortion guitar', 30, pads),
      ('violin', 40, melody), ('strings', 48, pads), ('flute', 73, melody), ('choir', 52, pads),
      ('synth lead', 81, melody), ('organ', 19, pads), ('bass', 33, bass))}
  out['drums'] = [kit]
  out['band'] = [kit, (33, 1, bass), (0, 2, comp), (30, 3, melody)]
  out['chamber'] = [(40, 0, melody), (42, 1, [(s, d, p - 12, v) for s, d, p, v in pads]),
                    (0, 2, comp)]
  return out


def render(tracks, soundfont, directory, name):
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  mid, wav = os.path.join(directory, f'{name}.mid'), os.path.join(directory, f'{name}.wav')
  write_midi(mid, tracks)
  subprocess.run(['fluidsynth', '-ni', '-q', '-g', '0.5', '-r', str(RATE), '-F', wav, soundfont, mid],
                 check=True, capture_output=True)
  audio, rate = sf.read(wav, dtype='float32', always_2d=True)
  assert rate == RATE
  return audio.mean(axis=1)


def librosa_tags(audio, model, params):
  """Clip-average tag probabilities through musicnn's own pipeline (extractor.batch_data)."""
  import librosa  # pylint: disable=g-import-not-at-top
  y = librosa.resample(audio, orig_sr=RATE, target_sr=16000)
  rep = librosa.feature.melspectrogram(y=y, sr=16000, hop_length=256, n_fft=512, n_mels=96).T
  # Stored as float16 as musicnn's training data; the log in float32 (10000 x overflows float16).
  rep = np.log10(10000 * rep.astype(np.float16).astype(np.float32) + 1)
  patches = np.stack([rep[t:t + 187] for t in range(0, rep.shape[0] - 187 + 1, 187)])
  logits = model.apply({'params': params}, jnp.asarray(patches), method=model.tag_logits)
  return np.asarray(jax.nn.sigmoid(logits)).mean(axis=0)


def agreement(args):
  params = musicnn_weights.load_musicnn_params()
  model = musicnn_network.Musicnn()
  lengths = [float(s) for s in args.lengths.split(',')]
  reference = max(lengths)
  specs = {s: musicnn_spec(s) for s in lengths}
  hop = RATE // 2  # a frame end every 0.5 s
  tags = np.array(musicnn_network.MTT_TAGS)
  stats = {s: [] for s in lengths}
  pipeline = []
  with tempfile.TemporaryDirectory() as tmp:
    clips = {k: v for k, v in parts().items() if not args.clips or k in args.clips.split(',')}
    for name, tracks in clips.items():
      audio = render(tracks, args.soundfont, tmp, name)
      longest = max(sp.frame_input_samples for sp in specs.values())
      # Frames ending every 0.5 s from the first whose longest patch lies inside the clip.
      g = (len(audio) - longest) // hop + 1
      out = {}
      for s, spec in specs.items():
        start = longest - spec.frame_input_samples
        x = audio[start:start + (g - 1) * hop + spec.frame_input_samples]
        patches = musicnn_frontend.log_mel_frames(jnp.asarray(x[None]), g, hop, spec)[0]
        emb, logits = model.apply({'params': params}, patches, method=model.embed_and_tag)
        out[s] = (np.asarray(emb), np.asarray(jax.nn.sigmoid(logits)))
      ref_emb, ref_p = out[reference]
      for s in lengths:
        emb, p = out[s]
        top5 = np.argsort(-p, axis=1)[:, :5]
        ref_top5 = np.argsort(-ref_p, axis=1)[:, :5]
        cos = np.sum(emb * ref_emb, 1) / np.linalg.norm(emb, axis=1) / np.linalg.norm(ref_emb, axis=1)
        stats[s].append((np.mean(top5[:, 0] == ref_top5[:, 0]),
                         np.mean([len(set(a) & set(b)) / 5 for a, b in zip(top5, ref_top5)]),
                         np.mean(np.abs(p - ref_p)), np.mean(cos)))
      clip = out[reference][1].mean(axis=0)
      line = f'{name:18s} {reference:g} s top-5: {", ".join(tags[np.argsort(-clip)[:5]])}'
      try:
        lib = librosa_tags(audio, model, params)
        pipeline.append((len(set(np.argsort(-clip)[:5]) & set(np.argsort(-lib)[:5])) / 5,
                         np.abs(clip - lib).max()))
        line += f' | librosa pipeline top-5: {", ".join(tags[np.argsort(-lib)[:5]])}'
      except ImportError:
        pass
      print(line, flush=True)
  print(f'\nPatches ending at the same instants (every 0.5 s) vs {reference:g} s patches, '
        f'{len(clips)} clips:\n')
  print('| patch s | rows | top-1 same | top-5 overlap | mean abs dp | embedding cosine |')
  print('|---|---|---|---|---|---|')
  rows = []
  for s in lengths:
    m = np.mean(stats[s], axis=0)
    rows.append({'seconds': s, 'rows': specs[s].patch_frames, 'top1': m[0], 'top5': m[1],
                 'mean_abs_dp': m[2], 'cosine': m[3]})
    print(f'| {s:g} | {specs[s].patch_frames} | {m[0]:.2f} | {m[1]:.2f} | {m[2]:.3f} | {m[3]:.3f} |')
  if pipeline:
    m = np.mean(pipeline, axis=0)
    print(f'\nJAX causal front end vs musicnn\'s librosa pipeline, clip-average tags: top-5 overlap '
          f'{m[0]:.2f}, max |dp| {np.max([p[1] for p in pipeline]):.3f}')
  print(f'\n{common.machine()}')
  return rows


def main():
  args = _ARGS
  result = agreement(args) if args.agreement else cost(args)
  if args.json:
    import json  # pylint: disable=g-import-not-at-top
    with open(args.json, 'w') as f:
      json.dump(result, f, indent=1, default=float)


if __name__ == '__main__':
  sys.exit(main())
