"""The mixer shipped before as `pretrained:alm_mr`: configs/alm_mr_staged.py continued on both corpora.

    python -m alm_jax.main --config=configs/alm_mr_staged.py --workdir=/tmp/alm_staged  # first
    python -m alm_jax.main --config=configs/alm_mr_stage.py --workdir=/tmp/alm_stage

Starts from the first command's mixer (train.init_params_from = /tmp/alm_staged, its step 4200;
set it to where that run is) and trains on the train splits of `rendered_live/default` and
`rendered_live/stage` together (config.data.train_also: bands miked piece by piece, bleed from
each song's stage layout; docs/data.md), with its embedding lagged by 8 F2 frames
(config.model.f1_lag: live, an F1 frame's work is spread over 8 frames) and the balance and
gain-change terms weighed up (2 and 3 per dB, against 1 and 1), since validation put the first
run's gain change at 1.9 dB/s and its melody 2.6 dB low. Validation and test stay
`rendered_live/default`'s. 3600 steps (120 per epoch), the last 1200 at a tenth of the rate;
about 55 minutes on the 2 CPU cores (1.1 steps/s). Resumable. Figures: docs/results_notes.md.
configs/alm_mr_register.py continues it into the mixer shipped now.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_staged').get_config()
  config.data.train_also = ('rendered_live/stage',)
  # Each F1 frame's embedding is used 8 F2 frames (400 ms) after the frame ends, so that live
  # its work is spread over those frames, 2 of 16 channels each (docs/streaming.md); a channel's
  # embedding says what it is, which 400 ms do not change.
  config.model.f1_lag = 8
  config.loss.balance_weight = 2.0
  config.loss.gain_change_weight = 3.0
  train = config.train
  train.init_params_from = '/tmp/alm_staged'  # configs/alm_mr_staged.py's workdir (4200 steps)
  train.learning_rate = 3e-4
  train.num_epochs = 30
  train.lr_boundaries_epochs = (20,)
  train.eval_every_steps = 1200
  train.freeze_embedding_epochs = train.num_epochs
  return config
