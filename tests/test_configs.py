"""Every config in configs/ loads and is internally consistent, and equals its recorded fields."""

import json

import ml_collections
import pytest

from alm_jax import frames
from alm_jax import losses
from alm_jax import optimizer
from conftest import REPO, load_config, load_config_module

CONFIGS = sorted(p.stem for p in (REPO / 'configs').glob('*.py') if not p.stem.startswith('_'))


def test_the_paper_configs_exist():
  assert {'mr', 'sr', 'quickstart'} <= set(CONFIGS)


@pytest.mark.parametrize('name', CONFIGS)
def test_config_loads(name):
  config = load_config(name)
  assert isinstance(config, ml_collections.ConfigDict)
  for section in ('model', 'loss', 'data', 'train'):
    assert section in config, f'configs/{name}.py lacks config.{section}'
  tc = config.train
  assert tc.batch_size > 0 and tc.num_epochs > 0
  assert tc.log_every_steps > 0 and tc.eval_every_steps > 0 and tc.checkpoint_every_steps > 0
  assert tc.keep_checkpoints >= 1
  assert tc.compute_dtype in ('float32', 'bfloat16')
  # The settings convert to the objects training builds from them.
  frames.FrameSpec.from_config(config.model)
  spec = losses.MRSTFTSpec.from_config(config.loss)
  assert round(config.data.segment_seconds * config.model.sample_rate) >= spec.min_samples()
  opt = optimizer.OptimizerSpec.from_config(config.train, spe=9)
  assert all(0 <= step for step, _ in opt.boundaries_and_scales)
  # Serialisable as the workdir's config.json.
  assert config.to_json_best_effort()


def test_paper_recipe():
  """configs/mr.py and sr.py hold the paper's training recipe."""
  for name in ('mr', 'sr'):
    config = load_config(name)
    tc = config.train
    assert tc.learning_rate == 1e-3 and tc.lr_decay == 0.1
    assert tuple(tc.lr_boundaries_epochs) == (100, 1000, 2500)
    assert tc.num_epochs == 5000 and tc.freeze_embedding_epochs == 100
    assert config.model.embedding.name == 'vggish'
    assert tuple(config.loss.fft_sizes) == (512, 1024, 4096)
    assert tuple(config.loss.win_lengths) == (440, 884, 3528)
  mr, sr = frames.FrameSpec.from_config(load_config('mr').model), frames.FrameSpec.from_config(
      load_config('sr').model)
  assert (mr.f2, mr.stride) == (2205, 6) and (sr.f1, sr.f2, sr.stride) == (42998, 42998, 1)


def _fields(config, prefix=''):
  """{'model.embedding.dim': ['int', 128], ...}: every leaf with its Python type."""
  out = {}
  for k, v in config.items():
    if isinstance(v, ml_collections.ConfigDict):
      out.update(_fields(v, f'{prefix}{k}.'))
    else:
      out[prefix + k] = [type(v).__name__, json.loads(json.dumps(v))]
  return out


# Every field of every config as it was before the configs derived from configs/base.py
# (tests/data/configs_snapshot.json), plus the fields added since, below; a deliberate change
# of a config updates one of them.
_SNAPSHOT = json.loads((REPO / 'tests' / 'data' / 'configs_snapshot.json').read_text())
_ADDED = {  # field: {config: [type, value]}, '*' for every config
    'train.grad_accum_steps': {'*': ['int', 1]},
    'train.grad_accum_loop': {'*': ['str', 'auto']},
    'train.remat_embedding_chunk': {'*': ['int', 0]},
    'data.has_bleed': {'*': ['str', 'any']},
    'data.split_file': {'*': ['str', '']},
    'loss.balance_weight': {'*': ['float', 0.0]},
    'loss.gain_change_weight': {'*': ['float', 0.0]},
    'model.outputs': {'*': ['tuple', ['gain']]},
    'loss.side_weight': {'*': ['float', 1.0]},
    'loss.pan_weight': {'*': ['float', 0.0]},
    'model.gain_reference': {'*': ['str', 'none']},
    'model.staging.level_db': {'*': ['float', -20.0]},
    'model.staging.offset_scale_db': {'*': ['float', 10.0]},
    'model.staging.active_range_db': {'*': ['float', 40.0]},
    'model.staging.time_constant_s': {'*': ['float', 10.0]},
    'model.staging.smooth_s': {'*': ['float', 0.0]},
    'model.staging.min_gain_db': {'*': ['float', -40.0]},
    'model.staging.max_gain_db': {'*': ['float', 30.0]},
    'train.init_params_from': {'*': ['str', '']},
    'model.f1_lag': {'*': ['int', 0]},
    'data.train_also': {'*': ['tuple', []]},
    'train.lr_scales': {'*': ['tuple', []]},
    'model.gain_smooth_s': {'*': ['float', 0.0]},
    'model.embed_dropout': {'*': ['float', 0.0]},
    'model.embed_level.enabled': {'*': ['bool', False]},
    'model.embed_level.db': {'*': ['float', -9.0]},
    'model.embed_level.max_boost_db': {'*': ['float', 30.0]},
    'model.embed_level.reference': {'*': ['str', 'patch']},
    'model.embed_level.active_db': {'*': ['float', -20.0]},
    'model.roles.enabled': {'*': ['bool', False]},
    'model.roles.centroids': {'*': ['str', '']},
    'model.roles.gate_db': {'*': ['float', 15.0]},
    'model.roles.input': {'*': ['str', 'embedding']},
    'model.register.enabled': {'*': ['bool', False]},
    'model.register.n_fft': {'*': ['int', 2048]},
    'model.register.time_constant_s': {'*': ['float', 10.0]},
    'model.register.relation_dim': {'*': ['int', 32]},
    'model.register.sharpness': {'*': ['float', 1.0]},
    'model.register.pan_relation': {'*': ['bool', False]},
    'model.pan_embedding': {'*': ['bool', False]},
    'model.register.pan_sharpness': {'*': ['float', 4.0]},
    'model.register.pan_layout': {'*': ['bool', False]},
    'model.register.layout_width_init': {'*': ['float', 0.0]},
    'loss.spread_weight': {'*': ['float', 0.0]},
    'loss.pan_width_weight': {'*': ['float', 0.0]},
    'model.register.pan_relation_own': {'*': ['bool', False]},
    'data.timbre.enabled': {'*': ['bool', False]},
    'data.timbre.tilt_db': {'*': ['float', 6.0]},
    'data.timbre.bell_db': {'*': ['float', 6.0]},
    'data.timbre.bells': {'*': ['int', 2]},
    'data.timbre.in_eval': {'*': ['bool', False]},
    'model.register.ends': {'*': ['bool', False]},
    'model.register.ends_sharpness': {'*': ['float', 8.0]},
}


def _recorded(name):
  want = dict(_SNAPSHOT[name])
  for field, values in _ADDED.items():
    want[field] = values.get(name, values['*'])
  return want


@pytest.mark.parametrize('name', ['mr', 'sr', 'quickstart', 'dmc_og', 'dmc_b_0l', 'tiny_mr',
                                  'tiny_sr'])
def test_config_equals_its_recorded_fields(name):
  if name.startswith('tiny_'):
    config = load_config_module('tiny').get_config(name[len('tiny_'):])
  else:
    config = load_config(name)
  got, want = _fields(config), _recorded(name)
  assert sorted(got) == sorted(want), (f'configs/{name}.py: fields added '
                                       f'{sorted(set(got) - set(want))}, missing '
                                       f'{sorted(set(want) - set(got))}')
  changed = {k: (got[k], want[k]) for k in got if got[k] != want[k]}
  assert not changed, f'configs/{name}.py: (got, recorded) {changed}'


def test_base_is_mr_and_tiny_is_the_tests_model():
  assert load_config('base').to_dict() == load_config('mr').to_dict()
  config = load_config_module('tiny').get_config('quickstart')
  assert config.data.name == 'synthetic_live' and config.model.embedding.name == 'small'
  assert config.model.d_model == 16


@pytest.mark.parametrize('system,differs', [
    ('sr', {'model.f2_ms', 'model.f1_stride'}),
    ('dmc_b_0l', {'model.name', 'model.f2_ms', 'model.f1_stride', 'model.mlp_dims'}),
    ('dmc_og', {'model.name', 'model.zero_latency', 'data.bleed.enabled', 'data.levels.enabled'}),
])
def test_rendered_systems_share_the_pretrained_recipe(system, differs):
  """configs/rendered_<system>.py = pretrained_alm_mr with the system's own fields only."""
  recipe = _fields(load_config('pretrained_alm_mr'))
  got = _fields(load_config(f'rendered_{system}'))
  changed = {k for k in set(got) | set(recipe) if got.get(k) != recipe.get(k)}
  assert differs <= changed, sorted(changed)
  # Data, training and the network sizes the systems share are the recipe's.
  assert all(k.startswith('model.') or k in ('data.bleed.enabled', 'data.levels.enabled')
             for k in changed), sorted(changed)
  for key in ('model.d_model', 'model.embedding.name', 'model.max_channels'):
    assert got[key] == recipe[key]


def test_pretrained_recipe_trains_with_the_gain_terms():
  """The shipped recipe's loss adds both gain terms (weights chosen on validation, docs/model.md);
  the paper's configs keep the paper's loss."""
  loss = load_config('pretrained_alm_mr').loss
  assert (loss.balance_weight, loss.gain_change_weight) == (1.0, 1.0)
  for name in ('mr', 'sr', 'rendered_mr'):
    loss = load_config(name).loss
    assert (loss.balance_weight, loss.gain_change_weight) == (0.0, 0.0), name
