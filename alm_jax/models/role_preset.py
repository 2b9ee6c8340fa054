"""The role-aware console preset: each channel named by its sound and staged to its role's level.

Per channel, causally: (1) its active level, the running mean power of the F2
frames within `active_range_db` of its loudest frame so far (the measure
`rendered_live` designs its balance with), averaged over all active frames at
first, then with the time constant `level_time_constant_s`; (2) every
`f1_stride` F2 frames, the embedding (`config.model.embedding`, e.g. musicnn)
of its last F1 frame (`f1_ms`), scaled so that its active level sits at
`EMBED_LEVEL_DB` (the embedding does not hear the channel's fader) and counted
only while the channel plays in it (`window_gate_db`); the running mean of
those embeddings names the channel's role by its nearest role centroid
(cosine, after the centroids' common mean is removed), from a file of
centroids computed on `rendered_live`'s train split by
tools/role_centroids.py (`role_centroids`, default the one shipped for the
embedding in alm_jax/embeddings/weights/); (3) the gain that puts the channel's active level
at `lead_db` plus that role's designed level, bounded to [min_gain_db,
max_gain_db] (before any role is named, `unknown_role_db`). Zero latency:
frame t's gain comes from frames up to t - 1. Its parameters (the embedding's
pretrained weights and the centroids) are fixed: nothing is trained. Design
notes and figures: docs/results_notes.md.
"""

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from alm_jax import embeddings
from alm_jax import frames
from alm_jax.models import console
from alm_jax.models import protocol
from alm_jax.models import roles

EMBED_LEVEL_DB = -20.0  # active level (dBFS RMS) every F1 frame is scaled to before embedding
_NOT_SEEN_DB = -200.0   # level of a channel with no active frame yet


def power_db(power):
  return 10.0 * jnp.log10(jnp.maximum(power, 1e-20))


class RolePreset:
  """`protocol.Mixer` of the role-aware preset (see the module docstring).

  State: `history` [b, c, H] (the last input samples an F1 frame reads), `frame` [] int32,
  `peak` [b, c] (loudest F2 frame power so far), `power` [b, c] (running active mean power),
  `count` [b, c] (active F2 frames so far), `emb_sum` [b, c, D] and `emb_weight` [b, c] (the
  running sum of counted embeddings and their number), `role` [b, c] int32 (-1: not named yet),
  `gain` [b, c], `faults` [b, c].
  """

  description = 'role-aware preset'

  def __init__(self, model_config):
    m = model_config
    if not m.min_gain_db < m.max_gain_db:
      raise ValueError(f'config.model.min_gain_db ({m.min_gain_db}) must be below '
                       f'config.model.max_gain_db ({m.max_gain_db}).')
    self.config = m
    self.spec = frames.FrameSpec.from_config(m)
    self.front = embeddings.frontend_for(m)
    self.front.check_frame(self.spec.f1)
    self.history = self.front.frame_input_samples
    self.net = embeddings.build_embedding(m.embedding)
    self.params = self._embedding_params(m)
    self.dim = int(m.embedding.dim)
    path = m.role_centroids or roles.default_centroids_path(m.embedding.name)
    if path == 'none':  # only measuring embeddings (tools/role_centroids.py)
      self.centroids = None
    else:
      c = roles.load_centroids(path, m.embedding)
      self.roles = [str(r) for r in c['roles']]
      self.centroids = {k: jnp.asarray(c[k], jnp.float32)
                        for k in ('levels_db', 'center', 'centroids')}
    frames_per_s = self.spec.sample_rate / self.spec.f2
    self.slow = 1.0 / max(1.0, float(m.level_time_constant_s) * frames_per_s)
    self.capabilities = protocol.Capabilities(
        description=self.description, sample_rate=self.spec.sample_rate, f1=self.spec.f1,
        f2=self.spec.f2, stride=self.spec.stride, max_channels=int(m.max_channels), causal=True,
        zero_latency=True, trainable=False, initial_gain=float(m.initial_gain))

  @staticmethod
  def _embedding_params(m):
    net = embeddings.build_embedding(m.embedding)
    spec = embeddings.frontend_for(m).spec  # a patch of the F1 frame (shapes only: eval_shape)
    shape = (1, spec.patch_frames, spec.n_mels)
    fresh = jax.eval_shape(lambda: net.init(jax.random.key(0), jnp.zeros(shape)))['params']
    fresh = jax.tree.map(lambda s: np.zeros(s.shape, s.dtype), fresh)
    loaded = embeddings.load_pretrained({'embedding': fresh}, m.embedding)['embedding']
    if loaded is fresh:
      raise ValueError(f'config.model.embedding ({m.embedding.name}) has no pretrained weights: '
                       'the role-aware preset recognises roles with a pretrained embedding only.')
    return jax.tree.map(jnp.asarray, loaded)

  def refuse(self, use: str) -> None:
    console.refuse_segments(self.description, use)

  def init_state(self, batch: int, channels: int) -> dict:
    console.check_state_shape(self.capabilities, batch, channels)
    # Distinct buffers: the offline engine donates the state, and one buffer may not be donated twice.
    z = lambda: jnp.zeros((batch, channels), jnp.float32)  # pylint: disable=unnecessary-lambda-assignment
    return {'history': jnp.zeros((batch, channels, self.history), jnp.float32),
            'frame': jnp.zeros((), jnp.int32), 'peak': z(), 'power': z(), 'count': z(),
            'emb_sum': jnp.zeros((batch, channels, self.dim), jnp.float32), 'emb_weight': z(),
            'role': jnp.full((batch, channels), -1, jnp.int32),
            'gain': jnp.full((batch, channels), self.capabilities.initial_gain, jnp.float32),
            'faults': jnp.zeros((batch, channels), jnp.int32)}

  def gains_in_force(self, state):
    return state['gain']

  def embed(self, window, level_db):
    """F1 frames [b, c, H] at active levels [b, c] dB -> (embeddings [b, c, D], played [b, c] bool).

    Each frame is scaled to EMBED_LEVEL_DB; `played`: the frame's mean power is within
    `window_gate_db` of the channel's active level (it is the channel playing, not its bleed
    or its rests, that names the role).
    """
    b, c, n = window.shape
    scale = jnp.power(10.0, (EMBED_LEVEL_DB - level_db) / 20.0)
    x = (window * scale[..., None]).reshape(b * c, n)
    patches = self.front.log_mel_frames(x, 1, n)[:, 0]  # [b * c, rows, bands]
    e = self.net.apply({'params': self.params}, patches).astype(jnp.float32).reshape(b, c, -1)
    played = power_db(jnp.mean(jnp.square(window), axis=-1)) > level_db - self.config.window_gate_db
    return e, played

  def _update(self, st, frame, mask):
    """One F2 frame [b, c, f2] just completed -> the state with the next frame's gain."""
    m = self.config
    p = jnp.mean(jnp.square(frame), axis=-1)
    peak = jnp.maximum(st['peak'], p)
    active = mask & (p > 0) & (power_db(p) > power_db(peak) - m.active_range_db)
    count = st['count'] + active
    rate = jnp.where(active, jnp.maximum(1.0 / jnp.maximum(count, 1.0), self.slow), 0.0)
    power = st['power'] + rate * (p - st['power'])
    seen = count > 0
    level_db = jnp.where(seen, power_db(power), _NOT_SEEN_DB)
    history = jnp.concatenate([st['history'], frame], axis=-1)[..., frame.shape[-1]:]
    frame_no = st['frame'] + 1

    def embed(carry):
      e_sum, w = carry
      e, played = self.embed(history, level_db)
      take = (played & seen & mask).astype(jnp.float32)
      return e_sum + take[..., None] * e, w + take

    e_sum, e_weight = jax.lax.cond(frame_no % self.spec.stride == 0, embed, lambda c: c,
                                   (st['emb_sum'], st['emb_weight']))
    if self.centroids is None:
      role = st['role']
      offset = jnp.full(p.shape, m.unknown_role_db, jnp.float32)
    else:
      named = e_weight > 0
      idx = roles.nearest_role(e_sum / jnp.maximum(e_weight, 1.0)[..., None],
                               self.centroids['center'], self.centroids['centroids'])
      role = jnp.where(named, idx, -1).astype(jnp.int32)
      offset = jnp.where(named, self.centroids['levels_db'][idx], m.unknown_role_db)
    gain_db = jnp.clip(m.lead_db + offset - level_db, m.min_gain_db, m.max_gain_db)
    gain = jnp.where(seen, jnp.power(10.0, gain_db / 20.0), st['gain'])
    return dict(st, history=history, frame=frame_no, peak=peak, power=power, count=count,
                emb_sum=e_sum, emb_weight=e_weight, role=role,
                gain=jnp.where(mask, gain, 0.0).astype(jnp.float32))

  def step(self, params, state, chunk, channel_mask):
    """See `protocol.Mixer.step`; `params` is ignored (the preset's weights are its own)."""
    del params
    return console.scan_frames(self.spec, state, chunk, channel_mask,
                               lambda framed: jnp.moveaxis(framed, 2, 0),  # [t, b, c, f2]
                               self._update)


def build_mixer(model_config) -> RolePreset:
  return RolePreset(model_config)


def embedding_config(name: str = 'musicnn') -> ml_collections.ConfigDict:
  """config.model.embedding for the role preset's embedding `name`."""
  cfg = ml_collections.ConfigDict()
  cfg.name = name
  cfg.dim = 200
  cfg.weights = ''
  return cfg
