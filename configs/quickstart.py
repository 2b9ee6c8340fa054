"""Quickstart: a small ALM-MR trained on the embedded synthetic dataset, minutes on 2 CPU cores.

    python -m alm_jax.main --config=configs/quickstart.py --workdir=/tmp/alm_quickstart

Needs no download: the `synthetic_live` dataset is generated on first use.
"""
import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  config.seed = 0

  # ---- model: ALM-MR framing, small networks --------------------------------
  model = config.model = ml_collections.ConfigDict()
  model.name = 'alm'
  model.sample_rate = 44100
  model.f1_ms = 975.0
  model.f2_ms = 50.0
  model.f1_stride = 6
  model.max_channels = 6
  model.zero_latency = True
  model.initial_gain = 1.0
  model.d_model = 32
  model.rms_floor_db = -100.0

  model.frontend = ml_collections.ConfigDict()
  model.frontend.sample_rate = 16000
  model.frontend.window_ms = 25.0
  model.frontend.hop_ms = 10.0
  model.frontend.n_fft = 512
  model.frontend.n_mels = 64
  model.frontend.fmin = 125.0
  model.frontend.fmax = 7500.0
  model.frontend.log_offset = 0.01
  model.frontend.patch_frames = 96
  model.frontend.resample_zero_crossings = 16
  model.frontend.resample_rolloff = 0.945

  model.embedding = ml_collections.ConfigDict()
  model.embedding.name = 'small'
  model.embedding.dim = 32
  model.embedding.weights = ''
  model.embedding.fc2_relu = False
  model.embedding.small_features = (16, 32, 32)

  model.encoder = ml_collections.ConfigDict()
  model.encoder.num_layers = 1
  model.encoder.num_heads = 2
  model.encoder.mlp_dim = 64
  model.encoder.dropout = 0.0

  model.gru_hidden = 32
  model.mlp_dims = (16, 8)
  model.gain_activation = 'softplus'

  # ---- loss ----------------------------------------------------------------
  loss = config.loss = ml_collections.ConfigDict()
  loss.fft_sizes = (512, 1024, 4096)
  loss.win_lengths = (440, 884, 3528)
  loss.hop_fraction = 0.25
  loss.w_sc = 1.0
  loss.w_log_mag = 1.0
  loss.eps = 1e-8

  # ---- data ----------------------------------------------------------------
  data = config.data = ml_collections.ConfigDict()
  data.name = 'synthetic_live'
  data.data_dir = ''
  data.manual_dir = ''
  data.max_raw_tracks = 6
  data.segment_seconds = 4.0
  data.eval_segment_seconds = 4.0
  data.silence_db = -60.0
  data.shuffle_seed = 0
  data.eval_segments_per_song = 1  # evaluation windows per song (evenly spaced, non-silent)
  data.on_error = 'raise'  # medleydb build: 'raise' on a bad song, or 'skip' it with a warning
  data.resample = True  # medleydb build: resample non-44.1 kHz files (else they are bad input)
  data.prefetch = 2  # finished training batches kept ready ahead of the training step
  # Threads building training batches in parallel (results do not depend on it):
  # -1 = one per usable CPU core but one, at most 16; 0 = one background thread
  # (prefetch > 0) or inline (prefetch = 0).
  data.num_workers = -1
  data.bleed = ml_collections.ConfigDict()
  data.bleed.enabled = True
  data.bleed.bank_size = 32
  data.bleed.cache_dir = ''
  data.bleed.severity_db = (-30.0, -6.0)
  data.bleed.seed = 0  # the RIR bank's seed (independent of config.seed)
  data.bleed.rir_seconds = 0.09  # impulse responses cut (with a fade) to this length
  data.bleed.rt60 = (0.2, 0.8)  # s, uniform
  data.bleed.room_min = (4.0, 4.0, 2.5)  # m (length, width, height), uniform per side
  data.bleed.room_max = (15.0, 12.0, 5.0)
  data.bleed.mic_distance = (0.03, 0.3)  # m from each close mic to its source
  data.bleed.min_source_spacing = 1.0  # m between sources
  data.bleed.max_order = 12  # image-source order cap
  data.bleed.backend = 'numpy'  # 'numpy' (scipy.fft, input pipeline) | 'jax' (jit, default device)
  data.bleed.workers = 1  # scipy.fft threads per convolution
  data.levels = ml_collections.ConfigDict()
  data.levels.enabled = True
  data.levels.pre_bleed_db = (-12.0, 12.0)
  data.levels.post_bleed_db = (-12.0, 12.0)

  # ---- training --------------------------------------------------------------
  # Sized for a few minutes on 2 CPU cores: 12 train songs / batch 4 = 3 steps per epoch,
  # 25 epochs = 75 steps of about 2.3 s CPU each, plus ~1 min of dataset generation and compiling.
  train = config.train = ml_collections.ConfigDict()
  train.batch_size = 4
  train.num_epochs = 25
  train.steps_per_epoch = -1
  train.learning_rate = 1e-3
  train.lr_boundaries_epochs = ()  # no decay in so short a run
  train.lr_decay = 0.1
  train.weight_decay = 1e-2
  train.freeze_embedding_epochs = 0  # params['embedding'] not updated before this epoch
  train.grad_clip_norm = 0.0
  train.log_every_steps = 10  # metrics to the host, console and TensorBoard
  train.eval_every_steps = 40  # validation (and at the last step); <= 0: none
  train.checkpoint_every_steps = 40  # async orbax saves (and at the last step)
  train.keep_checkpoints = 2
  train.compute_dtype = 'float32'
  return config
