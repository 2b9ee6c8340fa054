"""configs/alm_mr_stereo_layout_wide.py continued for 1200 more steps.

    python -m alm_jax.main --config=configs/alm_mr_stereo_layout_wide2.py \
        --workdir=/tmp/alm_stereo_layout_wide2

The run before (in /tmp/alm_stereo_layout_wide) was still improving where the layout and the
pan MLP place the comping parts (validation, 20 s segments: their pan error 0.31 -> 0.22). This
one starts from it, the same recipe, 1200 steps (about 14 minutes on the 2 CPU cores), the
embedding frozen. Resumable.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('alm_mr_stereo_layout_wide').get_config()
  config.train.init_params_from = '/tmp/alm_stereo_layout_wide'
  return config
