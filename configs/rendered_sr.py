"""ALM-SR trained as `pretrained:alm_mr` was: same data, networks, recipe and steps (docs/results.md).

    python -m alm_jax.main --config=configs/rendered_sr.py --workdir=/tmp/rendered_sr

configs/pretrained_alm_mr.py with the system of configs/sr.py (base.with_system).
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  return _BASE['with_system'](_BASE['load']('pretrained_alm_mr').get_config(), 'sr')
