"""configs/alm_mr_stereo_layout_wide2.py continued for 2400 more steps.

    python -m alm_jax.main --config=configs/alm_mr_stereo_layout_wide3.py \
        --workdir=/tmp/alm_stereo_layout_wide3

Each 1200 steps of the width-term recipe lowered the validation pan error (20 s segments: 0.158
from the spread-5 run, 0.154, 0.148), most of it on the comping parts. This one starts from the
run before (in /tmp/alm_stereo_layout_wide2), the same recipe, 2400 steps, the last 240 at the
decayed rate (about 27 minutes on the 2 CPU cores), the embedding frozen. Resumable.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_stereo_layout_wide').get_config()
  train = config.train
  train.init_params_from = '/tmp/alm_stereo_layout_wide2'
  # 120 steps per epoch: 2400 steps, the last 240 at the decayed rate.
  train.num_epochs = 20
  train.lr_boundaries_epochs = (18,)
  train.eval_every_steps = 1200
  train.freeze_embedding_epochs = train.num_epochs
  return config
