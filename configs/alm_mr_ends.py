"""Run 7 (issue 33): `pretrained:alm_mr` (run 3) continued with the ends term: which part is the top and which the bottom.

    python -m alm_jax.main --config=configs/alm_mr_ends.py --workdir=/tmp/alm_ends

Run 3's register relation sums, over the other channels, a soft count of the parts above and
below (tanh of one unit per octave), and it left the corpus melody 2.2 dB low on validation: the
melody is its work's top voice, the same sample as the inner voices a third or more below it,
and designed 5 dB above them; and the register (a spectral centroid) orders parts by timbre as
much as by pitch. The ends term (config.model.register.ends, register.Ends) gives the head, per
channel, soft products "no part above" and "no part below" at 8 per octave of a running pitch
that reads each channel's own share of the spectrum (register.frame_pitch), through a
projection that starts at zero, so step 0 is run 3. configs/alm_mr_register.py
continued from its mixer (train.init_params_from = 'pretrained:alm_mr') for 2400 steps on both
corpora, the last 720 at a tenth of the rate, the new projection at ten times the rate (it
starts at zero and is small); about 35 minutes on the 2 CPU cores. Resumable. Figures:
docs/results_notes.md.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_register').get_config()
  config.model.register.ends = True
  config.train.lr_scales = tuple(config.train.lr_scales) + (('ends', 10.0),)
  return config
