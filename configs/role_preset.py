"""The role-aware preset (alm_jax/models/role_preset.py): musicnn names each channel's role, nothing to train.

    python -m alm_jax.mix --checkpoint=configs/role_preset.py --input=SONG_DIR --output=OUT_DIR

configs/base.py's framing (50 ms F2 frames, 8 channels) with musicnn (shipped weights) on a
3 s F1 frame read every second, and the role centroids shipped beside the module
(tools/role_centroids.py made them from rendered_live's train split).
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['get_config']()
  m = config.model
  m.name = 'role_preset'
  m.embedding.name = 'musicnn'  # the embedding that names the roles (pretrained, shipped)
  m.embedding.dim = 200
  m.f1_ms = 3000.0  # musicnn's training patch: 3 s
  m.f1_stride = 20  # a new F1 frame every 20 F2 frames (1 s)
  m.role_centroids = ''  # '' = alm_jax/embeddings/weights/role_centroids_<embedding>.npz
  m.lead_db = -20.0  # the lead's active level (dBFS RMS); every role sits relative to it
  m.unknown_role_db = -5.0  # role level assumed before a channel's role is named
  m.active_range_db = 40.0  # active frames: within this of the channel's loudest frame so far
  m.level_time_constant_s = 10.0  # running active level: the mean of all active frames, then this
  m.window_gate_db = 15.0  # an F1 frame names the role if within this of the active level
  m.min_gain_db = -40.0
  m.max_gain_db = 30.0
  return config
