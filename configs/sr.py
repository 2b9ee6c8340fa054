"""ALM-SR: the AiLive Mixer in single-rate mode (F1 = F2 = 975 ms, non-overlapping), the paper's recipe.

    python -m alm_jax.main --config=configs/sr.py --workdir=/tmp/alm_sr

configs/base.py (ALM-MR) with the single-rate framing.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['get_config']()
  config.model.f2_ms = 975.0
  config.model.f1_stride = 1  # single rate: one F1 frame per F2 frame
  return config
