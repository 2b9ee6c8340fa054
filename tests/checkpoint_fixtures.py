"""Tiny models with random parameters saved as training checkpoints, for the CLI tests.

Shared by the mixing and export tests: both restore a checkpoint through the
CLI exactly as users do, from a workdir written by `alm_jax.checkpoints`.
"""

import types

from absl import flags
import jax
import jax.numpy as jnp
import numpy as np
import soundfile as sf

from alm_jax import checkpoints
from alm_jax import frames
from alm_jax.models import build_model
from conftest import load_config, shrink_model


def random_params(model, spec, seed=1):
  """Random parameters of the right shapes.

  Cheaper than `jax.jit(model.init)`, which compiles the whole forward pass
  with its initialisers (about 16 s of CPU for the tiny model); the shapes come
  from tracing alone. Kernels are scaled by 1/sqrt(fan-in) so activations stay
  in range and the gains vary.
  """
  shapes = jax.eval_shape(model.init, jax.random.PRNGKey(0), jnp.zeros((1, 2, spec.f1)),
                          jnp.ones((1, 2), bool))['params']
  rng = np.random.default_rng(seed)

  def draw(path, leaf):
    name = jax.tree_util.keystr(path[-1:])
    if 'scale' in name:
      return np.ones(leaf.shape, np.float32)
    if 'negative_slope' in name:
      return np.full(leaf.shape, 0.25, np.float32)
    fan_in = int(np.prod(leaf.shape[:-1])) if len(leaf.shape) > 1 else 400
    return (rng.normal(size=leaf.shape) / np.sqrt(fan_in)).astype(np.float32)

  # The pan head's optional inputs (and the ends term) are drawn last, so that turning them on does not redraw
  # (and perhaps saturate) the parameters every other model has.
  leaves, treedef = jax.tree_util.tree_flatten_with_path(shapes)
  late = lambda path: jax.tree_util.keystr(path[:1]) in ("['pan_embed']", "['pan_relation']",
                                                         "['pan_layout']", "['ends']")
  order = sorted(range(len(leaves)), key=lambda i: late(leaves[i][0]))
  drawn = [None] * len(leaves)
  for i in order:
    drawn[i] = draw(*leaves[i])
  return jax.tree_util.tree_unflatten(treedef, drawn)


class TinyModel:
  """configs/<name>.py shrunk (conftest.shrink_model), its model, frame sizes and random params."""

  def __init__(self, name, **model_overrides):
    self.config = shrink_model(load_config(name))
    self.config.model.update_from_flattened_dict(model_overrides)  # 'register.enabled' too
    self.model = build_model(self.config)
    self.spec = frames.FrameSpec.from_config(self.config.model)
    self.params = random_params(self.model, self.spec)


# A stereo mixer as the shipped one is built: pans, the register (the pan head's relation term
# too, reading its own channel), the layout term and a gain ramp; with the ends term and the
# embedding's patches at one level besides.
STEREO = {'outputs': ('gain', 'pan'), 'gain_smooth_s': 0.1, 'register.enabled': True,
          'register.relation_dim': 4, 'register.pan_relation': True,
          'register.pan_relation_own': True, 'pan_embedding': True, 'register.pan_layout': True,
          'register.ends': True, 'embed_level.enabled': True}


def liven_stereo(tiny):
  """Pans off the centre and relation terms that are not zero, so a mix-up in any shows."""
  tiny.params['pan_mlp'] = jax.tree.map(lambda x: 2.0 * x, tiny.params['pan_mlp'])
  # The embedding's features are large in a random model: a smaller projection keeps the
  # pans off tanh's saturation.
  for seed, (name, scale) in enumerate((('relation', 0.02), ('pan_relation', 0.02),
                                        ('pan_embed', 0.001), ('ends', 0.02))):
    if name in tiny.params:
      out = tiny.params[name].get('out', tiny.params[name])
      out['bias'] = np.zeros_like(out['bias'])
      out['kernel'] = scale * np.random.default_rng(seed).normal(
          size=out['kernel'].shape).astype(np.float32)
  own = tiny.params.get('pan_relation', {}).get('own')
  if own is not None:  # the pan relation's own-channel side starts at zero
    own['kernel'] = 0.05 * np.random.default_rng(5).normal(
        size=own['kernel'].shape).astype(np.float32)
  if 'pan_layout' in tiny.params:  # its width starts at zero
    width = tiny.params['pan_layout']['width']
    width['kernel'] = 0.05 * np.random.default_rng(7).normal(
        size=width['kernel'].shape).astype(np.float32)
    width['bias'] = np.full_like(width['bias'], 0.3)


def save_checkpoint(workdir, config, params, step=3):
  """Writes `params` as training step `step` of `workdir` (config.json and an orbax checkpoint)."""
  manager = checkpoints.open_manager(str(workdir), config)
  checkpoints.save_state(manager, step, types.SimpleNamespace(
      params=params, opt_state={'count': np.zeros((), np.int32)}))
  manager.wait_until_finished()
  manager.close()


def parse_flags(module, *args):
  """Fresh absl flags of a CLI module (its `define_flags`), parsed from `args`."""
  fv = flags.FlagValues()
  module.define_flags(fv)
  fv([module.__name__] + list(args))
  return fv


def write_song(folder, seconds: float, sample_rate: int):
  """Writes a valid two-channel song folder: a.wav and b.wav, `seconds` of float white noise
  (0.1 rms, seed 0). Returns `folder` (created here; its parent must exist)."""
  folder.mkdir()
  rng = np.random.default_rng(0)
  for name in ('a', 'b'):
    sf.write(folder / f'{name}.wav',
             (0.1 * rng.standard_normal(int(seconds * sample_rate))).astype(np.float32),
             sample_rate, subtype='FLOAT')
  return folder
