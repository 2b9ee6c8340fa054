"""Quickstart: a small ALM-MR trained on the embedded synthetic dataset, minutes on 2 CPU cores.

    python -m alm_jax.main --config=configs/quickstart.py --workdir=/tmp/alm_quickstart

Needs no download: the `synthetic_live` dataset is generated on first use.
configs/base.py (ALM-MR framing) with small networks, short segments and a short run.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['get_config']()

  # ---- model: ALM-MR framing, small networks --------------------------------
  model = config.model
  model.max_channels = 6
  model.d_model = 32
  model.embedding.name = 'small'
  model.embedding.dim = 32
  model.embedding.small_features = (16, 32, 32)
  model.encoder.mlp_dim = 64
  model.encoder.dropout = 0.0
  model.gru_hidden = 32
  model.mlp_dims = (16, 8)

  # ---- data ----------------------------------------------------------------
  data = config.data
  data.name = 'synthetic_live'
  data.max_raw_tracks = 6
  data.segment_seconds = 4.0
  data.eval_segment_seconds = 4.0
  data.bleed.bank_size = 32
  data.bleed.rir_seconds = 0.09  # impulse responses cut (with a fade) to this length

  # ---- training --------------------------------------------------------------
  # Sized for a few minutes on 2 CPU cores: 12 train songs / batch 4 = 3 steps per epoch,
  # 25 epochs = 75 steps of about 2.3 s CPU each, plus ~1 min of dataset generation and compiling.
  train = config.train
  train.num_epochs = 25
  train.lr_boundaries_epochs = ()  # no decay in so short a run
  train.freeze_embedding_epochs = 0  # params['embedding'] not updated before this epoch
  train.log_every_steps = 10  # metrics to the host, console and TensorBoard
  train.eval_every_steps = 40  # validation (and at the last step); <= 0: none
  train.checkpoint_every_steps = 40  # async orbax saves (and at the last step)
  train.keep_checkpoints = 2
  return config
