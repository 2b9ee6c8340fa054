"""Tests for mixed precision: config.train.compute_dtype='bfloat16'.

The model computes in bfloat16 while parameters, optimiser state, the log-mel
front end, the gains, the mix and the loss stay float32 (alm_jax.models,
alm_jax.losses.mix_loss). One training step in each dtype from the same
parameters on the same batch: the bf16 loss must be within 5 % of the float32
loss, and the gradient norm within 10 %. Why: bfloat16 keeps 8 significant
bits (relative rounding 2^-9 ~ 0.2 % per operation), and a dozen layers round
independently; measured on this test's tiny model for parameter seeds 0, 1, 2:
loss differences 0.01 %, 2.2 %, 0.2 % and gradient-norm differences 0.15 %,
3.3 %, 1.1 % (seed 1 sits where the gains react strongly). The tolerances
leave about 2x room over the worst of those while still catching a precision
bug such as a bf16 loss or bf16 parameters.
"""

import jax
import jax.numpy as jnp
import numpy as np

from alm_jax import losses
from alm_jax import train
from alm_jax.embeddings import vggish_frontend as frontend
from alm_jax.models import build_model
from conftest import load_config, shrink_model

REL_TOL = 0.05
GRAD_NORM_REL_TOL = 0.10  # gradients are noisier than the loss in bf16
CHANNELS, SECONDS, BATCH = 4, 2.0, 2


def _config(dtype):
  c = shrink_model(load_config('mr'))
  c.model.max_channels = CHANNELS
  c.train.compute_dtype = dtype
  c.train.freeze_embedding_epochs = 0
  c.train.steps_per_epoch = 1
  return c


def _batch(seed=0):
  """Noise with moving levels, some padded channels; target = a fixed mix of it."""
  rng = np.random.default_rng(seed)
  s = int(SECONDS * 44100)
  env = np.repeat(rng.uniform(0.02, 0.3, (BATCH, CHANNELS, s // 4410 + 1)), 4410, -1)[..., :s]
  audio = (rng.standard_normal((BATCH, CHANNELS, s)) * env).astype(np.float32)
  mask = np.ones((BATCH, CHANNELS), bool)
  mask[1, -1] = False
  audio[~mask] = 0.0
  target = (audio * np.linspace(0.3, 1.2, CHANNELS)[None, :, None]).sum(1).astype(np.float32)
  return {'audio': audio, 'channel_mask': mask, 'target': target}


def test_bfloat16_step_matches_float32_and_keeps_float32_state():
  c32, c16 = _config('float32'), _config('bfloat16')
  tx = train.make_optimizer(c32, 1)
  loss_spec = losses.MRSTFTSpec.from_config(c32.loss)
  # XLA's backend optimisations would save less run time on a 2 s batch than they add
  # to the compile time that dominates this test (the losses agree either way): off.
  fast = {'xla_backend_optimization_level': 0}
  state32 = jax.jit(train.create_train_state, static_argnums=(1, 2, 3), compiler_options=fast)(
      jax.random.key(0), build_model(c32), tx, loss_spec)
  state16 = state32.replace(model=build_model(c16))  # same parameters, bf16 compute
  batch, rng = _batch(), jax.random.key(1)
  step = jax.jit(train.train_step, compiler_options=fast)
  new32, m32 = step(state32, batch, rng)
  new16, m16 = step(state16, batch, rng)
  m32, m16 = jax.device_get((m32, m16))

  assert m16['loss'].dtype == np.float32 and np.isfinite(m16['loss'])
  assert np.isfinite(m16['grad_norm']) and m16['grad_norm'] > 0
  assert abs(m16['loss'] - m32['loss']) <= REL_TOL * abs(m32['loss']), (m16, m32)
  assert abs(m16['grad_norm'] - m32['grad_norm']) <= GRAD_NORM_REL_TOL * m32['grad_norm']
  # The compute dtype is not the storage dtype: parameters and Adam state stay float32.
  for tree in (new16.params, new16.opt_state):
    for leaf in jax.tree.leaves(tree):
      if jnp.issubdtype(leaf.dtype, jnp.floating):
        assert leaf.dtype == jnp.float32
        assert np.all(np.isfinite(np.asarray(leaf)))
  moved = [np.max(np.abs(np.asarray(a) - np.asarray(b)))
           for a, b in zip(jax.tree.leaves(new16.params), jax.tree.leaves(state16.params))]
  assert max(moved) > 0


def test_frontend_gains_mix_and_loss_are_float32_under_bfloat16(monkeypatch):
  """Traced only (no compile): the dtypes of each stage of a bf16 model."""
  model = build_model(_config('bfloat16'))
  seen = []
  real_log_mel = frontend.log_mel_frames

  def recording_log_mel(signal, num_frames, hop, spec):
    out = real_log_mel(signal, num_frames, hop, spec)
    seen.append((signal.dtype, out.dtype))
    return out

  monkeypatch.setattr(frontend, 'log_mel_frames', recording_log_mel)
  batch = _batch()
  audio = jax.ShapeDtypeStruct(batch['audio'].shape, jnp.float32)
  mask = jax.ShapeDtypeStruct(batch['channel_mask'].shape, jnp.bool_)
  variables = jax.eval_shape(lambda a, m: model.init(jax.random.key(0), a, m), audio, mask)
  assert {leaf.dtype for leaf in jax.tree.leaves(variables)} == {jnp.dtype(jnp.float32)}
  out = jax.eval_shape(lambda v, a, m: model.apply(v, a, m), variables, audio, mask)
  assert seen and all(d == (jnp.float32, jnp.float32) for d in seen)  # log-mel in float32
  assert out['gains'].dtype == jnp.float32 and out['mix'].dtype == jnp.float32
  loss_spec = losses.MRSTFTSpec.from_config(_config('bfloat16').loss)
  loss = jax.eval_shape(lambda mix, t: losses.mix_loss(mix.astype(jnp.bfloat16), t, loss_spec),
                        out['mix'], jax.ShapeDtypeStruct(batch['target'].shape, jnp.float32))
  assert loss.dtype == jnp.float32
