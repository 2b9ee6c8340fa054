"""Run 19 (issue 33): run 17 with every training channel through a random equaliser.

    python -m alm_jax.main --config=configs/alm_mr_roles_kits_timbre.py --workdir=/tmp/alm_roles_kits_timbre

Run 17 (configs/alm_mr_roles_kits.py: patches at each channel's running level, named roles, on
1.1.0's many kits) is the best run on every validation view, and on the README example, a kit
and sounds it never heard, it leaves the hats and snare 5 to 6 dB low and loses to the
equal-loudness preset. The random equaliser (`config.data.timbre`) made run 15's successor lean
less on the training sounds (README 3.28 -> 3.14 dB, run 16). Run 17's recipe with it, continued
from run 17: 2400 steps, the last 720 at a tenth of the rate; 28 minutes on the 2 CPU cores.
Resumable. Figures: docs/results_notes.md.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_roles_kits').get_config()
  config.data.timbre.enabled = True
  config.train.init_params_from = '/tmp/alm_roles_kits'  # configs/alm_mr_roles_kits.py's workdir
  return config
