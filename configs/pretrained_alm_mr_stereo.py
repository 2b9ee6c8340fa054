"""The shipped stereo mixer `pretrained:alm_mr_stereo`: the `pretrained:alm_mr` recipe with pans.

    python -m alm_jax.main --config=configs/pretrained_alm_mr_stereo.py --workdir=/tmp/alm_stereo

configs/pretrained_alm_mr.py (small networks, rendered_live, bleed and levels, the balance and
gain-change terms) with a pan per channel and F2 frame (config.model.outputs), trained on the
MR-STFT of the stereo mix's mid and side and the known-pan term against rendered_live's designed
placement (docs/model.md, "Stereo": not in the paper). Shorter than the mono recipe so it fits
this project's shared 2-core machine; resumable. The model card (docs/pretrained.md) says which
step was shipped and what it scores.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('pretrained_alm_mr').get_config()
  config.model.outputs = ('gain', 'pan')
  config.loss.side_weight = 1.0
  config.loss.pan_weight = 1.0
  train = config.train
  # 780 steps (60 per epoch), the last 240 at the decayed rate: what fitted in the ~1.5 hours
  # this project's shared 2-core machine had for it (5-9 s a step at a load average of 17;
  # the mono recipe's 4800 steps took 26 minutes on the idle machine).
  train.num_epochs = 13
  train.lr_boundaries_epochs = (9,)
  train.eval_every_steps = 600
  return config
