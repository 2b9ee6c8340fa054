"""Run 13 (issue 33): run 12 with the networks reading each F1 frame as its likeness to each role.

    python -m alm_jax.main --config=configs/alm_mr_role_input.py --workdir=/tmp/alm_role_input

On the README example (its power kit is a test-split kit, unseen in training) run 11 scores 4.71
dB with its embedding and 3.47 with every channel's embedding replaced by one constant (run 3:
3.70 and 3.25), while on validation the constant costs 0.9 dB (2.80 -> 3.74): what the networks
learned from the embedding of the training kits does not carry to another kit's snare and hats.
The role centroids' names do (the role-aware preset stages the test split's snares within 0.1
dB). Here encoder 1 reads each frame's cosine to the 11 role centroids instead of the embedding
(config.model.roles.input = 'similarity', docs/model.md "Named roles"): its projection starts
fresh (a new shape), at ten times the rate of the rest. Otherwise run 12's recipe continued from
its mixer (train.init_params_from; set it to where that run is): 2400 steps, the last 720 at a
tenth of the rate; about 25 minutes on the 2 CPU cores. Resumable. Figures: docs/results_notes.md.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_roles').get_config()
  config.model.roles.input = 'similarity'
  config.train.init_params_from = '/tmp/alm_roles'  # configs/alm_mr_roles.py's workdir
  config.train.lr_scales = tuple(config.train.lr_scales) + (('embed_proj', 10.0),)
  return config
