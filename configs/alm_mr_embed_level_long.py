"""Run 10 (issue 33): run 9 (configs/alm_mr_embed_level.py) continued for another 2400 steps.

    python -m alm_jax.main --config=configs/alm_mr_embed_level_long.py --workdir=/tmp/alm_embed_level_long

Run 9's validation balance error (4 s segments) fell 3.95 (step 0: run 3 on patches at one
level) -> 3.92 (1200) -> 3.80 (2400), still falling where runs 5 to 7 had stopped (3.81-3.82):
the network was still learning to read the levelled embedding. The same recipe again from run
9's mixer (train.init_params_from = its workdir; set it to where that run is): 2400 steps, the
last 720 at a tenth of the rate; about 35 minutes on the 2 CPU cores. Resumable. Figures:
docs/results_notes.md.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_embed_level').get_config()
  config.train.init_params_from = '/tmp/alm_embed_level'  # configs/alm_mr_embed_level.py's workdir
  return config
