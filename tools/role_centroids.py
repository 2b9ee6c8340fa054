r"""Role centroids for the role-aware preset, and how well an embedding names roles.

    python tools/role_centroids.py cache [--splits=train,validation,test] [--cache=DIR]
    python tools/role_centroids.py centroids [--embedding=musicnn|logmel|<npz of embeddings>] \
        [--output=alm_jax/embeddings/weights/role_centroids_musicnn.npz]

`cache`: on `alm_jax.evaluate`'s examples of each split of rendered_live (one 20 s segment per
song, bleed and input levels drawn as in evaluation; configs/pretrained_alm_mr.py's data), cuts
every channel into non-overlapping F1 frames of configs/role_preset.py (3 s), scales each to the
preset's embedding level (`role_preset.EMBED_LEVEL_DB`, from the channel's active level), and
stores per frame its musicnn log-mel patch (float16), musicnn's embedding (the teacher), whether
the channel plays in it (the preset's `window_gate_db` rule), and per channel its role label.
Resumable: one file per split and part (`--part_songs` songs) under --cache, skipped when present.
Also the distillation cache of tools/distill_student.py.

`centroids`: per channel, the mean embedding of its played frames; per role, the mean of its
train channels' means; centroids are those minus their common mean, normalised (cosine). Prints
the nearest-centroid role accuracy on the validation and test channels (overall, per role, and
'by level': a confusion between roles of the same designed level, lead/melody, costs nothing),
and writes the centroid file alm_jax/models/roles.py's `load_centroids` reads (with --output).
`--embedding` is musicnn (the cached teacher), logmel (each frame's mean log-mel spectrum) or an .npz with an
`embeddings` array per cache file (tools/distill_student.py writes the student's).
"""

import argparse
import glob
import json
import os
import runpy
import time

import jax
import jax.numpy as jnp
import numpy as np

from alm_jax import embeddings
from alm_jax.data import pipeline
from alm_jax.data import rendered
from alm_jax.evaluation import examples as examples_lib
from alm_jax.models import role_preset
from alm_jax.models import roles as role_naming  # its locals name role lists `roles`

DEFAULT_CACHE = '/tmp/team/r33/role_cache'
BATCH = 32  # F1 frames per embedding call (fixed: one compilation)


def role_of(channel_name: str) -> str:
  """'3: bass:Fingered Bs.' -> 'bass' (evaluation example labels of rendered_live)."""
  role = examples_lib.role_of(channel_name)
  if role not in rendered.ROLE_LEVELS_DB:
    raise ValueError(f'Channel {channel_name!r} names no rendered_live role.')
  return role


def channel_frames(x, level_db: float, f1: int, history: int, gate_db: float):
  """Channel audio [n] -> its non-overlapping F1 frames' inputs [g, history] (zero before the
  signal) scaled to the embedding level, and played [g] bool (the preset's rule)."""
  g = len(x) // f1
  padded = np.concatenate([np.zeros(history, np.float32), x.astype(np.float32)])
  windows = np.stack([padded[(k + 1) * f1: (k + 1) * f1 + history] for k in range(g)])
  power = np.mean(np.square(windows.astype(np.float64)), axis=1)
  played = 10 * np.log10(np.maximum(power, 1e-20)) > level_db - gate_db
  scale = 10 ** ((role_preset.EMBED_LEVEL_DB - level_db) / 20)
  return (windows * scale).astype(np.float32), played


def cache(args):
  preset = runpy.run_path(args.config)['get_config']()
  preset.model.role_centroids = 'none'  # the centroids are what this makes
  front = embeddings.frontend_for(preset.model)
  mixer = role_preset.build_mixer(preset.model)
  f1, history = mixer.spec.f1, mixer.history
  net, params = mixer.net, mixer.params

  @jax.jit
  def embed(windows):
    patches = front.log_mel_frames(windows, 1, windows.shape[-1])[:, 0]
    return patches.astype(jnp.float16), net.apply({'params': params}, patches)

  data_config = runpy.run_path(args.data_config)['get_config']()
  os.makedirs(args.cache, exist_ok=True)
  for split in args.splits.split(','):
    cfg = examples_lib.eval_data_config(data_config, split, segment_seconds=args.segment_seconds)
    n_songs = pipeline.prepared_builder(cfg).info.splits[split].num_examples
    for start in range(0, n_songs, args.part_songs):
      stop = min(n_songs, start + args.part_songs)
      path = os.path.join(args.cache, f'{split}_{start:03d}_{stop:03d}.npz')
      if os.path.exists(path):
        continue
      t0 = time.time()
      examples = examples_lib.load_examples(cfg, f'{split}[{start}:{stop}]')
      patches, teacher, played, frame_channel, roles, channel_song = [], [], [], [], [], []
      for ex in examples:
        for ch, name in enumerate(ex.channel_names):
          level = rendered.active_level_db(ex.audio[ch])
          if not np.isfinite(level):
            continue
          w, p = channel_frames(ex.audio[ch], level, f1, history,
                                float(preset.model.window_gate_db))
          played.append(p)
          frame_channel.append(np.full(len(w), len(roles)))
          roles.append(role_of(name))
          channel_song.append(ex.song_id)
          patches.append(w)
      windows = np.concatenate(patches)
      patches, teacher = [], []
      for i in range(0, len(windows), BATCH):
        chunk = windows[i:i + BATCH]
        pad = np.zeros((BATCH - len(chunk),) + chunk.shape[1:], np.float32)
        pt, e = embed(np.concatenate([chunk, pad]))
        patches.append(np.asarray(pt)[:len(chunk)])
        teacher.append(np.asarray(e, np.float32)[:len(chunk)])
      np.savez(path + '.tmp.npz', patches=np.concatenate(patches), teacher=np.concatenate(teacher),
               played=np.concatenate(played), frame_channel=np.concatenate(frame_channel),
               roles=np.array(roles), channel_song=np.array(channel_song))
      os.replace(path + '.tmp.npz', path)
      # The pipeline keeps every split it loaded in memory (one entry per part here): drop them,
      # or the parts of the train split add up to more than this machine holds.
      pipeline._SONGS.clear()  # pylint: disable=protected-access
      print(f'{path}: {len(windows)} frames of {len(roles)} channels, {time.time() - t0:.0f} s',
            flush=True)


def cache_files(cache_dir: str, split: str) -> list[str]:
  files = sorted(glob.glob(os.path.join(cache_dir, f'{split}_*_*.npz')))
  if not files:
    raise FileNotFoundError(f'No {split} files in {cache_dir}: run `python tools/role_centroids.py '
                            f'cache --splits={split} --cache={cache_dir}` first.')
  return files


def channel_means(cache_dir: str, split: str, features):
  """(mean feature of each channel's played frames [C, D], roles [C]) of a split.

  features(path, data) -> per-frame features [N, D] of a cache file."""
  means, roles = [], []
  for path in cache_files(cache_dir, split):
    with np.load(path) as f:
      data = {k: f[k] for k in f.files}
    feats = np.asarray(features(path, data), np.float64)
    for c, role in enumerate(data['roles']):
      sel = data['frame_channel'] == c
      use = sel & data['played']
      if not use.any():
        use = sel  # never played above the gate: all its frames
      means.append(feats[use].mean(axis=0))
      roles.append(str(role))
  return np.stack(means), np.array(roles)


def make_centroids(means, roles):
  names = sorted(set(roles))
  role_means = np.stack([means[roles == r].mean(axis=0) for r in names])
  center = role_means.mean(axis=0)
  c = role_means - center
  c /= np.linalg.norm(c, axis=1, keepdims=True)
  return {'roles': np.array(names), 'levels_db': np.array(
      [rendered.ROLE_LEVELS_DB[r] for r in names], np.float32), 'center': center.astype(np.float32),
          'centroids': c.astype(np.float32), 'train_channels': np.array(
              [int(np.sum(roles == r)) for r in names])}


def accuracy(cents, means, roles) -> dict:
  idx = np.asarray(role_naming.nearest_role(jnp.asarray(means, jnp.float32), cents['center'],
                                            cents['centroids']))
  pred = cents['roles'][idx]
  level = dict(zip(cents['roles'], cents['levels_db']))
  by_level = np.array([level[p] == rendered.ROLE_LEVELS_DB[r] for p, r in zip(pred, roles)])
  per_role = {r: f'{np.mean(pred[roles == r] == r):.2f} (n={np.sum(roles == r)})'
              for r in sorted(set(roles))}
  err = np.array([level[p] - rendered.ROLE_LEVELS_DB[r] for p, r in zip(pred, roles)])
  return {'channels': len(roles), 'role_accuracy': float(np.mean(pred == roles)),
          'level_accuracy': float(np.mean(by_level)),
          'mean_abs_level_error_db': float(np.mean(np.abs(err))), 'per_role': per_role}


def features_fn(name: str):
  if name == 'musicnn':
    return lambda path, data: data['teacher']
  if name == 'logmel':
    return lambda path, data: data['patches'].astype(np.float32).mean(axis=1)
  if name.endswith('.npz'):
    def from_file(path, data):
      with np.load(name) as f:
        return f[os.path.basename(path)]
    return from_file
  raise ValueError(f'--embedding must be musicnn, logmel or an .npz of embeddings, got {name!r}.')


def centroids(args):
  feats = features_fn(args.embedding)
  means, roles = channel_means(args.cache, 'train', feats)
  cents = make_centroids(means, roles)
  print(f'{args.embedding}: centroids of {len(roles)} train channels: '
        f'{dict(zip(cents["roles"].tolist(), cents["train_channels"].tolist()))}')
  results = {}
  for split in args.eval_splits.split(','):
    m, r = channel_means(args.cache, split, feats)
    results[split] = accuracy(cents, m, r)
    print(f'  {split}: {json.dumps(results[split])}', flush=True)
  if args.output:
    np.savez(args.output, **cents)
    print(f'wrote {args.output}')
  return results


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('command', choices=('cache', 'centroids'))
  parser.add_argument('--config', default='configs/role_preset.py')
  parser.add_argument('--data_config', default='configs/pretrained_alm_mr.py')
  parser.add_argument('--splits', default='train,validation,test')
  parser.add_argument('--eval_splits', default='validation,test')
  parser.add_argument('--segment_seconds', type=float, default=20.0)
  parser.add_argument('--part_songs', type=int, default=40)
  parser.add_argument('--cache', default=DEFAULT_CACHE)
  parser.add_argument('--embedding', default='musicnn')
  parser.add_argument('--output', default='')
  args = parser.parse_args(argv)
  (cache if args.command == 'cache' else centroids)(args)


if __name__ == '__main__':
  main()
