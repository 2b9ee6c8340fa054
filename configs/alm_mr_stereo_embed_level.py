"""`pretrained:alm_mr_stereo` continued with the embedding's patches at one level (issue 32, run 9's change).

    python -m alm_jax.main --config=configs/alm_mr_stereo_embed_level.py --workdir=/tmp/alm_stereo_embed_level

The shipped stereo mixer's pans follow the roles (docs/data.md, "Stereo placement"), and what
the student embedding says a channel is moved with the channel's input level
(tools/embedding_levels.py: 40 % of the test split's channels named at their input level, 52 %
at one level; hats 15 against 62 %). config.model.embed_level brings each F1 patch to the
level the student was distilled at (configs/alm_mr_embed_level.py, docs/model.md).
configs/alm_mr_stereo_layout_wide2.py (the shipped stereo recipe) from the shipped mixer, 1200
steps (about 21 minutes on the 2 CPU cores). Resumable. Figures: docs/results_notes.md.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_stereo_layout_wide2').get_config()
  config.model.embed_level.enabled = True
  config.train.init_params_from = 'pretrained:alm_mr_stereo'
  return config
