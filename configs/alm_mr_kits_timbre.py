"""Run 16 (issue 33): run 15 continued with each training channel heard through a random equaliser.

    python -m alm_jax.main --config=configs/alm_mr_kits_timbre.py --workdir=/tmp/alm_kits_timbre

Run 15 (configs/alm_mr_kits.py) trained the shipped mixer on `rendered_live` 1.1.0's 22 kits
and two melodic soundfonts; the test split and the README example are played by soundfonts and
kits it has still never heard. config.data.timbre (alm_jax/data/timbre.py: a random tilt and
bell bands per channel, its level kept) widens the timbres it hears once more. Otherwise run
15's recipe continued from its mixer (train.init_params_from; set it to where that run is):
2400 steps, the last 720 at a tenth of the rate; about 23 minutes on the 2 CPU cores.
Resumable. Figures: docs/results_notes.md.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_kits').get_config()
  config.data.timbre.enabled = True
  config.train.init_params_from = '/tmp/alm_kits'  # configs/alm_mr_kits.py's workdir
  return config
