"""The equal-loudness preset (alm_jax/models/loudness_preset.py): a console-style automixer, nothing to train.

    python -m alm_jax.mix --checkpoint=configs/loudness_preset.py --input=SONG_DIR --output=OUT_DIR

configs/base.py's framing (50 ms F2 frames, 8 channels) with the preset's controls.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['get_config']()
  m = config.model
  m.name = 'loudness_preset'
  m.time_constant_s = 3.0  # running loudness: a few seconds, like a short-term meter
  m.target_lufs = -23.0  # the house level of the mix (EBU R128's programme level)
  m.gate_lufs = -50.0  # quieter channels are taken as silent and hold their gain
  m.min_gain_db = -40.0
  m.max_gain_db = 20.0
  return config
