"""The AiLive Mixer (ALM): per-channel gains (and, optionally, pans) per F2 frame, zero latency.

    audio [b, c, n] --F1 frames--> log-mel -> embedding -> encoder 1 (channels)   (F1 rate)
                     --F2 frames--> RMS -> projection + PReLU with the embedding
                                    -> encoder 2 (channels) -> GRU (time)
                                    -> encoder 3 (channels) -> MLP -> gain >= 0   (F2 rate)
                                    -> pan MLP -> pan in [-1, 1]   (config.model.outputs
                                                                    = ('gain', 'pan') only)
    with config.model.gain_reference = 'staging' the MLP gives an offset in dB from a
    causal staging (alm_jax.models.staging: each channel's running active level brought
    to staging.level_db), so the mixer starts where a loudness preset is and learns
    what each channel is worth; with config.model.register each channel's running
    register rides in the recurrence and encoder 3's output gains a relation term over
    the other channels (alm_jax.models.register: where it sits among them); with
    config.model.gain_smooth_s the predicted gains are ramped in dB (frames.smooth_gains)
    mix = sum_c gain[c, t - 1] * audio[c, frame t]     (zero-latency mode)
    stereo = the same with pan[c, t - 1] on the constant-power law (alm_jax.stereo)

Every network is shared across channels and no layer sees a channel index, so
any channel count and order works; padded channels are masked out of attention
and out of the mix.

The stages are separate methods (`embed`, `condition`, `recur`, `head`) so
`build_mixer`'s `Mixer.step` (alm_jax.models.stepping) runs exactly the same
computation over a chunk or one F2 frame at a time.
"""


import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from alm_jax import checks
from alm_jax import embeddings
from alm_jax import frames
from alm_jax import stereo
from alm_jax.models import layers
from alm_jax.models import protocol
from alm_jax.models import register
from alm_jax.models import roles
from alm_jax.models import staging
from alm_jax.models import stepping


def compute_dtype(model_config):
  return jnp.dtype(model_config.get('dtype', 'float32'))


def embed_level_reference(model_config) -> str:
  """config.model.embed_level.reference, checked: 'patch' or 'running' (docs/model.md)."""
  level = model_config.get('embed_level', {})
  ref = level.get('reference', 'patch')  # absent in checkpoints made before it
  if ref not in ('patch', 'running'):
    raise ValueError(f"config.model.embed_level.reference must be 'patch' or 'running', got {ref!r}.")
  if ref == 'running' and level.get('enabled', False) and not staging.enabled(model_config):
    raise ValueError("config.model.embed_level.reference = 'running' reads the staging's running "
                     "level: set config.model.gain_reference = 'staging' too, or use 'patch'.")
  return ref


class AiLiveMixer(nn.Module):
  """The AiLive Mixer.

  Attributes:
    config: `config.model` as a FrozenConfigDict (see configs/mr.py).
  """
  config: ml_collections.FrozenConfigDict

  def setup(self):
    cfg = self.config
    dtype = compute_dtype(cfg)
    self.frame_spec = frames.FrameSpec.from_config(cfg)
    embed_level_reference(cfg)  # a bad reference fails here, before any frame
    self.front = embeddings.frontend_for(cfg)  # the embedding's own front end
    self.embedding = embeddings.build_embedding(cfg.embedding, dtype)
    enc = dict(num_layers=cfg.encoder.num_layers, num_heads=cfg.encoder.num_heads,
               mlp_dim=cfg.encoder.mlp_dim, dropout=cfg.encoder.dropout, dtype=dtype)
    self.embed_proj = nn.Dense(cfg.d_model, dtype=dtype)
    self.encoder1 = layers.ChannelEncoder(**enc)
    self.rms_proj = nn.Dense(cfg.d_model, dtype=dtype)
    self.rms_act = nn.PReLU(negative_slope_init=0.25)
    self.encoder2 = layers.ChannelEncoder(**enc)
    self.gru = layers.TimeGRU(cfg.gru_hidden, dtype=dtype)
    self.encoder3 = layers.ChannelEncoder(**enc)
    self.mlp = layers.PReLUMLP(tuple(cfg.mlp_dims) + (1,), dtype=dtype)
    # A second head of the same shape, so a stereo model's gain path keeps the mono
    # model's parameter names and shapes (and a mono checkpoint's tree is unchanged).
    self.pan_mlp = (layers.PReLUMLP(tuple(cfg.mlp_dims) + (1,), dtype=dtype)
                    if stereo.has_pans(cfg) else None)
    # Where each channel sits among the others (config.model.register; None: not used).
    self.relation = (register.Relation(int(cfg.register.relation_dim), dtype=dtype,
                                       sharpness=float(cfg.register.get('sharpness', 1.0)))
                     if register.enabled(cfg) else None)
    # Which channel is the top part and which the bottom (config.model.register.ends).
    self.ends = (register.Ends(float(cfg.register.ends_sharpness), dtype=dtype)
                 if register.ends(cfg) else None)
    # The pan head's own relation term (config.model.register.pan_relation): which side a
    # spread part goes to is its rank among the parts like it, which the gain head's term,
    # trained for levels, does not tell apart (docs/model.md, "Stereo").
    reads_own = bool(cfg.get('register', {}).get('pan_relation_own', False))  # older: absent
    self.pan_relation = (register.Relation(int(cfg.register.relation_dim), dtype=dtype,
                                           sharpness=float(cfg.register.pan_sharpness),
                                           reads_own=reads_own)
                         if self.pan_mlp is not None and register.pan_relation(cfg) else None)
    # Spread parts to alternate sides in order of register (config.model.register.pan_layout).
    self.pan_layout = (register.Layout(dtype=dtype, sharpness=float(cfg.register.pan_sharpness),
                                       width_init=float(cfg.register.get('layout_width_init', 0.0)))
                       if self.pan_mlp is not None and register.pan_layout(cfg) else None)
    # The pan head reads the channel's embedding too (config.model.pan_embedding): encoder 3's
    # features are trained for levels and carry little of what the part is; its projection
    # starts at zero, so a model trained without it starts where it was.
    self.pan_embed = (nn.Dense(int(cfg.gru_hidden), dtype=dtype, kernel_init=nn.initializers.zeros)
                      if self.pan_mlp is not None and cfg.get('pan_embedding', False) else None)
    # Each channel's named role and a learned level per role (config.model.roles).
    self.role_centroids = None
    if roles.enabled(cfg):
      if not self.staged:
        raise ValueError("config.model.roles adds a level per role to the staging's: set "
                         "config.model.gain_reference = 'staging' too.")
      self.role_centroids = roles.centroids_for(cfg)
      self.role_offsets = self.param('role_offsets', nn.initializers.zeros,
                                     (self.role_centroids['centroids'].shape[0],), jnp.float32)

  @property
  def staged(self) -> bool:
    """Gains are offsets from the causal staging (config.model.gain_reference = 'staging')."""
    return staging.enabled(self.config)

  @property
  def carry_size(self) -> int:
    """Recurrent state per channel: the GRU's, the staging's running level (if staged), then
    the running register (config.model.register), then the running pitch (its ends term), then
    the running mean embedding that names the role (config.model.roles)."""
    return (int(self.config.gru_hidden) + (staging.STATE_SIZE if self.staged else 0)
            + (register.STATE_SIZE if register.enabled(self.config) else 0)
            + (register.STATE_SIZE if register.ends(self.config) else 0)
            + (roles.state_size(self.config) if roles.enabled(self.config) else 0))

  @property
  def gain_smooth(self) -> float:
    """The gain ramp's one-pole rate per F2 frame (config.model.gain_smooth_s; 1.0: none)."""
    # From the config, not setup's frame_spec: the stream reads it from the unbound module.
    return frames.smoothing_rate(float(self.config.get('gain_smooth_s', 0.0)),
                                 frames.FrameSpec.from_config(self.config))

  @property
  def f1_lag(self) -> int:
    """F2 frames from an F1 frame's end to its embedding's use (config.model.f1_lag; 0: none)."""
    return int(self.config.get('f1_lag', 0))

  # ---- F1 rate -------------------------------------------------------------

  def embed(self, signal, num_frames, channel_mask, deterministic: bool = True, level_db=None):
    """F1 frames -> channel-contextual embeddings [b, c, g, d_model].

    Args:
      signal: [b, c, (g - 1) * hop + frame_input_samples], the front end's
        input (`embeddings.Frontend.frame_input`): the last F1 frame ends at its end and
        the others every hop = stride * f2 samples before.
      num_frames: g (may be a symbolic dimension).
      level_db: [b, c, g] each channel's running active level as each F1 frame ends
        (`f1_levels`), for an embedding at the running level (`embeds_at_running_level`).
    """
    hop = self.frame_spec.stride * self.frame_spec.f2
    patches = self.front.log_mel_frames(signal, num_frames, hop)  # [b, c, g, rows, bands]
    return self.embed_patches(patches, channel_mask, deterministic, level_db)

  def embed_patches(self, patches, channel_mask, deterministic: bool = True, level_db=None):
    """Log-mel patches [b, c, g, 96, 64] -> [b, c, g, d_model] (`embed` after its front end)."""
    lead = patches.shape[:-2]
    e = self.embedding_of(patches.reshape((-1,) + patches.shape[-2:]),
                          None if level_db is None else level_db.reshape(-1))
    return self.contextualize(e.reshape(lead + e.shape[-1:]), channel_mask, deterministic)

  @property
  def embeds_whole_patches(self) -> bool:
    """Whether `embedding_of` reads each patch whole first (config.model.embed_level), so the
    streaming step may not spread the embedding over the patch's rows as they arrive."""
    return bool(self.config.get('embed_level', {}).get('enabled', False))

  @property
  def embeds_at_running_level(self) -> bool:
    """Whether each patch is brought to one level by its channel's running active level
    (config.model.embed_level.reference = 'running'), which `embed` then needs (`f1_levels`)."""
    return self.embeds_whole_patches and embed_level_reference(self.config) == 'running'

  def embedding_of(self, patches, level_db=None):
    """Log-mel patches [n, rows, bands] -> the embedding network's outputs [n, dim].

    With config.model.embed_level.enabled each patch is first brought to one level
    (`Frontend.at_level`): the embedding then reads a channel alike at any input level. By
    the patch's own mean power (reference 'patch'), or by `level_db` [n], the channel's
    running active level as the patch ends (reference 'running'): a frame where the channel
    rests and only its bleed sounds then stays as quiet as it is, where its own mean power
    would raise it to the level of the channel playing.
    """
    if self.embeds_whole_patches:
      level = self.config.embed_level
      if self.embeds_at_running_level:
        if level_db is None:
          raise ValueError('config.model.embed_level.reference is "running": embedding_of needs '
                           "each patch's running level (level_db; AiLiveMixer.f1_levels).")
        patches = self.front.at_level(patches, float(level.active_db), float(level.max_boost_db),
                                      measured_db=level_db)
      else:
        patches = self.front.at_level(patches, float(level.db), float(level.max_boost_db))
    return self.embedding(patches)

  def f1_levels(self, carry, f2_frames, num_frames):
    """Each channel's running active level as each F1 frame ends [b, c, num_frames] dB.

    The staging's level (`staging.running_level`) after F2 frames [b, c, t, f2] that start
    with an F1 frame's end, from the carry before them [b, c, carry_size]: F1 frame k ends
    with F2 frame k * stride. The carry itself is advanced by `recur`.
    """
    h = int(self.config.gru_hidden)
    level = staging.running_level(carry[..., h:h + staging.STATE_SIZE], frames.frame_rms(f2_frames),
                                  staging.rule(self.config, self.frame_spec))[1]
    return level[..., ::self.frame_spec.stride][..., :num_frames]

  def contextualize(self, e, channel_mask, deterministic: bool = True):
    """Embedding-network outputs [b, c, g, dim] -> projected, encoder 1 over channels [b, c, g, d_model].

    With config.model.roles the outputs themselves follow ([b, c, g, d_model + dim]): the
    running mean that names the role is taken of them, before encoder 1 mixes the channels.
    """
    rate = float(self.config.get('embed_dropout', 0.0))
    if rate > 0.0 and not deterministic:
      # config.model.embed_dropout: in training, a channel's whole segment without its embedding
      # (zeros), so the networks also learn to place a channel by its level, register and
      # dynamics, which carry to unseen sounds where what they learned of timbre may not.
      keep = jax.random.bernoulli(self.make_rng('dropout'), 1.0 - rate,
                                  e.shape[:2] + (1,) * (e.ndim - 2))
      e = jnp.where(keep, e, jnp.zeros_like(e))
    # config.model.roles.input = 'similarity': the networks read only how like each role the
    # frame sounds, a name that carries to timbres the training songs lack.
    c = self.role_centroids
    heard = (roles.similarity(e, c['center'], c['centroids']) if roles.uses_similarity(self.config)
             else e)
    x = self.encoder1(self.embed_proj(heard.astype(e.dtype)), channel_mask, deterministic)
    if self.role_centroids is not None:
      x = jnp.concatenate([x, e.astype(x.dtype)], axis=-1)
    return x

  # ---- F2 rate -------------------------------------------------------------

  def condition(self, emb, f2_frames, channel_mask, deterministic: bool = True):
    """Embeddings [b, c, t, d] and F2 frames [b, c, t, f2] -> the recurrence's inputs.

    A dict: `x` [b, c, t, d] (encoder 2's output), `rms` [b, c, t] (staged: the running
    level's input), with the register (config.model.register) `power`, `register`
    [b, c, t] (`register.frame_stats`), with its ends term `pitch_weight`, `pitch` [b, c, t]
    (`register.frame_pitch`), and with config.model.pan_embedding `emb` (the input
    embeddings, for the pan head).
    """
    floor = self.config.rms_floor_db
    rms = frames.frame_rms(f2_frames)
    raw = None
    if self.role_centroids is not None:  # `contextualize` put the raw embedding after d_model
      d = int(self.config.d_model)
      emb, raw = emb[..., :d], emb[..., d:]
    # Level in dB, scaled to about [-1, 0]: raw RMS spans orders of magnitude.
    level = jnp.maximum(20.0 * jnp.log10(rms), floor) / -floor
    x = jnp.concatenate([emb, level[..., None].astype(emb.dtype)], axis=-1)
    x = self.rms_act(self.rms_proj(x))
    out = {'x': self.encoder2(x, channel_mask, deterministic), 'rms': rms}
    if raw is not None:
      out['raw'] = raw
    if self.pan_embed is not None:
      out['emb'] = emb
    if self.relation is not None:
      out['power'], out['register'] = register.frame_stats(
          f2_frames, register.rule(self.config, self.frame_spec))
    if self.ends is not None:
      out['pitch_weight'], out['pitch'] = register.frame_pitch(
          f2_frames, register.rule(self.config, self.frame_spec), channel_mask)
    return out

  def recur(self, carry, inputs):
    """GRU over frames: carry [b, c, carry_size], `condition`'s dict -> (carry, the head's dict).

    The head's dict: `y` [b, c, t, h] (the GRU's output), staged also `level_db` [b, c, t]
    (the running active level after each frame), with the register `register` [b, c, t]
    (the running register after each frame), with the ends term `pitch` and `pitch_heard`
    [b, c, t] (the running pitch, and whether the channel has one yet), and `emb` passed on
    from `condition` where it has one. The carry is the GRU's state, then the
    staging's STATE_SIZE values (staged), then the register's (register), then the running
    pitch's (config.model.register.ends).
    """
    h = int(self.config.gru_hidden)
    gru_carry, y = self.gru(carry[..., :h], inputs['x'])
    parts, out, at = [gru_carry.astype(jnp.float32)], {'y': y}, h
    if 'emb' in inputs:  # for the pan head (config.model.pan_embedding)
      out['emb'] = inputs['emb']
    if self.staged:
      level_state, out['level_db'] = staging.running_level(
          carry[..., at:at + staging.STATE_SIZE], inputs['rms'],
          staging.rule(self.config, self.frame_spec))
      parts.append(level_state)
      at += staging.STATE_SIZE
    if self.relation is not None:
      reg_state, out['register'] = register.running(
          carry[..., at:at + register.STATE_SIZE], inputs['power'], inputs['register'],
          register.rule(self.config, self.frame_spec))
      parts.append(reg_state)
      at += register.STATE_SIZE
    if self.ends is not None:  # the running pitch, kept as the register is
      pitch_state, out['pitch'], out['pitch_heard'] = register.running(
          carry[..., at:at + register.STATE_SIZE], inputs['pitch_weight'], inputs['pitch'],
          register.rule(self.config, self.frame_spec), with_heard=True)
      parts.append(pitch_state)
      at += register.STATE_SIZE
    if self.role_centroids is not None:
      # The channel plays: its frame within roles.gate_db of its running level, and an F1
      # embedding is in force (a lagged model's first frames have none: zeros).
      played = ((staging.power_db(jnp.square(inputs['rms'])) > out['level_db']
                 - float(self.config.roles.gate_db))
                & jnp.any(inputs['raw'] != 0, axis=-1))
      role_state, mean, named = roles.running(
          carry[..., at:at + roles.state_size(self.config)], inputs['raw'], played)
      parts.append(role_state)
      c = self.role_centroids
      idx = roles.nearest_role(mean, c['center'], c['centroids'])
      out['role'] = jnp.where(named, idx, -1)
    return jnp.concatenate(parts, axis=-1), out

  def head(self, inputs, channel_mask, deterministic: bool = True):
    """`recur`'s dict -> predicted gains [b, c, t] (float32, >= 0, 0 on masked channels).

    With pans (config.model.outputs = ('gain', 'pan')): (gains, pans [b, c, t]
    float32 in [-1, 1] by tanh, 0 on masked channels).
    """
    y = self.encoder3(inputs['y'], channel_mask, deterministic)
    if self.relation is not None:
      y = y + self.relation(y, inputs['register'], channel_mask)
    if self.ends is not None:
      y = y + self.ends(y, inputs['pitch'], channel_mask, inputs['pitch_heard'])
    role_db = 0.0
    if 'role' in inputs:  # the named role's level moves the staging's (config.model.roles)
      role_db = jnp.where(inputs['role'] >= 0, self.role_offsets[jnp.maximum(inputs['role'], 0)], 0.0)
    gains = jnp.where(channel_mask[..., None], self._gains(y, inputs.get('level_db'), role_db), 0.0)
    if self.pan_mlp is None:
      return gains
    if self.pan_relation is not None:
      y = y + self.pan_relation(y, inputs['register'], channel_mask)
    if self.pan_embed is not None:
      y = y + self.pan_embed(inputs['emb'])
    z = self.pan_mlp(y)[..., 0].astype(jnp.float32)
    if self.pan_layout is not None:
      z = z + self.pan_layout(y, inputs['register'], channel_mask)
    p = jnp.tanh(z)
    return gains, jnp.where(channel_mask[..., None], p, 0.0)

  def _gains(self, y, level_db, role_db=0.0):
    """The MLP's output -> gains >= 0: an offset from the staging (staged; its target moved by
    the named role's level, config.model.roles), else the activation."""
    g = self.mlp(y)[..., 0].astype(jnp.float32)
    if level_db is not None:
      return staging.gains(self.config, g, level_db, role_db)
    if self.config.gain_activation == 'softplus':
      return jax.nn.softplus(g)
    if self.config.gain_activation == 'relu':
      return jax.nn.relu(g)
    raise ValueError(f'Unknown config.model.gain_activation {self.config.gain_activation!r}.')

  def initial_carry(self, batch: int, channels: int):
    return jnp.zeros((batch, channels, self.carry_size), jnp.float32)

  # ---- whole signals -------------------------------------------------------

  def __call__(self, audio, channel_mask, train: bool = False):
    """Mixes whole signals.

    Args:
      audio: [batch, channels, samples] at config.sample_rate.
      channel_mask: [batch, channels] bool, False for padded channels.
      train: enables dropout (needs a 'dropout' rng).
    Returns:
      dict with `pred_gains` [b, c, t] (gain predicted on each F2 frame),
      (ramped in dB with config.model.gain_smooth_s, if set), `gains` [b, c, t]
      (gain applied to each F2 frame: `pred_gains` shifted by
      one frame in zero-latency mode) and `mix` [b, t * f2]; with pans also
      `pred_pans`, `pans` [b, c, t] (shifted the same way, the centre first) and
      `stereo` [b, 2, t * f2] (left, right).
    """
    spec = self.frame_spec
    checks.check_shapes(audio.shape, channel_mask.shape, spec.f1)
    channel_mask = channel_mask.astype(bool)
    audio = audio.astype(jnp.float32)
    deterministic = not train
    b, c, _ = audio.shape

    signal, g = self.front.frame_input(audio, spec)
    t = spec.num_f2_frames(audio.shape[-1])
    f2_frames = frames.f2_frames(audio, spec)
    level_db = None
    if self.embeds_at_running_level:
      level_db = self.f1_levels(self.initial_carry(b, c), f2_frames, g)
    emb = self.embed(signal, g, channel_mask, deterministic, level_db)  # [b, c, g, d]
    index = frames.f1_index(t, spec, self.f1_lag)
    # Before the first F1 frame is in force (lagged models only) the embedding is zero.
    emb = jnp.where((index >= 0)[:, None], jnp.take(emb, jnp.maximum(index, 0), axis=2), 0.0)
    x = self.condition(emb, f2_frames, channel_mask, deterministic)
    _, y = self.recur(self.initial_carry(b, c), x)
    pred = self.head(y, channel_mask, deterministic)
    pred_pans = None
    if self.pan_mlp is not None:
      pred, pred_pans = pred
    # The ramp starts from the gain frame 0 gets; the stream keeps it in its state.
    pred = frames.smooth_gains(pred, jnp.full((b, c), self.config.initial_gain, jnp.float32),
                               self.gain_smooth)
    gains = (frames.zero_latency_shift(pred, self.config.initial_gain)
             if self.config.zero_latency else pred)
    gains = jnp.where(channel_mask[..., None], gains, 0.0)
    out = {'pred_gains': pred, 'gains': gains,
           'mix': frames.apply_gains(audio, gains, channel_mask, spec)}
    if pred_pans is not None:
      pans = stereo.zero_latency_shift(pred_pans) if self.config.zero_latency else pred_pans
      pans = jnp.where(channel_mask[..., None], pans, 0.0)
      out.update(pred_pans=pred_pans, pans=pans,
                 stereo=stereo.apply_gains_stereo(audio, gains, pans, channel_mask, spec))
    return out


def build_module(model_config) -> AiLiveMixer:
  """The trainable module (`config.model` frozen, with `dtype`)."""
  return AiLiveMixer(model_config)


def capabilities(model_config) -> protocol.Capabilities:
  spec = frames.FrameSpec.from_config(model_config)
  refusal = None
  if not model_config.zero_latency:
    refusal = ('config.model.zero_latency is False: this model applies the gain predicted on an F2 '
               'frame to that same frame, which needs the whole frame before its first sample can '
               'be output, i.e. one F2 frame of latency. Streaming needs a zero-latency model '
               '(config.model.zero_latency=True).')
  return protocol.Capabilities(
      description='ALM-MR' if spec.stride > 1 else 'ALM-SR', sample_rate=spec.sample_rate,
      f1=spec.f1, f2=spec.f2, stride=spec.stride, max_channels=int(model_config.max_channels),
      causal=True, zero_latency=bool(model_config.zero_latency),
      initial_gain=float(model_config.initial_gain), streaming_refusal=refusal,
      outputs=stereo.outputs_of(model_config))


def build_mixer(model_config) -> stepping.StagedMixer:
  # With config.model.roles the embedding carries the raw outputs too (`contextualize`).
  extra = int(model_config.embedding.dim) if roles.enabled(model_config) else 0
  return stepping.StagedMixer(build_module(model_config), capabilities(model_config),
                              embedding_dim=int(model_config.d_model) + extra)
