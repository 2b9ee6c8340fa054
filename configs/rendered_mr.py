"""A small ALM-MR trained on `rendered_live` (sampled instruments), sized for 2 CPU cores.

    python -m alm_jax.main --config=configs/rendered_mr.py --workdir=/tmp/alm_rendered

Needs no download: `rendered_live` is rendered on first use from the music21
corpus with FluidSynth and Debian soundfonts (see docs/data.md for the apt-get
line). configs/quickstart.py's small networks, up to 8 channels, and a run of
about half an hour.
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: quickstart.py is found next to this file.
_QUICKSTART = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('quickstart.py')))


def get_config():
  config = _QUICKSTART['get_config']()
  config.model.max_channels = 8  # rendered_live songs have 3-8 channels

  data = config.data
  data.name = 'rendered_live'
  data.max_raw_tracks = 8

  # 240 train songs / batch 4 = 60 steps per epoch; 6 epochs = 360 steps of ~3-5 s
  # on 2 CPU cores (8 channels), about 20-30 minutes once the dataset is built.
  train = config.train
  train.num_epochs = 6
  train.eval_every_steps = 120
  train.checkpoint_every_steps = 60
  return config
