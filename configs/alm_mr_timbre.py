"""Run 6 (issue 33): `pretrained:alm_mr` (run 3) continued with timbre augmentation. Not shipped.

    python -m alm_jax.main --config=configs/alm_mr_timbre.py --workdir=/tmp/alm_timbre

configs/alm_mr_register.py (run 3, the recipe of the mixer shipped now) continued from that mixer
(train.init_params_from = 'pretrained:alm_mr') with one change: each training source passes
through its own random equaliser before bleed (config.data.timbre, alm_jax/data/timbre.py: a
+-6 dB tilt and two +-6 dB bells, RMS kept). The training split's pitched parts come from one
soundfont and the test split's from another; the shipped mixer's role errors grow from
validation (same soundfonts) to test (snare +0.7 -> -3.5 dB, comp +0.8 -> +2.5). 2400 steps on
rendered_live default + stage, the last 720 at a tenth of the rate; about 27 minutes on the 2
CPU cores. Resumable. It changed nothing on validation (docs/results_notes.md, "Runs 5 and 6").
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_register').get_config()
  config.data.timbre.enabled = True
  return config
