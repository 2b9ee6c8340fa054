"""The first shipped recipe (ALM-MR, small embedding), and the base of the baselines' recipes.

    python -m alm_jax.main --config=configs/pretrained_alm_mr.py --workdir=/tmp/alm_pretrained

configs/rendered_mr.py (small networks, sampled-instrument songs, bleed and level
randomisation on, zero-latency training) with a longer run, one learning-rate
decay and the two gain terms on (docs/model.md: not in the paper). It made the first
`pretrained:alm_mr` (42k parameters, 26 minutes); configs/rendered_{sr,dmc_b_0l,dmc_og}.py
derive from it, so the systems of docs/results.md train the same way. Today's shipped mixer
started from configs/alm_mr_staged.py (this recipe with the student embedding and staged gains;
its chain of runs: docs/pretrained.md). Resumable:
the same command continues from the newest checkpoint.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('rendered_mr').get_config()
  train = config.train
  # 60 steps per epoch (240 train songs, batch 4): 80 epochs = 4800 steps. The second 2400
  # steps, at the decayed rate, took the validation balance error from 4.6 to 4.4 dB
  # (docs/results_notes.md).
  train.num_epochs = 80
  train.lr_boundaries_epochs = (30,)  # learning rate / 10 after epoch 30 (step 1800)
  train.eval_every_steps = 300
  train.checkpoint_every_steps = 60
  train.keep_checkpoints = 2
  # Balance and gain-change terms (docs/model.md), weights chosen on the validation split among
  # (0, 0), (0.1, 0), (0.3, 0.3) and (1, 1) at 2400 steps (docs/results_notes.md has the runs).
  config.loss.balance_weight = 1.0
  config.loss.gain_change_weight = 1.0
  return config
