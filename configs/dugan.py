"""The Dugan gain-sharing automixer (alm_jax/models/dugan.py): a console automixer, nothing to train.

    python -m alm_jax.mix --checkpoint=configs/dugan.py --input=SONG_DIR --output=OUT_DIR

configs/base.py's framing (50 ms F2 frames, 8 channels) with a Dugan unit's controls.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['get_config']()
  m = config.model
  m.name = 'dugan'
  m.time_constant_s = 0.1  # level detection fast enough to follow speech and phrases
  m.weights_db = (0.0,) * 8  # per-channel weight (dB), by channel position
  m.noise_floor_dbfs = -60.0  # below it a channel is closed (the noise-floor gate)
  m.closed_gain_db = -60.0  # the gain of a closed channel
  m.nom_attenuation = True  # gains share the total: -10 log10(open mics) dB at equal levels
  return config
