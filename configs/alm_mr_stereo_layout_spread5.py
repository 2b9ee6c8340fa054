"""configs/alm_mr_stereo_layout_own.py continued with the spread term at 5 rather than 1.

    python -m alm_jax.main --config=configs/alm_mr_stereo_layout_spread5.py \
        --workdir=/tmp/alm_stereo_layout_sw5

After the own-channel run (in /tmp/alm_stereo_layout_own), whose layout spread the melody and
the bass voice of the inner voices' sound almost as much as the inner voices (0.38, 0.41
against 0.74 on validation): the spread term weighs five times as much. It starts from that run
and trains 1200 steps (about 13 minutes on the 2 CPU cores), the embedding frozen. Resumable.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_stereo_layout_own').get_config()
  config.loss.spread_weight = 5.0
  train = config.train
  train.init_params_from = '/tmp/alm_stereo_layout_own'
  # 120 steps per epoch: 1200 steps, the last 360 at the decayed rate.
  train.num_epochs = 10
  train.lr_boundaries_epochs = (7,)
  train.freeze_embedding_epochs = train.num_epochs
  return config
