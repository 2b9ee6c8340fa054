"""`pretrained:alm_mr` that hears where each channel sits among the others: the register, and a gain ramp.

    python -m alm_jax.main --config=configs/alm_mr_register.py --workdir=/tmp/alm_register

configs/alm_mr_stage.py (the recipe of the mixer shipped before) with two changes, continued
from that mixer (train.init_params_from = 'pretrained:alm_mr'; every array it has is taken):
(1) each channel's running register and the relation term over the other channels
(config.model.register, alm_jax/models/register.py), whose output layer starts at zero so
training starts from the shipped mixer, learning at three times the rate of the rest; the
melody is often the same instrument as the inner voices, and only where it sits says which
it is; (2) a 300 ms gain ramp (config.model.gain_smooth_s), which validation put at 1.25
against 1.55 dB/s of gain change for 0.02 dB of balance. 2400 steps on rendered_live default +
stage (120 per epoch), the last 720 at a tenth of the rate; about 40 minutes on the 2 CPU
cores. Resumable. Figures: docs/results_notes.md.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_stage').get_config()
  config.model.register.enabled = True
  config.model.gain_smooth_s = 0.3
  train = config.train
  train.init_params_from = 'pretrained:alm_mr'
  train.learning_rate = 3e-4
  train.lr_scales = (('relation', 3.0),)
  train.num_epochs = 20
  train.lr_boundaries_epochs = (14,)
  train.eval_every_steps = 1200
  return config
