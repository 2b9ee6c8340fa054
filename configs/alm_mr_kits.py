"""Run 15 (issue 33): the shipped mixer's recipe continued on `rendered_live` 1.1.0's many kits.

    python -m alm_jax.main --config=configs/alm_mr_kits.py --workdir=/tmp/alm_kits

Up to `rendered_live` 1.0.0 the training kits came from two soundfonts; the shipped mixer
learned the level of those snares and, on a kit it had never heard (the README example's),
left the snare 6.6 dB low. Version 1.1.0 draws training kits from 22 (Csound's GM kits and nine
Hydrogen kits played from their samples added) and pitched parts from two soundfonts (docs/data.md,
"Drum kits from four sources"). This is configs/alm_mr_register.py (the recipe of the shipped
`pretrained:alm_mr`, run 3) continued from that mixer on the new songs: 2400 steps at 3e-4, the
last 720 at a tenth; about 21 minutes on the 2 CPU cores. Resumable. Figures:
docs/results_notes.md.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_register').get_config()
  config.train.init_params_from = 'pretrained:alm_mr'
  return config
