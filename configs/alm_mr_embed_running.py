"""Run 11 (issue 33): run 9 with each patch levelled by its channel's running level, not its own.

    python -m alm_jax.main --config=configs/alm_mr_embed_running.py --workdir=/tmp/alm_embed_running

Runs 9 and 10 (configs/alm_mr_embed_level*.py) brought each F1 patch to one level by its own
mean power: validation's balance error fell (2.92 -> 2.76 dB) but the README example's rose
(3.70 -> 5.58 dB, snare and hats about 7.7 dB low). Its snare and hats mics carry the kick and
each other; a patch where the channel rests is mostly that bleed, and levelled by its own power
it sounds to the embedding as loud as the channel playing. Here the patch is scaled by the
channel's running active level as the patch ends (config.model.embed_level.reference =
'running': the staging's level, which the role-aware preset stages by too) to -20 dBFS, the
student's distillation level, so a rest stays as far under the playing as it is. Otherwise run
9: run 3's recipe continued from `pretrained:alm_mr`, 2400 steps, the last 720 at a tenth of
the rate; about 35 minutes on the 2 CPU cores. Resumable. Figures: docs/results_notes.md.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_embed_level').get_config()
  config.model.embed_level.reference = 'running'
  return config
