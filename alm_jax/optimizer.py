"""The optimiser: epochs to steps, the learning-rate schedule, AdamW with the embedding freeze.

    spe = optimizer.steps_per_epoch(config.train, num_songs)
    tx, schedule = optimizer.make(config.train, spe)   # what train.py steps with

Everything the training recipe says in epochs (`lr_boundaries_epochs`,
`freeze_embedding_epochs`, `num_epochs`) is converted to optimiser updates here
and only here, from `steps_per_epoch` (config.train.steps_per_epoch, or
ceil(training songs / batch size) as in the paper's recipe). The chain is
[zero frozen gradients] -> [clip by global norm] -> Adam + decoupled weight decay
(switched off for params['embedding'] during the freeze) -> × schedule, as
torch.optim.AdamW with the embedding's requires_grad off at first.
"""

import dataclasses
import functools
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import optax

# Top-level parameter sub-tree that is frozen for the first
# `config.train.freeze_embedding_epochs` epochs (the pretrained audio embedding).
EMBEDDING_KEY = 'embedding'


def steps_per_epoch(train_config, num_songs: int | Callable[[], int]) -> int:
  """`train_config.steps_per_epoch`, or ceil(training songs / batch size) when it is -1.

  num_songs: the training split's song count (all processes together), or a
    function returning it, called only when it is needed.
  """
  spe = int(train_config.steps_per_epoch)
  if spe > 0:
    return spe
  songs = int(num_songs() if callable(num_songs) else num_songs)
  if songs <= 0:
    raise ValueError('The training split has no songs; check the dataset (config.data) or set '
                     'config.train.steps_per_epoch.')
  return math.ceil(songs / int(train_config.batch_size))


def total_steps(train_config, spe: int) -> int:
  """Optimiser updates of the whole run: num_epochs × steps per epoch."""
  return int(train_config.num_epochs) * int(spe)


def freeze_steps(train_config, spe: int) -> int:
  """Updates with params['embedding'] frozen: freeze_embedding_epochs × steps per epoch."""
  return int(round(float(train_config.freeze_embedding_epochs) * spe))


@dataclasses.dataclass(frozen=True)
class OptimizerSpec:
  """The optimiser settings in steps (hashable, so equal configs share one optimiser and one compile)."""
  learning_rate: float
  boundaries_and_scales: tuple[tuple[int, float], ...]  # (step, lr factor from that step on)
  weight_decay: float
  freeze_steps: int  # updates with params['embedding'] frozen
  grad_clip_norm: float  # 0: no clipping
  # (top-level parameter name, factor): that sub-tree's updates × factor (config.train.lr_scales),
  # e.g. a fresh head learning faster than the trained networks it sits on.
  lr_scales: tuple[tuple[str, float], ...] = ()

  @classmethod
  def from_config(cls, train_config, spe: int) -> 'OptimizerSpec':
    """From config.train and the steps per epoch."""
    tc = train_config
    boundaries = {}
    for epoch in tc.lr_boundaries_epochs:
      step = int(round(float(epoch) * spe))
      boundaries[step] = boundaries.get(step, 1.0) * float(tc.lr_decay)
    return cls(learning_rate=float(tc.learning_rate),
               boundaries_and_scales=tuple(sorted(boundaries.items())),
               weight_decay=float(tc.weight_decay),
               freeze_steps=freeze_steps(tc, spe),
               grad_clip_norm=float(tc.grad_clip_norm),
               lr_scales=tuple((str(k), float(v)) for k, v in tc.get('lr_scales', ())))

  def schedule(self) -> optax.Schedule:
    """lr × lr_decay at each boundary (update counts from 0)."""
    return optax.piecewise_constant_schedule(self.learning_rate,
                                             dict(self.boundaries_and_scales) or None)


def make(train_config, spe: int) -> tuple[optax.GradientTransformation, optax.Schedule]:
  """(the optimiser, its learning-rate schedule) for config.train at `spe` steps per epoch."""
  spec = OptimizerSpec.from_config(train_config, spe)
  return from_spec(spec), spec.schedule()


class DelayedState(NamedTuple):
  count: jax.Array  # int32 [], updates seen
  inner: optax.OptState


def start_after(inner: optax.GradientTransformation, num_steps: int) -> optax.GradientTransformation:
  """`inner`, switched off for the first `num_steps` updates.

  While off it outputs zero updates and leaves `inner`'s state untouched, so
  Adam's moments and bias correction start fresh when the parameters thaw, as
  for a PyTorch parameter with requires_grad=False. The switch is a `lax.cond`
  on a counter in the optimiser state, so the optimiser state has the same
  structure in both phases (one checkpoint format).
  """

  def init_fn(params):
    return DelayedState(jnp.zeros([], jnp.int32), inner.init(params))

  def update_fn(updates, state, params=None):

    def run(_):
      return inner.update(updates, state.inner, params)

    def skip(_):
      return jax.tree.map(jnp.zeros_like, updates), state.inner

    new_updates, new_inner = jax.lax.cond(state.count >= num_steps, run, skip, None)
    return new_updates, DelayedState(optax.safe_increment(state.count), new_inner)

  return optax.GradientTransformation(init_fn, update_fn)


def embedding_labels(params):
  """'delayed' for every leaf under params['embedding'], 'trained' elsewhere."""
  return {k: jax.tree.map(lambda _, k=k: 'delayed' if k == EMBEDDING_KEY else 'trained', v)
          for k, v in params.items()}


@functools.lru_cache(maxsize=None)
def from_spec(spec: OptimizerSpec) -> optax.GradientTransformation:
  """AdamW (decoupled weight decay, as torch.optim.AdamW) with the embedding frozen at first."""
  # Cached: the optimiser is a static part of the train state, so an equal object
  # lets jit reuse the compiled step when the same config trains again in-process.
  adamw = optax.chain(optax.scale_by_adam(), optax.add_decayed_weights(spec.weight_decay))
  if spec.freeze_steps > 0:
    adamw = optax.multi_transform(
        {'delayed': start_after(adamw, spec.freeze_steps), 'trained': adamw}, embedding_labels)
  return optax.chain(gradient_clipping(spec), adamw, scale_subtrees(dict(spec.lr_scales)),
                     optax.scale_by_learning_rate(spec.schedule()))


def scale_subtrees(scales: dict) -> optax.GradientTransformation:
  """Updates of params[name] × scales[name] (the others unchanged); stateless.

  Raises at the first update if a name is not a top-level parameter: a misspelt name would
  otherwise scale nothing without a word.
  """
  if not scales:
    return optax.identity()

  def update_fn(updates, state, params=None):
    del params
    unknown = sorted(set(scales) - set(updates))
    if unknown:
      raise ValueError(f'config.train.lr_scales names {unknown}, which are not top-level '
                       f'parameters of this model (it has {sorted(updates)}).')
    return {k: (jax.tree.map(lambda u, f=scales[k]: u * f, v) if k in scales else v)
            for k, v in updates.items()}, state

  return optax.GradientTransformation(lambda params: optax.EmptyState(), update_fn)


def gradient_clipping(spec: OptimizerSpec) -> optax.GradientTransformation:
  """Clips by global norm (if spec.grad_clip_norm > 0), frozen gradients zeroed first.

  Zeroing first keeps the gradients of the frozen embedding out of the norm, as
  in PyTorch, where frozen parameters have no gradient at all.
  """
  if spec.grad_clip_norm <= 0:
    return optax.identity()
  clip = optax.clip_by_global_norm(spec.grad_clip_norm)
  if spec.freeze_steps <= 0:
    return clip
  zero_frozen = optax.multi_transform(
      {'delayed': start_after(optax.identity(), spec.freeze_steps), 'trained': optax.identity()},
      embedding_labels)
  return optax.chain(zero_frozen, clip)
