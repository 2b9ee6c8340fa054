r"""How well an embedding names roles from channels at their input level, and at one level.

    python tools/embedding_levels.py [--config=configs/role_preset_student.py] [--splits=validation,test]

On `alm_jax.evaluate`'s examples of each split (one 20 s segment per song, bleed and input
levels drawn as in evaluation), every channel is cut into the role preset's non-overlapping F1
frames (tools/role_centroids.py's `channel_frames`) and embedded three ways: as the mixer hears
it (`raw`: its input level), each patch brought to one level by the front end
(`at_level`: `Frontend.at_level`, config.model.embed_level's defaults), and scaled from the
channel's active level as the role preset does (`preset`). Prints, per way, the nearest role
centroid's accuracy (the config's shipped centroids) over channels (the mean of their played
frames' embeddings), over single frames (what one F1 frame tells the mixer: the mean over
channels of the share of their played frames named right), and per role.
"""

import argparse
import os
import runpy
import sys

import jax
import jax.numpy as jnp
import numpy as np

from alm_jax.data import pipeline
from alm_jax.data import rendered
from alm_jax.evaluation import examples as examples_lib
from alm_jax.models import role_preset
from alm_jax.models import roles as role_naming  # its locals name role lists `roles`

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import role_centroids  # pylint: disable=g-import-not-at-top,wrong-import-position

WAYS = ('raw', 'at_level', 'preset')


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--config', default='configs/role_preset_student.py')
  parser.add_argument('--data_config', default='configs/pretrained_alm_mr.py')
  parser.add_argument('--splits', default='validation,test')
  parser.add_argument('--segment_seconds', type=float, default=20.0)
  args = parser.parse_args(argv)

  preset = runpy.run_path(args.config)['get_config']()
  level = runpy.run_path('configs/base.py')['get_config']().model.embed_level
  mixer = role_preset.build_mixer(preset.model)
  front, net, params = mixer.front, mixer.net, mixer.params
  roles = np.array(mixer.roles)
  center, centroids = mixer.centroids['center'], mixer.centroids['centroids']

  @jax.jit
  def embed(windows):
    """F1 frame inputs [n, history] -> (embeddings, embeddings of the patches at one level)."""
    patches = front.log_mel_frames(windows, 1, windows.shape[-1])[:, 0]
    levelled = front.at_level(patches, float(level.db), float(level.max_boost_db))
    return net.apply({'params': params}, patches), net.apply({'params': params}, levelled)

  def nearest(e):
    return roles[np.asarray(role_naming.nearest_role(jnp.asarray(e, jnp.float32), center,
                                                     centroids))]

  data_config = runpy.run_path(args.data_config)['get_config']()
  for split in args.splits.split(','):
    cfg = examples_lib.eval_data_config(data_config, split, segment_seconds=args.segment_seconds)
    means = {w: [] for w in WAYS}
    frame_hits = {w: [] for w in WAYS}
    truth = []
    for ex in examples_lib.load_examples(cfg, split):
      for ch, name in enumerate(ex.channel_names):
        active_db = rendered.active_level_db(ex.audio[ch])
        if not np.isfinite(active_db):
          continue
        scaled, played = role_centroids.channel_frames(
            ex.audio[ch], active_db, mixer.spec.f1, mixer.history,
            float(preset.model.window_gate_db))
        as_heard = scaled / 10 ** ((role_preset.EMBED_LEVEL_DB - active_db) / 20)
        raw, at_level = map(np.asarray, embed(jnp.asarray(as_heard, jnp.float32)))
        by_preset, _ = embed(jnp.asarray(scaled, jnp.float32))
        use = played if played.any() else np.ones_like(played)
        truth.append(role_centroids.role_of(name))
        for way, e in zip(WAYS, (raw, at_level, np.asarray(by_preset))):
          means[way].append(e[use].mean(axis=0))
          frame_hits[way].append(np.mean(nearest(e[use]) == truth[-1]))
    truth = np.array(truth)
    for way in WAYS:
      pred = nearest(np.stack(means[way]))
      per_role = {str(r): round(float(np.mean(pred[truth == r] == r)), 2) for r in sorted(set(truth))}
      print(f'{split} {way}: channels {np.mean(pred == truth):.3f}, frames '
            f'{np.mean(frame_hits[way]):.3f} ({len(truth)} channels) {per_role}', flush=True)
    pipeline._SONGS.clear()  # pylint: disable=protected-access


if __name__ == '__main__':
  main()
