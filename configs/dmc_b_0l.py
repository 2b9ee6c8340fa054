"""DMC-B-0L: the DMC architecture with the AiLive Mixer's training strategies.

Bleed simulation and level randomisation on; one gain per F1 frame (975 ms,
non-overlapping, as ALM-SR) applied with the one-frame zero-latency shift, so the
mix is causal. See docs/baselines.md.

    python -m alm_jax.main --config=configs/dmc_b_0l.py --workdir=/tmp/dmc_b_0l

configs/dmc_og.py with those three changes.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('dmc_og').get_config()
  config.model.zero_latency = True  # gain predicted on frame t is applied to frame t + 1
  config.model.dmc_per_frame = True  # one gain per F1 frame
  config.data.bleed.enabled = True
  config.data.levels.enabled = True
  return config
