"""Run 9 (issue 33): `pretrained:alm_mr` (run 3) continued with the embedding's patches at one level.

    python -m alm_jax.main --config=configs/alm_mr_embed_level.py --workdir=/tmp/alm_embed_level

The student embedding was distilled on 3 s frames each scaled to one active level (-20 dBFS),
and the role-aware preset feeds it frames at that level, but the mixer fed it each channel as
it came, up to 24 dB off that level in training (config.data.levels); musicnn's log-mel is not
level-blind (log10(10000 x + 1)), so what the student says a channel is moved with its input
level. tools/embedding_levels.py: from the channels as the mixer hears them the student's
nearest role centroid names 40 % of the test split's channels (snare 23 %, hats 15 %), from
the same patches at one level 52 % (snare 69 %, hats 62 %); on the test split the mixer leaves
the snare 3.5 dB low where the preset is within 0.1 dB. config.model.embed_level brings each F1
patch to the distillation level before the embedding (Frontend.at_level; docs/model.md).
Otherwise run 3's recipe (configs/alm_mr_register.py) continued from its mixer, as runs 5 to 7
were: 2400 steps, the last 720 at a tenth of the rate; about 35 minutes on the 2 CPU cores.
Resumable. Figures: docs/results_notes.md.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_register').get_config()
  config.model.embed_level.enabled = True
  return config
