"""The first run of `pretrained:alm_mr_stereo`'s chain: the `pretrained:alm_mr` mixer with pans.

    python -m alm_jax.main --config=configs/pretrained_alm_mr_stereo.py --workdir=/tmp/alm_stereo

configs/alm_mr_register.py (the shipped mono recipe: the student embedding lagged by 8 F2 frames,
gains staged from each channel's level and ramped, each channel's register and the relation
term over the others) with a pan per channel and F2 frame (config.model.outputs) from a pan head
that also reads the channel's embedding and a relation term of its own (docs/model.md,
"Stereo": not in the paper), trained on the MR-STFT of the stereo mix's mid and side and the
known-pan term against rendered_live's designed placement, on both corpora. It starts from the
shipped mono mixer (train.init_params_from): every network it shares starts trained, the pan
head's parts fresh and learning at ten times the rate of the rest (train.lr_scales), so the
placement is learnt without unlearning the balance. 2400 steps, about 26 minutes on the 2 CPU
cores. Resumable. The model card (docs/pretrained_stereo.md) says which step was shipped and
what it scores.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_register').get_config()
  config.model.outputs = ('gain', 'pan')
  # The pan head's own relation term, sharper than the gain head's: with the shared features
  # alone the pans of two inner voices agreed with the design half the time (docs/results_notes.md).
  config.model.register.pan_relation = True
  # ... and the channel's embedding: encoder 3's features, trained for levels, hardly say what a
  # part is (with them alone the comping parts' pans stayed at the centre, docs/results_notes.md).
  config.model.pan_embedding = True
  # The side MR-STFT at 0.2, not 1: it cannot tell left from right (|S| is the same either way),
  # and where a part's side is not yet known it pays to put every part on one side, which
  # pulled every spread part and the hats to the left in the runs before (docs/results_notes.md).
  config.loss.side_weight = 0.2
  # The known-pan term at 10: at 1 the side MR-STFT outweighed it and every spread part, the hats
  # too (always right in the design), drifted left (validation pan error 0.226 against the
  # all-centre 0.202; at 10: 0.194, docs/results_notes.md).
  config.loss.pan_weight = 10.0
  train = config.train
  train.init_params_from = 'pretrained:alm_mr'
  train.learning_rate = 3e-4
  train.lr_scales = (('pan_mlp', 10.0), ('pan_relation', 10.0), ('pan_embed', 10.0))
  # Both corpora (the stage's bands have designed placements too): 120 steps per epoch; 2400
  # steps, the last 720 at the decayed rate.
  train.num_epochs = 20
  train.lr_boundaries_epochs = (14,)
  train.eval_every_steps = 1200
  train.freeze_embedding_epochs = train.num_epochs
  return config
