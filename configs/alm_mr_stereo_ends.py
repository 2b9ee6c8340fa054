"""`pretrained:alm_mr_stereo` continued with the ends term: the top and the bottom part stay at the centre.

    python -m alm_jax.main --config=configs/alm_mr_stereo_ends.py --workdir=/tmp/alm_stereo_ends

The shipped stereo mixer's layout ranks the spread parts by register and alternates their
sides; its spread classifier gives a corpus work's melody and bass voice s ~ 0.27 (designed 0:
they are the top and the bottom of an ensemble of one sample), and every inner voice's rank
counts the bass voice below it, so its side blurs (docs/results_notes.md, "Where the spread
parts' sides are lost"). The ends term (config.model.register.ends, register.Ends: soft
products "no part above" and "no part below" of a running pitch, through a projection that
starts at zero) gives
the features that the spread classifier and the gain head read which channel is the top and
which the bottom. configs/alm_mr_stereo_layout_wide2.py from the shipped mixer, 1200 steps
(about 21 minutes on the 2 CPU cores), the new projection at ten times the rate. Resumable.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_stereo_layout_wide2').get_config()
  config.model.register.ends = True
  config.train.init_params_from = 'pretrained:alm_mr_stereo'
  config.train.lr_scales = tuple(config.train.lr_scales) + (('ends', 10.0),)
  return config
