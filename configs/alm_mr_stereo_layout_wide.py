"""configs/alm_mr_stereo_layout_own.py continued, the spread term at 5 and a term on the widths.

    python -m alm_jax.main --config=configs/alm_mr_stereo_layout_wide.py \
        --workdir=/tmp/alm_stereo_layout_wide

The run before (configs/alm_mr_stereo_layout_spread5.py: the own-channel config with the
spread term at 5, in /tmp/alm_stereo_layout_sw5) placed the spread parts on the designed side (the inner voices 84 %
of the time) but at a third of the designed width: its layout's width w grew to about 0.25
where about 1 is needed, and at forty times the base rate it did not grow faster (validation
pan error 0.170 -> 0.177 at step 600). Where a part's side is uncertain the known-pan term pays
a wrong side as much as a right one earns; the width term (config.loss.pan_width_weight,
losses.pan_loss width_only) teaches how far each part goes, blind to its side. This run starts
from that one with the width term at 10, as the known-pan term, and trains 1200 steps (about
14 minutes on the 2 CPU cores), the embedding frozen. Resumable.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_stereo_layout_spread5').get_config()
  config.loss.pan_width_weight = 10.0
  train = config.train
  train.init_params_from = '/tmp/alm_stereo_layout_sw5'
  # Its 1200 steps (embedding frozen throughout), the last 240 at the decayed rate.
  train.lr_boundaries_epochs = (8,)
  return config
