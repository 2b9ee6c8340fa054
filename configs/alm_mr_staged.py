"""ALM-MR that knows its instruments: the distilled student embedding and gains staged from each channel's level.

    python -m alm_jax.main --config=configs/alm_mr_staged.py --workdir=/tmp/alm_staged

configs/pretrained_alm_mr.py (the first shipped recipe, which the baselines of docs/results.md
keep) with three changes (why: docs/model.md, "Staged gains"; figures: docs/results_notes.md):
(1) the `student` embedding (distilled from musicnn, alm_jax/embeddings/student.py; shipped
weights, frozen throughout) on a 3 s F1 frame read every second, so the mixer hears what each
channel is; (2) the gain is an offset from a causal staging of each channel's running active
level (config.model.gain_reference = 'staging', alm_jax/models/staging.py), so training starts
from an equal-level preset and learns the role offsets; (3) wider networks (d_model and GRU 64)
and 6 s segments, 4200 steps. Resumable: the same command continues from the newest checkpoint.
The shipped `pretrained:alm_mr` is this recipe's step 4200 continued by configs/alm_mr_stage.py
(docs/pretrained.md).
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: pretrained_alm_mr.py is found next to this file.
_RECIPE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('pretrained_alm_mr.py')))


def get_config():
  config = _RECIPE['get_config']()
  model = config.model
  model.embedding.name = 'student'
  model.embedding.dim = 200
  model.embedding.weights = ''  # '' = the shipped alm_jax/embeddings/weights/student_musicnn.npz
  model.f1_ms = 3000.0  # the student's (musicnn's) patch: 3 s
  model.f1_stride = 20  # a new F1 frame every 20 F2 frames (1 s): roles change slowly
  model.gain_reference = 'staging'
  model.d_model = 64
  model.encoder.mlp_dim = 128
  model.gru_hidden = 64
  model.mlp_dims = (64, 32)
  config.data.segment_seconds = 6.0

  train = config.train
  # 60 steps per epoch: 4200 steps, the last 1200 at the decayed rate; about 70 minutes on this
  # project's 2 CPU cores (1 step/s; validation on 4 s segments every 1200 steps).
  train.num_epochs = 70
  train.lr_boundaries_epochs = (50,)
  train.eval_every_steps = 1200
  train.freeze_embedding_epochs = train.num_epochs  # the student stays as distilled
  return config
