"""Run 4 (issue 33): the shipped `pretrained:alm_mr` (run 3) continued with the balance term weighed up.

    python -m alm_jax.main --config=configs/alm_mr_balance.py --workdir=/tmp/alm_balance

configs/alm_mr_register.py (run 3: the register, the relation term and the gain ramp) continued
from its mixer (train.init_params_from = 'pretrained:alm_mr') for 1800 more steps on both
corpora, with the balance term at 3 per dB against 2: run 3's MR-STFT is far below the preset's
(1.09 against 1.49 on test) and its gain change below the target, while its balance error is
0.1 dB short of issue 33's, so the loss leans further towards the balance. The last 600 steps at a
tenth of the rate. About 30 minutes on the 2 CPU cores. Resumable. Figures: docs/results_notes.md.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_register').get_config()
  config.loss.balance_weight = 3.0
  train = config.train
  train.init_params_from = 'pretrained:alm_mr'
  train.learning_rate = 1e-4
  train.lr_scales = ()
  train.num_epochs = 15
  train.lr_boundaries_epochs = (10,)
  train.eval_every_steps = 900
  return config
