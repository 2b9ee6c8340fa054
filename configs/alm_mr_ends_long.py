"""Run 8 (issue 33): run 7 (configs/alm_mr_ends.py) continued longer at the full learning rate.

    python -m alm_jax.main --config=configs/alm_mr_ends_long.py --workdir=/tmp/alm_ends_long

tools/loss_optimum.py put the training loss's own preferred static gains within 0.2 dB of the
designed melody, where runs 3 to 7 left it 2.2 dB low on validation, and their role offsets are
the same on the training split: the mixer underfits its loss. Runs 5 to 7 were 2400-step
continuations at 3e-4; this one is 3600 steps at the first recipe's 1e-3, the last 960 at a
tenth, from run 7's mixer (train.init_params_from = its workdir, step 2400; set it to where that
run is). About 55 minutes on the 2 CPU cores. Resumable. Stopped at step 1710: at step 1200 its
validation balance error (4 s segments) was 4.02 dB against 3.82 at step 0, and
configs/alm_mr_embed_level.py (run 9) had a cause to test first. Figures: docs/results_notes.md.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_ends').get_config()
  train = config.train
  train.init_params_from = '/tmp/alm_ends'  # configs/alm_mr_ends.py's workdir (2400 steps)
  train.learning_rate = 1e-3
  train.lr_scales = ()
  train.num_epochs = 30  # 120 steps per epoch (rendered_live default + stage)
  train.lr_boundaries_epochs = (22,)
  train.eval_every_steps = 1200
  return config
