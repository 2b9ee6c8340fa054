"""`alm_jax.models.compiler_options`: the XLA:CPU options a model's embedding asks for, and that they take.

VGGish asks XLA:CPU to leave its convolutions to Eigen instead of YNNPACK (the
faster path for its 3x3 convolutions, bench/vggish_vs_torch.py); the small
embedding and the console automixers ask for nothing.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alm_jax import embeddings
from alm_jax import models
from conftest import load_config

_YNN = re.compile(r'__ynn_fusion')


def _conv_program(options):
  f = jax.jit(lambda x, k: jax.lax.conv_general_dilated(
      x, k, (1, 1), 'SAME', dimension_numbers=('NHWC', 'HWIO', 'NHWC')), compiler_options=options)
  return f, f.lower(jnp.zeros((2, 12, 8, 16)), jnp.zeros((3, 3, 16, 32))).compile().as_text()


def test_vggish_asks_for_eigen_convolutions_on_cpu():
  config = load_config('mr')
  assert config.model.embedding.name == 'vggish'
  options = models.compiler_options(config)
  assert options == embeddings.cpu_compiler_options(config.model.embedding)
  f, text = _conv_program(options)
  assert not _YNN.search(text), 'VGGish\'s convolutions still go to YNNPACK'
  # The options change the program, not the result.
  rng = np.random.default_rng(0)
  x = rng.standard_normal((2, 12, 8, 16)).astype(np.float32)
  k = rng.standard_normal((3, 3, 16, 32)).astype(np.float32)
  default, _ = _conv_program(None)
  np.testing.assert_allclose(f(x, k), default(x, k), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize('name', ['quickstart', 'dugan', 'loudness_preset'])
def test_other_models_keep_xlas_defaults(name):
  assert models.compiler_options(load_config(name)) is None


def test_an_unknown_embedding_is_a_clear_error():
  config = load_config('mr')
  config.model.embedding.name = 'no_such_embedding'
  with pytest.raises(ValueError, match='Unknown config.model.embedding.name'):
    models.compiler_options(config)
