"""Run 9 (issue 33): run 8 (configs/alm_mr_ends_long.py) with the embedding's patches at one level.

    python -m alm_jax.main --config=configs/alm_mr_embed_level.py --workdir=/tmp/alm_embed_level

The student embedding was distilled on 3 s frames each scaled to one active level (-20 dBFS),
and the role-aware preset feeds it frames at that level, but the mixer fed it each channel as
it came, up to 24 dB off that level in training (config.data.levels); musicnn's log-mel is not
level-blind (log10(10000 x + 1)), so what the student says a channel is moved with its input
level. On the test split the preset names the snare to within 0.1 dB of its designed level and
the mixer leaves it 3.5 dB low. config.model.embed_level brings each F1 patch to the
distillation level before the embedding (Frontend.at_level; docs/model.md). Otherwise run 8's
recipe: from run 7's mixer, 3600 steps at 1e-3, the last 960 at a tenth, so the two differ by
the level alone. Resumable. Figures: docs/results_notes.md.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_ends_long').get_config()
  config.model.embed_level.enabled = True
  return config
