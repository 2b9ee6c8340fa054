"""The stereo mixer's pan heads on the shipped mono mixer's networks (issue 32).

    python -m alm_jax.main --config=configs/alm_mr_stereo_graft.py --workdir=/tmp/alm_stereo_graft

`pretrained:alm_mr_stereo` shares its gain path with the mono mixer it was trained from, run 3;
the mono mixer shipped now is run 15, run 3 continued on `rendered_live` 1.1.0's many kits
(docs/pretrained.md), and issue 32 asks that the stereo mixer's gains be no worse than the mono
mixer's. The shipped stereo recipe (configs/alm_mr_stereo_layout_wide2.py) with its parameters
from two runs in turn (`train.init_params_from`, a later one over an earlier one): everything
from `pretrained:alm_mr_stereo`, then every network the two share from run 15 (its workdir,
configs/alm_mr_kits.py's; `pretrained:alm_mr` holds the same parameters), so the pan heads (the pan MLP, its relation and embedding terms, the
layout) are the stereo mixer's and the rest is run 15's. 1200 steps on 1.1.0, the last 240 at a
tenth of the rate, the pan heads at ten times it; about 17 minutes on the 2 CPU cores.
Resumable. Figures: docs/results_notes.md.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_stereo_layout_wide2').get_config()
  config.train.init_params_from = 'pretrained:alm_mr_stereo,/tmp/alm_kits'  # then run 15
  return config
