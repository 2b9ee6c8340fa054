"""Run 17 (issue 33): run 12 (named roles) continued on `rendered_live` 1.1.0's many kits.

    python -m alm_jax.main --config=configs/alm_mr_roles_kits.py --workdir=/tmp/alm_roles_kits

Run 12 (configs/alm_mr_roles.py: patches at the channel's running level, each channel's named
role and a learned level per role) scored best on validation of every run on 1.0.0 (2.78 dB
against run 3's 2.92) but left the README example's snare, a kit it had never heard, 8 dB low.
Run 15 showed that 1.1.0's 22 training kits carry a snare's level further (docs/data.md, "Drum
kits from four sources"). This is run 12's recipe continued from run 12 on the new songs, as run
15 continued run 3: 2400 steps, the last 720 at a tenth of the rate; about 25 minutes on the 2
CPU cores. Resumable. Figures: docs/results_notes.md.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_roles').get_config()
  config.train.init_params_from = '/tmp/alm_roles'  # configs/alm_mr_roles.py's workdir (run 12)
  return config
