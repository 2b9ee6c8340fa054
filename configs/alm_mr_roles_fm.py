"""Run 18 (issue 33): run 17 continued on `rendered_live` 1.2.0, whose songs add FM voices.

    python -m alm_jax.main --config=configs/alm_mr_roles_fm.py --workdir=/tmp/alm_roles_fm

Run 17 (configs/alm_mr_roles_kits.py: patches at each channel's running level, named roles)
is the best of the runs on every validation view of 1.1.0, and leaves the README example's
snare and hats, a kit and sounds it never heard, 6 dB low. Version 1.2.0 adds to the training
songs a third set of pitched timbres and a kit unlike any sampled one, an OPL3 chip's FM voices
(docs/data.md, "FM voices"), as 1.1.0's kits did for the snare. Run 17's recipe continued from
run 17 on the new songs: 2400 steps, the last 720 at a tenth of the rate; about 24 minutes on
the 2 CPU cores. Resumable. Figures: docs/results_notes.md.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_roles').get_config()
  config.train.init_params_from = '/tmp/alm_roles_kits'  # configs/alm_mr_roles_kits.py's workdir
  return config
