"""Run 12 (issue 33): run 11 continued with each channel's named role and a learned level per role.

    python -m alm_jax.main --config=configs/alm_mr_roles.py --workdir=/tmp/alm_roles

The role-aware preset stages each channel to its named role's designed level; on the test split
that leaves the snare within 0.1 dB and the pad within 0.2 of their design, where the shipped
mixer leaves them 3.5 dB low and 1.8 high, though the preset's misnamed channels cost it more
overall (3.52 dB against 3.00). config.model.roles (alm_jax/models/roles.py) gives the mixer the
preset's name for each channel, the nearest of the shipped student centroids to the channel's
running mean embedding over the frames where it plays, and a level per named role, learned
(`role_offsets`, from 0: the mixer starts where run 11 ended; at 300 times the rate of the rest,
train.lr_scales, as a dB table moves in steps of that size). Its patches are at the channel's
running level (run 11), the scaling the preset's centroids were made at. Otherwise run 11's
recipe continued from its mixer (train.init_params_from; set it to where that run is): 2400
steps, the last 720 at a tenth of the rate; about 25 minutes on the 2 CPU cores. Resumable.
Figures: docs/results_notes.md.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_embed_running').get_config()
  config.model.roles.enabled = True
  config.train.init_params_from = '/tmp/alm_embed_running'  # configs/alm_mr_embed_running.py's workdir
  config.train.lr_scales = tuple(config.train.lr_scales) + (('role_offsets', 300.0),)
  return config
