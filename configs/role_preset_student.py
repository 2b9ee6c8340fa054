"""The role-aware preset with the distilled 'student' embedding instead of musicnn (about 1/40 of its cost).

    python -m alm_jax.mix --checkpoint=configs/role_preset_student.py --input=SONG_DIR --output=OUT_DIR

configs/role_preset.py with alm_jax/embeddings/student.py (shipped weights) naming the roles,
against the centroids of its own embeddings of rendered_live's train split
(alm_jax/embeddings/weights/role_centroids_student.npz, from tools/distill_student.py's embeddings and
tools/role_centroids.py).
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: role_preset.py is found next to this file.
_PRESET = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('role_preset.py')))


def get_config():
  config = _PRESET['get_config']()
  config.model.embedding.name = 'student'
  config.model.embedding.dim = 200
  return config
