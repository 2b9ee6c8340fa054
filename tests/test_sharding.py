"""Tests for alm_jax/sharding.py: data parallelism over 8 forced CPU devices equals one device.

The 8-device run needs XLA_FLAGS before JAX starts, so it runs in a subprocess
(pytest keeps one process, whose JAX already has one CPU device). It trains one
step through `train.train_and_evaluate` (the real loop, batch sharded over 8
devices) and compares with `train_step` on one device. The model is the DMC
baseline, shrunk: the loop never looks at the model kind, and this one compiles
fastest.
"""

import json
import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest

from alm_jax import sharding

TESTS = pathlib.Path(__file__).resolve().parent

SCRIPT = r'''
import json, sys, tempfile
import jax
import numpy as np
from alm_jax import losses, sharding, train
from tiny_training import FakeData, tiny_train_config
import test_train

assert jax.device_count() == 8, jax.devices()
config = tiny_train_config('dmc_b_0l', '', '')
config.model.dmc_dropout = 0.0
config.train.batch_size = 8
config.train.num_epochs = 1
config.train.eval_every_steps = 0  # no validation: one compile less
data = FakeData()
workdir = tempfile.mkdtemp()
state8 = train.train_and_evaluate(config, workdir, make_train_iterator=data.make_train_iterator,
                                  make_eval_batches=data.make_eval_batches)
loss8 = test_train.read_scalars(workdir)['train/loss'][1]

# The same step on one device.
init_rng, dropout_rng = jax.random.split(jax.random.key(int(config.seed)))
statics = (train.build_model(config), train.make_optimizer(config, 1),
           losses.MRSTFTSpec.from_config(config.loss))
one = jax.sharding.SingleDeviceSharding(jax.devices()[0])
state1 = jax.jit(train.create_train_state, static_argnums=(1, 2, 3), out_shardings=one)(
    init_rng, *statics)
batch = next(data.make_train_iterator(config))
batch = jax.device_put({k: v for k, v in batch.items()}, one)
state1, metrics1 = jax.jit(train.train_step)(state1, batch, dropout_rng)

mesh = sharding.make_mesh()
g = sharding.global_batch(next(data.make_train_iterator(config)), mesh)
diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
           for a, b in zip(jax.tree.leaves(state8.params), jax.tree.leaves(state1.params)))
print('RESULT ' + json.dumps({
    'loss8': loss8, 'loss1': float(metrics1['loss']), 'param_diff': diff,
    'param_scale': max(float(np.max(np.abs(np.asarray(a)))) for a in jax.tree.leaves(state1.params)),
    'shard_shape': list(g['audio'].sharding.shard_shape(g['audio'].shape)),
    'replicated': all(x.sharding.is_fully_replicated for x in jax.tree.leaves(state8.params)),
}))
'''


def test_eight_devices_match_one_device():
  env = dict(os.environ)
  env['XLA_FLAGS'] = (env.get('XLA_FLAGS', '') + ' --xla_force_host_platform_device_count=8').strip()
  env['JAX_PLATFORMS'] = 'cpu'
  env['PYTHONPATH'] = os.pathsep.join([str(TESTS), env.get('PYTHONPATH', '')])
  proc = subprocess.run([sys.executable, '-c', SCRIPT], env=env, cwd=str(TESTS.parent),
                        capture_output=True, text=True, timeout=600)
  lines = [l for l in proc.stdout.splitlines() if l.startswith('RESULT ')]
  assert proc.returncode == 0 and lines, proc.stderr[-4000:]
  r = json.loads(lines[-1][len('RESULT '):])
  assert r['shard_shape'][0] == 1  # a global batch of 8 split over the 8 devices
  assert r['replicated']
  np.testing.assert_allclose(r['loss8'], r['loss1'], rtol=1e-5)
  assert r['param_diff'] <= 1e-5 * max(1.0, r['param_scale'])


def test_batch_size_must_split_over_devices():
  mesh = sharding.make_mesh()
  n = mesh.devices.size
  sharding.check_batch_size(2 * n, mesh, process_count=1)
  with pytest.raises(ValueError, match='multiple of'):
    sharding.check_batch_size(2 * n, mesh, process_count=3)
  if n > 1:
    with pytest.raises(ValueError, match='multiple of'):
      sharding.check_batch_size(n + 1, mesh, process_count=1)


def test_global_batch_keeps_arrays_only():
  mesh = sharding.make_mesh()
  n = mesh.devices.size
  local = {'audio': np.ones((n, 2, 8), np.float32), 'example_mask': np.ones((n,), bool),
           'song_id': ['a'] * n}
  g = sharding.global_batch(local, mesh)
  assert set(g) == {'audio', 'example_mask'}
  assert isinstance(g['audio'], jax.Array) and g['audio'].shape == (n, 2, 8)
  assert g['audio'].sharding == sharding.data_sharding(mesh)
