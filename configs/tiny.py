"""Tiny: any config's framing and data with a tiny network, for tests and quick benchmarks.

    python -m alm_jax.main --config=configs/tiny.py:sr --workdir=/tmp/alm_tiny   # tiny ALM-SR

`get_config(name)` is configs/<name>.py (default mr) with `shrink(config)`
applied: the real frame sizes, a small embedding and narrow layers, so a train
step compiles and runs in seconds on a CPU.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def shrink(config):
  """Shrinks config.model in place to a tiny network with the real frame sizes; returns config."""
  m = config.model
  m.embedding.name = 'small'
  m.embedding.dim = 16
  m.embedding.small_features = (4, 8)
  m.d_model = 16
  m.encoder.mlp_dim = 32
  m.encoder.dropout = 0.0
  m.gru_hidden = 16
  m.mlp_dims = (8, 4)
  return config


def get_config(name: str = 'mr'):
  """configs/<name>.py ('mr', 'sr', 'quickstart', 'dmc_og', 'dmc_b_0l') with a tiny network."""
  return shrink(_BASE['load'](name or 'mr').get_config())
