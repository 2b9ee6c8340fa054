"""The stereo mixer on the mono mixer of run 17: its pan heads grafted onto those networks (issue 32).

    python -m alm_jax.main --config=configs/alm_mr_stereo_roles.py --workdir=/tmp/alm_stereo_roles

`pretrained:alm_mr_stereo` shares its gain path with the mono mixer it was trained from (run 3).
Issue 32 asks that the stereo mixer's gains be no worse than the mono mixer's, and the mono
mixer moved on (run 17: each patch at the channel's running level, named roles, the many kits
of `rendered_live` 1.1.0; docs/results_notes.md). Here the shipped stereo
recipe (configs/alm_mr_stereo_layout_wide2.py) takes that mono mixer's settings, and its
parameters start from two runs in turn (`train.init_params_from`, a later one over an earlier
one): everything from `pretrained:alm_mr_stereo`, then every network the two share from run 17,
so the pan heads (the pan MLP, its relation and embedding terms, the layout) are the stereo
mixer's and the rest is run 17's. 1200 steps, the last 240 at a tenth of the rate, the pan heads
at ten times it; about 20 minutes on the 2 CPU cores. Resumable.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_stereo_layout_wide2').get_config()
  mono = _BASE['load']('alm_mr_roles_kits').get_config()
  config.model.embed_level = mono.model.embed_level
  config.model.roles = mono.model.roles
  config.train.lr_scales = tuple(config.train.lr_scales) + (('relation', 3.0), ('role_offsets', 300.0))
  # configs/alm_mr_roles_kits.py's workdir (run 17) over the shipped stereo mixer.
  config.train.init_params_from = 'pretrained:alm_mr_stereo,/tmp/alm_roles_kits'
  return config
