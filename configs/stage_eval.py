"""The stage corpus for evaluation: `rendered_live/stage` (bands miked piece by piece on a stage layout).

    python -m alm_jax.evaluate --data_config=configs/stage_eval.py --split=test \
        --checkpoints=ALM-MR=pretrained:alm_mr,PRESET=configs/loudness_preset.py --output=/tmp/stage

configs/alm_mr_staged.py's data settings (bleed, input levels, 8 channels) on the `stage` config
of rendered_live (docs/data.md, "`rendered_live/stage`"): songs no mixer shipped here was trained
on, whose bleed comes from each song's stage layout rather than from random rooms.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_staged').get_config()
  config.data.name = 'rendered_live/stage'
  return config
