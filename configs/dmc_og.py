"""DMC-OG: the Differentiable Mixing Console as proposed (mono gain), the AiLive Mixer paper's baseline.

One gain per channel per segment: the model averages the embeddings of every F1
frame of the input it is given, so each gain depends on the whole segment (non-causal,
as published; see docs/baselines.md). Trained on MedleyDB without bleed simulation,
level randomisation or zero-latency training.

    python -m alm_jax.main --config=configs/dmc_og.py --workdir=/tmp/dmc_og
"""
import ml_collections


def get_config():
  config = ml_collections.ConfigDict()
  config.seed = 0

  # ---- model -------------------------------------------------------------
  model = config.model = ml_collections.ConfigDict()
  model.name = 'dmc'
  model.sample_rate = 44100
  model.f1_ms = 975.0  # one VGGish example
  model.f2_ms = 975.0
  model.f1_stride = 1  # F1 frames are non-overlapping, one per F2 frame
  model.max_channels = 8
  model.zero_latency = False  # the published DMC applies its gains to the segment they were computed on
  model.initial_gain = 1.0  # applied to the first F2 frame in zero-latency mode
  # True: one gain per F1 frame; False: one gain per channel per segment (the whole input),
  # from the channel's embeddings averaged over the segment's F1 frames.
  model.dmc_per_frame = False
  model.mlp_dims = (256, 256)  # post-processor hidden layers (2d -> 256 -> 256 -> 1)
  model.dmc_dropout = 0.2  # after each hidden layer of the post-processor
  model.gain_activation = 'sigmoid_db'  # sigmoid, then mapped linearly to [min_gain_db, max_gain_db]
  model.min_gain_db = -48.0  # the public DMC's range
  model.max_gain_db = 24.0

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
  model.embedding.name = 'vggish'  # 'vggish' | 'small'
  model.embedding.dim = 128
  model.embedding.weights = ''  # path to vggish_model.ckpt or vggish-*.pth
  model.embedding.fc2_relu = False  # TF release: linear fc2; torchvggish: ReLU
  model.embedding.small_features = (32, 64, 64)

  # Fields of the ALM that DMC does not read; kept so every config has the same fields.
  model.d_model = 128
  model.rms_floor_db = -100.0
  model.encoder = ml_collections.ConfigDict()
  model.encoder.num_layers = 1
  model.encoder.num_heads = 2
  model.encoder.mlp_dim = 2048
  model.encoder.dropout = 0.1
  model.gru_hidden = 128

  # ---- loss --------------------------------------------------------------
  loss = config.loss = ml_collections.ConfigDict()
  loss.fft_sizes = (512, 1024, 4096)
  loss.win_lengths = (440, 884, 3528)
  loss.hop_fraction = 0.25
  loss.w_sc = 1.0
  loss.w_log_mag = 1.0
  loss.eps = 1e-8

  # ---- data --------------------------------------------------------------
  data = config.data = ml_collections.ConfigDict()
  data.name = 'medleydb'
  data.data_dir = ''  # tfds data_dir; '' = the tfds default
  data.manual_dir = ''  # where MedleyDB's Audio/ (and Metadata/) folders live
  data.max_raw_tracks = 8
  data.segment_seconds = 20.0
  data.eval_segment_seconds = 20.0
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
  data.bleed.enabled = False  # DMC-OG: the recorded MedleyDB inputs only
  data.bleed.bank_size = 256
  data.bleed.cache_dir = ''  # '' = <workdir>/rir_bank
  data.bleed.severity_db = (-30.0, -6.0)
  data.bleed.seed = 0  # the RIR bank's seed (independent of config.seed)
  data.bleed.rir_seconds = 0.2  # impulse responses cut (with a fade) to this length
  data.bleed.rt60 = (0.2, 0.8)  # s, uniform
  data.bleed.room_min = (4.0, 4.0, 2.5)  # m (length, width, height), uniform per side
  data.bleed.room_max = (15.0, 12.0, 5.0)
  data.bleed.mic_distance = (0.03, 0.3)  # m from each close mic to its source
  data.bleed.min_source_spacing = 1.0  # m between sources
  data.bleed.max_order = 12  # image-source order cap
  data.bleed.backend = 'numpy'  # 'numpy' (scipy.fft, input pipeline) | 'jax' (jit, default device)
  data.bleed.workers = 1  # scipy.fft threads per convolution
  data.levels = ml_collections.ConfigDict()
  data.levels.enabled = False
  data.levels.pre_bleed_db = (-12.0, 12.0)
  data.levels.post_bleed_db = (-12.0, 12.0)

  # ---- training ----------------------------------------------------------
  # The AiLive Mixer paper's recipe, shared by all its systems (docs/baselines.md lists how the
  # public DMC toolkit's differs).
  train = config.train = ml_collections.ConfigDict()
  train.batch_size = 4
  train.num_epochs = 5000
  train.steps_per_epoch = -1  # -1: ceil(train songs / batch_size)
  train.learning_rate = 1e-3
  train.lr_boundaries_epochs = (100, 1000, 2500)
  train.lr_decay = 0.1
  train.weight_decay = 1e-2
  train.freeze_embedding_epochs = 100  # params['embedding'] not updated before this epoch
  train.grad_clip_norm = 0.0  # 0 disables
  train.log_every_steps = 50  # metrics to the host, console and TensorBoard
  train.eval_every_steps = 1000  # validation (and at the last step); <= 0: none
  train.checkpoint_every_steps = 1000  # async orbax saves (and at the last step)
  train.keep_checkpoints = 3
  train.compute_dtype = 'float32'  # 'bfloat16' on GPU/TPU; parameters and loss stay float32
  return config
