"""ALM-MR: the AiLive Mixer in multi-rate mode (F1 = 975 ms, F2 = 50 ms), the paper's recipe.

    python -m alm_jax.main --config=configs/mr.py --workdir=/tmp/alm_mr

Exactly configs/base.py, whose values are this recipe (every field is listed there).
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  return _BASE['get_config']()
