"""DMC-OG: the Differentiable Mixing Console as proposed (mono gain), the AiLive Mixer paper's baseline.

One gain per channel per segment: the model averages the embeddings of every F1
frame of the input it is given, so each gain depends on the whole segment (non-causal,
as published; see docs/baselines.md). Trained on MedleyDB without bleed simulation,
level randomisation or zero-latency training.

    python -m alm_jax.main --config=configs/dmc_og.py --workdir=/tmp/dmc_og

configs/base.py with the DMC model (its fields are defined here) and the ALM-SR framing.
The ALM's fields that DMC does not read stay, so every config has the same fields. The
training recipe is the AiLive Mixer paper's, shared by all its systems
(docs/baselines.md lists how the public DMC toolkit's differs).
"""
import pathlib
import runpy

# Config files are loaded by path, not as a package: base.py is found next to this file.
_BASE = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name('base.py')))


def get_config():
  config = _BASE['get_config']()
  model = config.model
  model.name = 'dmc'
  model.f2_ms = 975.0
  model.f1_stride = 1  # F1 frames are non-overlapping, one per F2 frame
  model.zero_latency = False  # the published DMC applies its gains to the segment they were computed on
  # True: one gain per F1 frame; False: one gain per channel per segment (the whole input),
  # from the channel's embeddings averaged over the segment's F1 frames.
  model.dmc_per_frame = False
  model.mlp_dims = (256, 256)  # post-processor hidden layers (2d -> 256 -> 256 -> 1)
  model.dmc_dropout = 0.2  # after each hidden layer of the post-processor
  model.gain_activation = 'sigmoid_db'  # sigmoid, then mapped linearly to [min_gain_db, max_gain_db]
  model.min_gain_db = -48.0  # the public DMC's range
  model.max_gain_db = 24.0

  config.data.bleed.enabled = False  # DMC-OG: the recorded MedleyDB inputs only
  config.data.levels.enabled = False
  return config
