"""configs/alm_mr_stereo_layout.py, then the pan relation reading each channel's own features.

    python -m alm_jax.main --config=configs/alm_mr_stereo_layout_own.py \
        --workdir=/tmp/alm_stereo_layout_own

After configs/alm_mr_stereo_layout.py (run in /tmp/alm_stereo_layout), whose layout learnt the
comping parts and pads but could not tell an inner voice from the melody or the bass voice of
the same sound (spread 0.52, 0.33, 0.23 on validation): the pan relation's pairs read the
channel's own features too (config.model.register.pan_relation_own), so it can count the parts
like this one above and below it. It starts from that run (the new projection at zero) and
trains 1440 steps (about 17 minutes on the 2 CPU cores), the embedding frozen. Resumable.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_stereo_layout').get_config()
  config.model.register.pan_relation_own = True
  train = config.train
  train.init_params_from = '/tmp/alm_stereo_layout'
  # 120 steps per epoch: 1440 steps, the last 360 at the decayed rate.
  train.num_epochs = 12
  train.lr_boundaries_epochs = (9,)
  train.freeze_embedding_epochs = train.num_epochs
  return config
