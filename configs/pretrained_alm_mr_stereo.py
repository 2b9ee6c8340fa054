"""The shipped stereo mixer `pretrained:alm_mr_stereo`: the `pretrained:alm_mr` mixer with pans.

    python -m alm_jax.main --config=configs/pretrained_alm_mr_stereo.py --workdir=/tmp/alm_stereo

configs/alm_mr_register.py (the shipped mono recipe: the student embedding lagged by 8 F2 frames,
gains staged from each channel's level and ramped, each channel's register and the relation
term over the others, which tells the pan head where a part sits among them) with a pan per
channel and F2 frame
(config.model.outputs), trained on the MR-STFT of the stereo mix's mid and side and the
known-pan term against rendered_live's designed placement (docs/model.md, "Stereo": not in the
paper), on the default corpus. It starts from the shipped mono mixer (train.init_params_from):
every network it shares starts trained, the pan head fresh and learning at ten times the rate
of the rest (train.lr_scales), so the placement is learnt without unlearning the balance.
Resumable. The model card (docs/pretrained_stereo.md) says which step was shipped and what it
scores.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_register').get_config()
  config.data.train_also = ()  # the default corpus: 60 steps per epoch
  config.model.outputs = ('gain', 'pan')
  config.loss.side_weight = 1.0
  # The known-pan term at 10: at 1 the side MR-STFT outweighed it and every spread part, the hats
  # too (always right in the design), drifted left (validation pan error 0.226 against the
  # all-centre 0.202; at 10: 0.194, docs/results_notes.md).
  config.loss.pan_weight = 10.0
  train = config.train
  train.init_params_from = 'pretrained:alm_mr'
  train.learning_rate = 3e-4
  train.lr_scales = (('pan_mlp', 10.0),)
  # 1440 steps, the last 480 at the decayed rate.
  train.num_epochs = 24
  train.lr_boundaries_epochs = (16,)
  train.eval_every_steps = 1440
  train.freeze_embedding_epochs = train.num_epochs
  return config
