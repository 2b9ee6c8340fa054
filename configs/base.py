"""Every config field, once, with the paper's ALM-MR recipe as its values; the other configs override it.

    python -m alm_jax.main --config=configs/base.py --workdir=/tmp/alm   # same as configs/mr.py

The variants (mr.py, sr.py, quickstart.py, dmc_og.py, dmc_b_0l.py, tiny.py) call
`load('base').get_config()` and change only what differs, as flax's
examples/imagenet/configs do. Config files are loaded by path (ml_collections'
config_flags, tests, bench/), not as a package, so they load each other with
`load`, relative to this file, from any working directory.
"""
import importlib.util
import pathlib

import ml_collections


def load(name: str):
  """The module configs/<name>.py (loaded by its path next to this file)."""
  path = pathlib.Path(__file__).resolve().with_name(f'{name}.py')
  spec = importlib.util.spec_from_file_location(f'alm_jax_configs_{name}', path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def get_config():
  """The full config of ALM-MR with the paper's recipe; every field any config reads."""
  config = ml_collections.ConfigDict()
  config.seed = 0

  # ---- model -------------------------------------------------------------
  model = config.model = ml_collections.ConfigDict()
  model.name = 'alm'
  model.sample_rate = 44100
  model.f1_ms = 975.0  # one VGGish example
  model.f2_ms = 50.0
  model.f1_stride = 6  # F2 frames per F1 frame: a new F1 frame every 300 ms
  # F2 frames after an F1 frame's end before its embedding is used (0: at once). A lag L > 0
  # spreads the embedding's work over L frames (a part of the channels each) when streaming.
  model.f1_lag = 0
  model.max_channels = 8
  model.zero_latency = True
  model.initial_gain = 1.0  # applied to the first F2 frame in zero-latency mode
  # A causal ramp of the predicted gains in dB (frames.smooth_gains): a one-pole with this time
  # constant, from the gain in force (0: none, the paper). Offline, streamed and exported alike.
  model.gain_smooth_s = 0.0
  model.d_model = 128
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
  model.embedding.name = 'vggish'  # 'vggish' | 'small'
  model.embedding.dim = 128
  model.embedding.weights = ''  # path to vggish_model.ckpt or vggish-*.pth
  model.embedding.fc2_relu = False  # TF release: linear fc2; torchvggish: ReLU
  model.embedding.small_features = (32, 64, 64)
  # Each F1 frame's log-mel patch brought to one level before the embedding (Frontend.at_level):
  # the student was distilled on frames at one active level, and a channel's input level is not
  # what it is. Off: the paper's model (and every mixer shipped before it).
  # Training only: the fraction of channels whose segment is heard without its embedding.
  model.embed_dropout = 0.0
  model.embed_level = ml_collections.ConfigDict()
  model.embed_level.enabled = False
  # Mean mel-band power in dB (Frontend.mel_power's units): for musicnn's front end (the
  # student's), the median over 3 s frames of the example song's channels each at -20 dBFS
  # active level, the level the student was distilled at.
  model.embed_level.db = -9.0
  model.embed_level.max_boost_db = 30.0  # near-silence is not raised further
  # What a patch's level is: 'patch', its own mean mel-band power (brought to `db`); 'running',
  # the channel's running active level as the patch ends (the staging's; brought to
  # `active_db`, so a patch of bleed while the channel rests stays quiet). 'running' needs
  # gain_reference = 'staging'.
  model.embed_level.reference = 'patch'
  model.embed_level.active_db = -20.0  # dBFS RMS: the student's distillation level
  # Each channel's role named from its running mean embedding, with a learned level per role
  # added to the staging's (alm_jax/models/roles.py; needs gain_reference = 'staging').
  model.roles = ml_collections.ConfigDict()
  model.roles.enabled = False
  model.roles.centroids = ''  # '' = alm_jax/embeddings/weights/role_centroids_<embedding>.npz
  model.roles.gate_db = 15.0  # a frame names the role if within this of the running level
  # What the networks read of each F1 frame: 'embedding' (the embedding network's outputs) or
  # 'similarity' (their cosine to each role centroid, docs/model.md "Named roles").
  model.roles.input = 'embedding'

  model.encoder = ml_collections.ConfigDict()
  model.encoder.num_layers = 1
  model.encoder.num_heads = 2
  model.encoder.mlp_dim = 2048  # PyTorch TransformerEncoderLayer default
  model.encoder.dropout = 0.1

  model.gru_hidden = 128
  model.mlp_dims = (64, 32)
  model.gain_activation = 'softplus'  # 'softplus' | 'relu'
  # ('gain',): a gain per channel and F2 frame, a mono mix (the paper). ('gain', 'pan'): also a
  # pan (constant-power law, alm_jax/stereo.py), a stereo mix (docs/model.md, "Stereo").
  model.outputs = ('gain',)
  # 'none': the MLP's output through gain_activation is the gain (the paper). 'staging': it is an
  # offset (x staging.offset_scale_db) from a causal staging of each channel's running active
  # level at staging.level_db (alm_jax/models/staging.py; docs/model.md, "Staged gains").
  model.gain_reference = 'none'
  model.staging = ml_collections.ConfigDict()
  model.staging.level_db = -20.0  # active level (dBFS RMS) an offset of 0 stages a channel to
  model.staging.offset_scale_db = 10.0  # dB per unit of the MLP's output
  model.staging.active_range_db = 40.0  # active frames: within this of the loudest so far
  model.staging.time_constant_s = 10.0  # the running level: mean of all active frames, then this
  model.staging.smooth_s = 0.0  # then smoothed in dB with this time constant (0: not smoothed)
  model.staging.min_gain_db = -40.0
  model.staging.max_gain_db = 30.0
  # Each channel's running register and the relation term the head adds from the others'
  # (alm_jax/models/register.py; docs/model.md, "Register"). Off: the paper's model.
  # A stereo model's pan head also reads each channel's embedding (a projection that starts
  # at zero; docs/model.md, "Stereo").
  model.pan_embedding = False
  model.register = ml_collections.ConfigDict()
  model.register.enabled = False
  model.register.n_fft = 2048  # samples of each F2 frame's end its spectrum reads
  model.register.time_constant_s = 10.0  # the running register: mean of all frames, then this
  model.register.relation_dim = 32  # features per pair of channels
  model.register.sharpness = 1.0  # per octave: tanh(sharpness x register difference) in the term
  # The ends term: whether each channel is the top part or the bottom one (register.Ends).
  model.register.ends = False
  model.register.ends_sharpness = 8.0  # per octave
  # A stereo model's pan head with a relation term of its own, sharper (per octave) than the
  # gain head's: a spread part's side is its rank among the parts like it (docs/model.md).
  model.register.pan_relation = False
  model.register.pan_sharpness = 4.0
  model.register.pan_relation_own = False  # its pairs read the channel's own features too
  # ... and the layout term: spread parts to alternate sides in order of register, the network
  # saying which parts are spread and how wide (register.Layout; docs/model.md, "Stereo").
  model.register.pan_layout = False
  model.register.layout_width_init = 0.0  # the layout's width at the start (0: off until learnt)

  # ---- loss --------------------------------------------------------------
  loss = config.loss = ml_collections.ConfigDict()
  loss.fft_sizes = (512, 1024, 4096)
  loss.win_lengths = (440, 884, 3528)
  loss.hop_fraction = 0.25
  loss.w_sc = 1.0
  loss.w_log_mag = 1.0
  loss.eps = 1e-8
  # Weights per dB of two terms on the gains (docs/model.md): the supervised balance term
  # (losses.balance_loss, data with known mixing gains) and the gain-change penalty
  # (losses.gain_change_loss). 0 and 0 are the paper's loss, MR-STFT alone.
  loss.balance_weight = 0.0
  loss.gain_change_weight = 0.0
  # Models with pans only (docs/model.md, "Stereo"): the MR-STFT is taken on the stereo mix's mid
  # and side; side_weight weighs the side (difference) term, pan_weight a known-pan term
  # (losses.pan_loss, data with a designed placement).
  loss.side_weight = 1.0
  loss.pan_weight = 0.0
  # ... and spread_weight which channels the pan layout spreads (losses.spread_loss; with
  # config.model.register.pan_layout only).
  loss.spread_weight = 0.0
  # ... and pan_width_weight the pans' widths, blind to their sides (losses.pan_loss, width_only).
  loss.pan_width_weight = 0.0

  # ---- data --------------------------------------------------------------
  data = config.data = ml_collections.ConfigDict()
  data.name = 'medleydb'
  data.data_dir = ''  # tfds data_dir; '' = the tfds default
  data.manual_dir = ''  # where MedleyDB's Audio/ (and Metadata/) folders live
  data.train_also = ()  # further datasets whose train splits join data.name's (pipeline.corpora)
  data.max_raw_tracks = 8
  data.has_bleed = 'any'  # MedleyDB: 'any' | 'yes' | 'no', the YAML's has_bleed flag
  data.split_file = ''  # MedleyDB: a JSON of track ids per split; '' = the hash split
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
  data.bleed.enabled = True
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
  data.levels.enabled = True
  data.levels.pre_bleed_db = (-12.0, 12.0)
  data.levels.post_bleed_db = (-12.0, 12.0)
  # Each training source through its own random equaliser, RMS kept (alm_jax/data/timbre.py).
  data.timbre = ml_collections.ConfigDict()
  data.timbre.enabled = False
  data.timbre.tilt_db = 6.0  # uniform +-, at 125 Hz and 8 kHz against 1 kHz
  data.timbre.bell_db = 6.0  # each bell's gain, uniform +-
  data.timbre.bells = 2
  data.timbre.in_eval = False  # also the evaluation batches (unseen-sounding channels)

  # ---- training ----------------------------------------------------------
  train = config.train = ml_collections.ConfigDict()
  train.batch_size = 4
  train.num_epochs = 5000
  train.steps_per_epoch = -1  # -1: ceil(train songs / batch_size)
  train.learning_rate = 1e-3
  train.lr_boundaries_epochs = (100, 1000, 2500)
  train.lr_decay = 0.1
  train.lr_scales = ()  # ((top-level param name, factor), ...): that sub-tree's rate x factor
  train.weight_decay = 1e-2
  train.freeze_embedding_epochs = 100  # params['embedding'] not updated before this epoch
  # A trained model (anything --checkpoint takes) whose parameters start every one of this model's
  # that has the same name and shape (train.warm_start); '' = all fresh. Several, comma-separated,
  # are taken in turn, a later one over an earlier one (a stereo mixer's pan heads from one run,
  # the networks they share with a newer mono mixer from that).
  train.init_params_from = ''
  train.grad_clip_norm = 0.0  # 0 disables
  # Memory (alm_jax/gradients.py): k micro-batches per update (the same update as one batch
  # of batch_size), and the embedding run in rematerialised chunks of this many F1-frame
  # patches (0: off), so its backward keeps one chunk's activations instead of the batch's.
  train.grad_accum_steps = 1
  # How the k micro-batches run: 'scan' (one program), 'host' (one program per micro-batch,
  # dispatched k times: XLA:CPU runs the embedding ~20x slower inside a loop), 'auto' (host on
  # CPU, scan elsewhere). The update is the same either way.
  train.grad_accum_loop = 'auto'
  train.remat_embedding_chunk = 0
  train.log_every_steps = 50  # metrics to the host, console and TensorBoard
  train.eval_every_steps = 1000  # validation (and at the last step); <= 0: none
  train.checkpoint_every_steps = 1000  # async orbax saves (and at the last step)
  train.keep_checkpoints = 3
  train.compute_dtype = 'float32'  # 'bfloat16' on GPU/TPU; parameters and loss stay float32
  return config


# Where a system differs from ALM-MR: its model and the per-example randomisation it trains with.
SYSTEM_FIELDS = ('model', 'data.bleed.enabled', 'data.levels.enabled')


def _flat(section, prefix=''):
  out = {}
  for key, value in section.items():
    if isinstance(value, ml_collections.ConfigDict):
      out.update(_flat(value, f'{prefix}{key}.'))
    else:
      out[f'{prefix}{key}'] = value
  return out


def with_system(config, name: str):
  """`config` with the system of configs/<name>.py: every SYSTEM_FIELDS value that file changes.

  The fields configs/<name>.py sets differently from this file's get_config() (or adds, as
  the DMC's) are copied into `config`; the rest of `config` (data, training, and the
  model's sizes where the system keeps them) stays. So one training recipe trains every
  system: configs/rendered_sr.py is `with_system(pretrained_alm_mr, 'sr')`.
  """
  base, system = _flat(get_config()), _flat(load(name).get_config())
  for key, value in system.items():
    if not any(key == f or key.startswith(f + '.') for f in SYSTEM_FIELDS):
      continue
    if key in base and base[key] == value:
      continue
    *parents, leaf = key.split('.')
    section = config
    for p in parents:
      section = section[p]
    section[leaf] = value
  return config
