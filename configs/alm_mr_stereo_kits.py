"""`pretrained:alm_mr_stereo` continued on `rendered_live` 1.1.0's many kits (issue 32, run 15's change).

    python -m alm_jax.main --config=configs/alm_mr_stereo_kits.py --workdir=/tmp/alm_stereo_kits

The stereo mixer spreads hats, comping parts and pads by what it hears a part to be; on the test
split (unseen soundfonts and kits) its pan error is 0.182 against 0.150 on validation. Version
1.1.0 of `rendered_live` trains on 22 kits and two melodic soundfonts (docs/data.md, "Drum kits
from four sources"), which took the mono mixer's validation and README figures down (run 15,
docs/results_notes.md). configs/alm_mr_stereo_layout_wide2.py (the shipped stereo recipe) from
the shipped stereo mixer on the new songs: 1200 steps, the last 240 at a tenth of the rate; about
20 minutes on the 2 CPU cores. Resumable. Not yet run (2026-12-07): the next step for issue 32.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_stereo_layout_wide2').get_config()
  config.train.init_params_from = 'pretrained:alm_mr_stereo'
  return config
