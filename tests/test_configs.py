"""Every config in configs/ loads and is internally consistent."""

import ml_collections
import pytest

from alm_jax import frames
from alm_jax import losses
from alm_jax import train
from conftest import REPO, load_config

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
  opt = train.OptimizerSpec.from_config(config, spe=9)
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
