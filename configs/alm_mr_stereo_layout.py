"""The stereo recipe with the layout term: spread parts to alternate sides by register.

    python -m alm_jax.main --config=configs/alm_mr_stereo_layout.py --workdir=/tmp/alm_stereo_layout

The first stereo recipe (configs/pretrained_alm_mr_stereo.py) with
config.model.register.pan_layout (alm_jax/models/register.py, `Layout`): the pan head says per
channel whether it is a spread part and how wide it goes, and the side follows from its rank in
register among the spread parts, as the designed placement lays them out. It starts from the
stereo mixer of configs/pretrained_alm_mr_stereo.py, trained in /tmp/alm_stereo (shipped as
`pretrained:alm_mr_stereo` until this chain's last run replaced it; every leaf but the
layout's trained; the layout's width starts at zero, so at step 0 it is that mixer) and trains
1200 steps (about 13 minutes on the 2 CPU cores), the pan head's parts at ten times the rate of
the rest. The chain to the shipped mixer: docs/pretrained_stereo.md. Resumable.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('pretrained_alm_mr_stereo').get_config()
  config.model.register.pan_layout = True
  # Which parts are spread is taught (losses.spread_loss): left to the pan term alone it was
  # never found, from a width of zero (validation pan error 0.183 -> 0.181 in 1200 steps: no
  # width, no gradient for the spread) or of 0.5 (the spread of every part went to 0 within
  # 600 steps, 0.187: while the spread parts are unknown the sides the layout gives are noise).
  config.loss.spread_weight = 1.0
  train = config.train
  train.init_params_from = '/tmp/alm_stereo'
  train.lr_scales = tuple(train.lr_scales) + (('pan_layout', 10.0),)
  # 120 steps per epoch: 1200 steps, the last 360 at the decayed rate.
  train.num_epochs = 10
  train.lr_boundaries_epochs = (7,)
  train.eval_every_steps = 600
  train.freeze_embedding_epochs = train.num_epochs
  return config
