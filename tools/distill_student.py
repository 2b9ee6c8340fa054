r"""Distils musicnn (teacher) into the 'student' embedding (alm_jax/embeddings/student.py).

    python tools/role_centroids.py cache            # the teacher's features, cached once
    python tools/distill_student.py [--epochs=30] [--workdir=/tmp/team/r33/student]

Trains on the cached train-split frames of tools/role_centroids.py (musicnn log-mel patches of
level-normalised rendered_live channels with bleed, and musicnn's embeddings of them): the loss
is the squared error against the teacher's embedding, each dimension standardised over the train
frames, plus `--role_weight` x the cross-entropy of a linear role classifier on the student's
output (played frames only; the classifier is dropped afterwards). Half of the batches are
random 64-row crops (1 s) of the 3 s patches against the whole patch's teacher embedding, so the
student also serves shorter F1 frames. Adam with a cosine decay; resumable (a pickle of the
state after every epoch in --workdir). At the end: the weights, with the standardisation folded
into the last layer so the student speaks the teacher's units, to --output; the student's
embeddings of every cache file to --workdir/embeddings.npz; and the role accuracy of
nearest-centroid on the validation and test channels for the student (its own centroids and the
teacher's), the teacher and the mean log-mel spectrum.
"""

import argparse
import os
import pickle
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import role_centroids  # pylint: disable=wrong-import-position

from alm_jax.embeddings import student as student_lib  # pylint: disable=wrong-import-position

CROP_ROWS = 64


def load_split(cache_dir, split):
  patches, teacher, played, role = [], [], [], []
  for path in role_centroids.cache_files(cache_dir, split):
    with np.load(path) as f:
      patches.append(f['patches'])
      teacher.append(f['teacher'])
      played.append(f['played'])
      role.append(f['roles'][f['frame_channel']])
  return (np.concatenate(patches), np.concatenate(teacher).astype(np.float32),
          np.concatenate(played), np.concatenate(role))


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
  parser.add_argument('--cache', default=role_centroids.DEFAULT_CACHE)
  parser.add_argument('--workdir', default='/tmp/team/r33/student')
  parser.add_argument('--output', default=student_lib.WEIGHTS)
  parser.add_argument('--epochs', type=int, default=30)
  parser.add_argument('--batch', type=int, default=64)
  parser.add_argument('--lr', type=float, default=2e-3)
  parser.add_argument('--role_weight', type=float, default=0.3)
  parser.add_argument('--seed', type=int, default=0)
  args = parser.parse_args(argv)
  os.makedirs(args.workdir, exist_ok=True)

  x, t, played, roles = load_split(args.cache, 'train')
  names = sorted(set(roles.tolist()))
  y = np.array([names.index(r) for r in roles], np.int32)
  mu, sd = t.mean(axis=0), t.std(axis=0) + 1e-3
  z = (t - mu) / sd
  vx, vt, _, _ = load_split(args.cache, 'validation')
  vz = (vt - mu) / sd
  print(f'train {len(x)} frames ({played.mean():.2f} played), {len(names)} roles; '
        f'validation {len(vx)} frames', flush=True)

  net = student_lib.Student()
  head = jax.nn.initializers.lecun_normal()
  rng = jax.random.key(args.seed)
  params = {'student': net.init(rng, jnp.zeros((1,) + x.shape[1:]))['params'],
            'head': {'kernel': head(jax.random.fold_in(rng, 1), (student_lib.DIM, len(names))),
                     'bias': jnp.zeros(len(names))}}
  steps_per_epoch = len(x) // args.batch
  schedule = optax.cosine_decay_schedule(args.lr, args.epochs * steps_per_epoch, alpha=0.05)
  opt = optax.adam(schedule)
  state = {'params': params, 'opt': opt.init(params), 'epoch': 0, 'log': []}
  ckpt = os.path.join(args.workdir, 'state.pkl')
  if os.path.exists(ckpt):
    with open(ckpt, 'rb') as f:
      state = pickle.load(f)
    print(f'resumed after epoch {state["epoch"]}', flush=True)

  def loss_fn(p, xb, zb, yb, wb):
    s = net.apply({'params': p['student']}, xb.astype(jnp.float32))
    mse = jnp.mean(jnp.square(s - zb))
    logits = s @ p['head']['kernel'] + p['head']['bias']
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, yb)
    ce = jnp.sum(ce * wb) / jnp.maximum(jnp.sum(wb), 1.0)
    return mse + args.role_weight * ce, (mse, ce)

  @jax.jit
  def train_step(p, o, xb, zb, yb, wb):
    (loss, aux), g = jax.value_and_grad(loss_fn, has_aux=True)(p, xb, zb, yb, wb)
    updates, o = opt.update(g, o, p)
    return optax.apply_updates(p, updates), o, loss, aux

  @jax.jit
  def predict(p, xb):
    return net.apply({'params': p}, xb.astype(jnp.float32))

  def embed_all(p, patches):
    out = []
    for i in range(0, len(patches), 256):
      out.append(np.asarray(predict(p, patches[i:i + 256])))
    return np.concatenate(out)

  np_rng = np.random.default_rng(args.seed)
  for epoch in range(state['epoch'], args.epochs):
    t0 = time.time()
    np_rng = np.random.default_rng([args.seed, epoch])
    order = np_rng.permutation(len(x))
    losses = []
    for i in range(steps_per_epoch):
      idx = np.sort(order[i * args.batch:(i + 1) * args.batch])
      xb = x[idx]
      if i % 2:
        start = np_rng.integers(0, xb.shape[1] - CROP_ROWS + 1)
        xb = xb[:, start:start + CROP_ROWS]
      p, o, loss, (mse, ce) = train_step(state['params'], state['opt'], xb, z[idx], y[idx],
                                         played[idx].astype(np.float32))
      state['params'], state['opt'] = p, o
      losses.append((float(loss), float(mse), float(ce)))
    val = float(np.mean(np.square(embed_all(state['params']['student'], vx) - vz)))
    state['epoch'] = epoch + 1
    state['log'].append((epoch + 1, *np.mean(losses, axis=0), val))
    with open(ckpt + '.tmp', 'wb') as f:
      pickle.dump(jax.device_get(state), f)
    os.replace(ckpt + '.tmp', ckpt)
    print(f'epoch {epoch + 1}: loss {np.mean(losses, axis=0).round(4).tolist()} '
          f'(total, mse, ce), validation mse {val:.4f}, {time.time() - t0:.0f} s', flush=True)

  # Fold the standardisation into the last layer: the student then gives the teacher's units.
  sp = jax.device_get(state['params']['student'])
  sp = dict(sp, fc={'kernel': np.asarray(sp['fc']['kernel']) * sd,
                    'bias': np.asarray(sp['fc']['bias']) * sd + mu})
  student_lib.save_params(sp, args.output)
  print(f'wrote {args.output}')
  emb = {}
  for split in ('train', 'validation', 'test'):
    for path in role_centroids.cache_files(args.cache, split):
      with np.load(path) as f:
        emb[os.path.basename(path)] = embed_all(sp, f['patches'])
  emb_path = os.path.join(args.workdir, 'embeddings.npz')
  np.savez(emb_path, **emb)
  for name in ('musicnn', 'logmel', emb_path):
    role_centroids.main(['centroids', f'--cache={args.cache}', f'--embedding={name}'])
  # Agreement with the teacher: the student's embeddings against the teacher's centroids.
  teacher_means, teacher_roles = role_centroids.channel_means(
      args.cache, 'train', role_centroids.features_fn('musicnn'))
  cents = role_centroids.make_centroids(teacher_means, teacher_roles)
  for split in ('validation', 'test'):
    m, r = role_centroids.channel_means(args.cache, split, role_centroids.features_fn(emb_path))
    tm, _ = role_centroids.channel_means(args.cache, split, role_centroids.features_fn('musicnn'))
    same = np.mean(np.asarray(role_centroids.role_naming.nearest_role(m, cents['center'],
                                                                      cents['centroids'])) ==
                   np.asarray(role_centroids.role_naming.nearest_role(tm, cents['center'],
                                                                      cents['centroids'])))
    print(f'student with the teacher\'s centroids, {split}: '
          f'{role_centroids.accuracy(cents, m, r)}; names the teacher\'s role for {same:.2f}')


if __name__ == '__main__':
  main()
