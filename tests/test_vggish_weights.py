"""Tests for alm_jax.embeddings.vggish_weights.

Checkpoints are written here with random values under the released names (a TF
checkpoint, and a torchvggish state dict when torch is installed), loaded, and
the Flax VGGish is compared with forward passes built independently: a float64
NumPy VGGish and torchvggish's own layer stack. Full-size VGGish is ~72 M
parameters, so there is one full-size TF checkpoint (a module fixture), one
full-size .pth, and one Flax forward pass on one [2, 96, 64] batch (a single
compile) that both comparisons share; the other tests use small files.
"""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alm_jax import embeddings
from alm_jax.embeddings import vggish_network
from alm_jax.embeddings import vggish_weights
from alm_jax.models import build_model
from conftest import load_config

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')
import tensorflow as tf  # pylint: disable=g-import-not-at-top,wrong-import-position

# The release's variables and shapes, written out by hand (not derived from
# the code under test).
RELEASE = {
    'vggish/conv1/weights': (3, 3, 1, 64), 'vggish/conv1/biases': (64,),
    'vggish/conv2/weights': (3, 3, 64, 128), 'vggish/conv2/biases': (128,),
    'vggish/conv3/conv3_1/weights': (3, 3, 128, 256), 'vggish/conv3/conv3_1/biases': (256,),
    'vggish/conv3/conv3_2/weights': (3, 3, 256, 256), 'vggish/conv3/conv3_2/biases': (256,),
    'vggish/conv4/conv4_1/weights': (3, 3, 256, 512), 'vggish/conv4/conv4_1/biases': (512,),
    'vggish/conv4/conv4_2/weights': (3, 3, 512, 512), 'vggish/conv4/conv4_2/biases': (512,),
    'vggish/fc1/fc1_1/weights': (12288, 4096), 'vggish/fc1/fc1_1/biases': (4096,),
    'vggish/fc1/fc1_2/weights': (4096, 4096), 'vggish/fc1/fc1_2/biases': (4096,),
    'vggish/fc2/weights': (4096, 128), 'vggish/fc2/biases': (128,),
}
CONVS = ('vggish/conv1', 'vggish/conv2', 'vggish/conv3/conv3_1', 'vggish/conv3/conv3_2',
         'vggish/conv4/conv4_1', 'vggish/conv4/conv4_2')
POOL_AFTER = {'vggish/conv1', 'vggish/conv2', 'vggish/conv3/conv3_2', 'vggish/conv4/conv4_2'}
FCS = ('vggish/fc1/fc1_1', 'vggish/fc1/fc1_2', 'vggish/fc2')


def random_release_weights(seed=0):
  """Release-named float32 arrays, He-scaled so activations stay O(1)."""
  rng = np.random.default_rng(seed)
  out = {}
  for name, shape in RELEASE.items():
    # Uniform [-a, a) with variance 2 / fan_in (biases: 0.01); uniform draws are
    # the cheapest for ~72 M values.
    var = 0.01 if name.endswith('biases') else 2.0 / np.prod(shape[:-1])
    w = rng.random(shape, dtype=np.float32)
    w -= np.float32(0.5)
    w *= np.float32(2.0 * np.sqrt(3.0 * var))
    out[name] = w
  return out


def matmul64(x, w, rows=512):
  """x [m, k] float64 @ w [k, n] upcast to float64 in row blocks (no 400 MB copy of fc1_1)."""
  return sum(x[:, i:i + rows] @ w[i:i + rows].astype(np.float64) for i in range(0, w.shape[0], rows))


def reference_forward(weights, patches):
  """VGGish in float64 NumPy from release-named weights: [n, 96, 64] -> [n, 128]."""
  x = np.asarray(patches, np.float64)[..., None]
  for scope in CONVS:
    w = weights[scope + '/weights']
    n, h, wd, _ = x.shape
    xp = np.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    # Cross-correlation, as tf.nn.conv2d: im2col [n*h*w, 9*c] @ [9*c, out].
    cols = np.concatenate([xp[:, dy:dy + h, dx:dx + wd, :] for dy in range(3) for dx in range(3)],
                          axis=-1)
    y = matmul64(cols.reshape(n * h * wd, -1), w.reshape(-1, w.shape[-1]))
    x = np.maximum(y.reshape(n, h, wd, -1) + weights[scope + '/biases'], 0.0)
    if scope in POOL_AFTER:
      n, h, wd, c = x.shape
      x = x.reshape(n, h // 2, 2, wd // 2, 2, c).max(axis=(2, 4))
  x = x.reshape(x.shape[0], -1)  # [n, 6, 4, 512] flattened row-major (H, W, C)
  for scope in FCS:
    x = matmul64(x, weights[scope + '/weights']) + weights[scope + '/biases']
    if scope != 'vggish/fc2':
      x = np.maximum(x, 0.0)
  return x


def assert_trees_equal(a, b):
  """Exact equality of two param trees (np.array_equal: cheaper than assert_array_equal at 72 M)."""
  assert jax.tree.structure(a) == jax.tree.structure(b)
  for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
    assert np.shape(x) == np.shape(y) and np.array_equal(x, y)


def save_v2(prefix, tensors):
  """A V2 checkpoint whose variable names are exactly the dict's keys."""
  names = sorted(tensors)
  tf.raw_ops.SaveV2(prefix=prefix, tensor_names=names, shape_and_slices=[''] * len(names),
                    tensors=[tensors[k] for k in names])


def save_v1(path, tensors):
  """A single-file V1 checkpoint, the format of the released vggish_model.ckpt."""
  names = sorted(tensors)
  tf.raw_ops.Save(filename=path, tensor_names=names, data=[tensors[k] for k in names])


@pytest.fixture(scope='module')
def release(tmp_path_factory):
  """(weights dict, prefix of a V2 checkpoint holding them under the release's names).

  V2 rather than the release's single-file V1 format because it writes ~3x
  faster; V1 reading is covered by a small file below.
  """
  weights = random_release_weights()
  path = str(tmp_path_factory.mktemp('tf') / 'vggish_model.ckpt')
  save_v2(path, weights)
  return weights, path


@pytest.fixture(scope='module')
def loaded(release):
  return vggish_weights.load_vggish_params(release[1])


@pytest.fixture(scope='module')
def flax_output(loaded):
  """(Flax VGGish with the loaded params on a [2, 96, 64] batch -> [2, 128], the batch)."""
  patches = np.random.default_rng(1).standard_normal((2, 96, 64)).astype(np.float32)
  out = jax.jit(vggish_network.VGGish().apply)({'params': loaded}, patches)
  return np.asarray(out), patches


def test_release_checkpoint_has_the_released_names(release):
  assert dict(tf.train.list_variables(release[1])) == {k: list(v) for k, v in RELEASE.items()}


def test_tf_checkpoint_reproduces_reference_forward(release, loaded, flax_output):
  weights, _ = release
  assert jax.tree.map(np.shape, loaded) == vggish_weights.vggish_param_shapes()
  np.testing.assert_array_equal(loaded['conv3_2']['kernel'], weights['vggish/conv3/conv3_2/weights'])
  np.testing.assert_array_equal(loaded['fc2']['bias'], weights['vggish/fc2/biases'])
  got, patches = flax_output
  want = reference_forward(weights, patches)
  err = np.max(np.abs(got - want))
  print(f'max abs error vs float64 reference: {err:.3g} (output scale {np.max(np.abs(want)):.3g})')
  assert got.shape == (2, 128)
  assert np.std(want) > 0.1  # the comparison is not trivially between zeros
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.max(np.abs(want)))


def test_v2_prefix_index_file_and_directory_are_found(tmp_path):
  # Resolution only: a small V2 checkpoint is found and read through each
  # spelling of its path, then rejected for what it holds.
  prefix = str(tmp_path / 'vggish_model.ckpt')
  save_v2(prefix, {'vggish/fc2/biases': np.zeros((128,), np.float32),
                   'global_step': np.zeros((), np.float32)})  # outside vggish/: ignored
  with open(tmp_path / 'checkpoint', 'w') as f:  # what tf.train.latest_checkpoint reads
    f.write('model_checkpoint_path: "vggish_model.ckpt"\n')
  for path in (prefix, prefix + '.index', prefix + '.data-00000-of-00001', str(tmp_path)):
    with pytest.raises(ValueError) as e:
      vggish_weights.load_vggish_params(path)
    msg = str(e.value)
    assert msg.startswith(f'{prefix} does not hold the VGGish network'), (path, msg)
    assert 'missing: vggish/fc2/weights (expected shape (4096, 128))' in msg
    assert 'global_step' not in msg and 'vggish/fc2/biases' not in msg


def test_single_file_v1_checkpoint_like_the_release_is_read(tmp_path):
  path = str(tmp_path / 'vggish_model.ckpt')
  save_v1(path, {'vggish/conv1/weights': np.ones((3, 3, 1, 64), np.float32),
                 'vggish/conv1/biases': np.ones((64,), np.float32)})
  assert os.listdir(tmp_path) == ['vggish_model.ckpt']  # one file, no .index
  with pytest.raises(ValueError) as e:
    vggish_weights.load_vggish_params(path)
  msg = str(e.value)
  assert msg.startswith(f'{path} does not hold the VGGish network (16 problem(s))'), msg
  assert 'vggish/conv1/' not in msg


def test_tf_mismatch_lists_every_offending_variable(tmp_path):
  prefix = str(tmp_path / 'bad.ckpt')
  save_v2(prefix, {
      'vggish/conv1/weights': np.zeros((3, 3, 2, 64), np.float32),  # wrong shape
      'vggish/conv1/biases': np.zeros((64,), np.float32),
      'vggish/conv5/weights': np.zeros((3, 3, 1, 1), np.float32),  # unexpected
  })
  with pytest.raises(ValueError) as e:
    vggish_weights.load_vggish_params(prefix)
  msg = str(e.value)
  assert 'wrong shape: vggish/conv1/weights: expected (3, 3, 1, 64), got (3, 3, 2, 64)' in msg
  assert 'missing: vggish/fc1/fc1_1/weights (expected shape (12288, 4096))' in msg
  assert 'missing: vggish/conv3/conv3_2/biases' in msg
  assert 'unexpected: vggish/conv5/weights' in msg
  assert 'vggish/conv1/biases' not in msg
  assert msg.count('missing:') == len(RELEASE) - 2


def test_missing_and_unreadable_files(tmp_path):
  with pytest.raises(FileNotFoundError, match='config.model.embedding.weights'):
    vggish_weights.load_vggish_params(str(tmp_path / 'nope.ckpt'))
  junk = tmp_path / 'vggish_model.ckpt'
  junk.write_bytes(b'not a checkpoint' * 10)
  with pytest.raises(ValueError, match='not a readable TensorFlow checkpoint'):
    vggish_weights.load_vggish_params(str(junk))


def test_tf_with_fc2_relu_warns(monkeypatch):
  warnings = []
  monkeypatch.setattr(vggish_weights.logging, 'warning', lambda msg, *a: warnings.append(msg % a))
  monkeypatch.setattr(vggish_weights, '_load_tf', lambda path: {})  # the warning is not about the data
  vggish_weights.load_vggish_params('vggish_model.ckpt', fc2_relu=True)
  assert len(warnings) == 1 and 'fc2_relu = False' in warnings[0]
  vggish_weights.load_vggish_params('vggish_model.ckpt', fc2_relu=False)
  vggish_weights.load_vggish_params('vggish_model.ckpt')
  assert len(warnings) == 1


def test_pth_without_torch_explains_the_extra(tmp_path, monkeypatch):
  path = tmp_path / 'vggish-10086976.pth'
  path.write_bytes(b'x')
  monkeypatch.setitem(sys.modules, 'torch', None)  # import torch -> ImportError
  with pytest.raises(ImportError, match=r'pip install -e \.\[torch\]'):
    vggish_weights.load_vggish_params(str(path))


# ---------------------------------------------------------------------------
# torchvggish


def torchvggish_like(torch):
  """torchvggish's VGG: same module indices and its NCHW -> NHWC flatten."""
  nn = torch.nn
  layers, cin = [], 1
  for v in (64, 'M', 128, 'M', 256, 256, 'M', 512, 512, 'M'):
    if v == 'M':
      layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
    else:
      layers += [nn.Conv2d(cin, v, kernel_size=3, padding=1), nn.ReLU()]
      cin = v

  class VGG(nn.Module):

    def __init__(self):
      super().__init__()
      self.features = nn.Sequential(*layers)
      self.embeddings = nn.Sequential(nn.Linear(512 * 4 * 6, 4096), nn.ReLU(),
                                      nn.Linear(4096, 4096), nn.ReLU(),
                                      nn.Linear(4096, 128), nn.ReLU())

    def forward(self, x):  # x: [n, 1, 96, 64]
      x = self.features(x)
      x = torch.transpose(torch.transpose(x, 1, 3), 1, 2).contiguous()
      return self.embeddings(x.view(x.size(0), -1))

  return VGG()


def torch_layout(name, value):
  """A release array in torch's layout: conv HWIO -> OIHW, dense [in, out] -> [out, in]."""
  if name.endswith('biases'):
    return value
  return value.transpose(3, 2, 0, 1) if value.ndim == 4 else value.T


def test_torchvggish_state_dict_reproduces_torch_forward(release, loaded, flax_output, tmp_path,
                                                         monkeypatch):
  torch = pytest.importorskip('torch', reason='torch is an optional extra (pip install -e .[torch])')
  weights, _ = release
  torch_names = [f'{part}.{i}' for part, i in (('features', 0), ('features', 3), ('features', 6),
                                                ('features', 8), ('features', 11), ('features', 13),
                                                ('embeddings', 0), ('embeddings', 2),
                                                ('embeddings', 4))]
  scopes = CONVS + FCS
  state = {}
  for torch_name, scope in zip(torch_names, scopes):
    # Transposed views, not copies: torch keeps the strides through save and
    # load, which spares two 288 MB transposing copies; values and indexing
    # are those of torchvggish's contiguous tensors.
    state[torch_name + '.weight'] = torch.from_numpy(torch_layout('w', weights[scope + '/weights']))
    state[torch_name + '.bias'] = torch.from_numpy(weights[scope + '/biases'])
  with torch.device('meta'):  # skip torch's own init of 72 M parameters
    model = torchvggish_like(torch)
  model.load_state_dict(state, assign=True)  # strict: the names above are torchvggish's
  path = str(tmp_path / 'vggish-10086976.pth')
  torch.save(dict(model.state_dict(), **{'pproc.pca_means': torch.zeros(128, 1)}), path)
  del state

  warnings = []
  monkeypatch.setattr(vggish_weights.logging, 'warning', lambda msg, *a: warnings.append(msg % a))
  params = vggish_weights.load_vggish_params(path, fc2_relu=False)
  assert len(warnings) == 1 and 'fc2_relu = True' in warnings[0]
  assert_trees_equal(params, loaded)

  # Torch's own forward (its NCHW -> NHWC flatten included) judges the
  # conversion: the Flax VGGish with these params, plus the ReLU torchvggish
  # puts after fc2 (fc2_relu=True), must match it.
  _, patches = flax_output
  with torch.no_grad():
    want = model(torch.from_numpy(patches)[:, None]).numpy()
  got = np.maximum(flax_output[0], 0.0)
  err = np.max(np.abs(got - want))
  print(f'max abs error vs torch forward: {err:.3g} (output scale {np.max(np.abs(want)):.3g})')
  assert np.count_nonzero(want) > 20
  np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4 * np.max(np.abs(want)))


def test_torch_mismatch_and_non_state_dict(tmp_path):
  torch = pytest.importorskip('torch', reason='torch is an optional extra (pip install -e .[torch])')
  path = str(tmp_path / 'bad.pth')
  torch.save({'features.0.weight': torch.zeros(64, 1, 3, 3),
              'features.0.bias': torch.zeros(32),
              'features.1.weight': torch.zeros(1)}, path)
  with pytest.raises(ValueError) as e:
    vggish_weights.load_vggish_params(path)
  msg = str(e.value)
  assert 'wrong shape: features.0.bias: expected (64,), got (32,)' in msg
  assert 'missing: embeddings.0.weight (expected shape (4096, 12288))' in msg
  assert 'missing: features.13.weight (expected shape (512, 512, 3, 3))' in msg
  assert 'unexpected: features.1.weight' in msg
  assert 'features.0.weight' not in msg
  torch.save([torch.zeros(1)], path)
  with pytest.raises(ValueError, match='not a state dict'):
    vggish_weights.load_vggish_params(path)


# ---------------------------------------------------------------------------
# Merging into a mixer's params


def abstract_mixer_params(config):
  """Zero-filled params of the model `config` builds (shapes only: no compute)."""
  model = build_model(config)
  audio = jax.ShapeDtypeStruct((1, 2, 44100), jnp.float32)
  mask = jax.ShapeDtypeStruct((1, 2), jnp.bool_)
  shapes = jax.eval_shape(model.init, jax.random.key(0), audio, mask)
  return jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), shapes)


def vggish_config(tiny_config, dim=128):
  config = tiny_config('mr')
  config.model.embedding.name = 'vggish'
  config.model.embedding.dim = dim
  return config


def test_merge_replaces_only_the_embedding(loaded, release, tiny_config, monkeypatch):
  variables = abstract_mixer_params(vggish_config(tiny_config))
  # A device-resident leaf stays on its device (and sharding) after the merge.
  fc2 = variables['params']['embedding']['fc2']
  fc2['kernel'] = jnp.asarray(fc2['kernel'])
  merged = vggish_weights.merge_into_model_params(variables, loaded)
  new_kernel = merged['params']['embedding']['fc2']['kernel']
  assert isinstance(new_kernel, jax.Array) and new_kernel.sharding == fc2['kernel'].sharding
  assert set(merged) == set(variables)
  for key in variables['params']:
    if key != 'embedding':
      assert merged['params'][key] is variables['params'][key]
  assert_trees_equal(merged['params']['embedding'], loaded)
  assert jax.tree.map(np.shape, merged) == jax.tree.map(np.shape, variables)
  # The bare params tree works too, and the config entry point does the same.
  bare = vggish_weights.merge_into_model_params(variables['params'], loaded)
  assert_trees_equal(bare['embedding'], loaded)
  assert bare['embed_proj'] is variables['params']['embed_proj']
  calls = []
  def fake_load(path, *, fc2_relu=None):
    calls.append((path, fc2_relu))
    return loaded
  monkeypatch.setattr(vggish_weights, 'load_vggish_params', fake_load)  # no second 288 MB read
  config = vggish_config(tiny_config)
  config.model.embedding.weights = release[1]
  via_config = vggish_weights.load_pretrained_embedding(variables, config.model.embedding)
  assert calls == [(release[1], False)]
  assert_trees_equal(via_config['params']['embedding'], loaded)
  config.model.embedding.weights = ''
  assert vggish_weights.load_pretrained_embedding(variables, config.model.embedding) is variables


def test_merge_into_dmc_params(loaded):
  variables = abstract_mixer_params(load_config('dmc_og'))
  merged = vggish_weights.merge_into_model_params(variables, loaded)
  assert merged['params']['post_processor'] is variables['params']['post_processor']
  assert_trees_equal(merged['params']['embedding'], loaded)


def release_shaped_params():
  return jax.tree.map(lambda s: np.zeros(s, np.float32), vggish_weights.vggish_param_shapes(),
                      is_leaf=lambda x: isinstance(x, tuple))


def test_merge_rejects_small_embedding_naming_the_config_line(tiny_config):
  variables = abstract_mixer_params(tiny_config('mr'))  # embedding.name = 'small'
  with pytest.raises(ValueError) as e:
    vggish_weights.merge_into_model_params(variables, release_shaped_params())
  msg = str(e.value)
  assert "config.model.embedding.name = 'vggish'" in msg
  assert 'missing from the weights: embedding/fc/kernel' in msg
  assert 'unexpected in the weights: embedding/fc1_1/kernel (shape (12288, 4096))' in msg


def test_merge_rejects_wrong_dim_naming_the_config_line(tiny_config):
  variables = abstract_mixer_params(vggish_config(tiny_config, dim=64))
  with pytest.raises(ValueError) as e:
    vggish_weights.merge_into_model_params(variables, release_shaped_params())
  msg = str(e.value)
  assert 'wrong shape: embedding/fc2/kernel: model expects (4096, 64), weights have (4096, 128)' in msg
  assert 'wrong shape: embedding/fc2/bias' in msg
  assert 'config.model.embedding.dim = 128' in msg
  assert msg.count('wrong shape') == 2


def test_merge_needs_an_embedding_subtree():
  with pytest.raises(ValueError, match="no 'embedding' subtree"):
    vggish_weights.merge_into_model_params({'params': {'dense': {}}}, release_shaped_params())


def test_load_pretrained_with_small_embedding_is_an_error(tmp_path, tiny_config):
  config = tiny_config('mr')
  config.model.embedding.weights = str(tmp_path / 'vggish_model.ckpt')
  with pytest.raises(ValueError, match="config.model.embedding.name = 'vggish'"):
    vggish_weights.load_pretrained_embedding({'params': {'embedding': {}}}, config.model.embedding)
