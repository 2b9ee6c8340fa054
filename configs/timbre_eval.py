"""rendered_live's evaluation with every channel heard through a random equaliser (unseen-sounding).

    python tools/role_errors.py --data_config=configs/timbre_eval.py --split=validation \
        --checkpoints=PRESET=configs/loudness_preset.py,ALM-MR=pretrained:alm_mr

configs/pretrained_alm_mr.py's data settings (the evaluation of docs/results.md) with
config.data.timbre on for the evaluation batches too (alm_jax/data/timbre.py). The validation
split shares its soundfonts with training and the test split does not; this is a stand-in on
validation for channels that sound other than the training ones, for choosing between recipes
without reading the test split. It favours a mixer trained with the same equaliser.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['load']('pretrained_alm_mr').get_config()
  config.data.timbre.enabled = True
  config.data.timbre.in_eval = True
  return config
