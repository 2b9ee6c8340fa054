"""Integrity of saved checkpoints: array checksums and the files every step must have.

Orbax stores arrays as raw, uncompressed chunks without checksums: a flipped
byte in a data file restores without error as a different number. Every
checkpoint therefore carries a checksum per array (`tree_checksums`), computed
on the device from the arrays' bits when saving (a few scalars cross to the
host, not the arrays) and recomputed from the restored arrays, which also makes
sure every array was really read. The checksum is two position-weighted sums of
the arrays' 32-bit words modulo 2**32: any change of one word changes both
sums (the weights are odd), other damage passes with a chance of about 2**-64.
`check_files` finds the missing or unreadable metadata before orbax trips on it.
"""

import json

from etils import epath
import jax
import jax.numpy as jnp
import numpy as np

_WEIGHT_1 = np.uint32(0x9E3779B1)  # odd multipliers (golden-ratio and murmur3 constants)
_WEIGHT_2 = np.uint32(0x85EBCA77)


def _words(x) -> jax.Array:
  """The bits of array `x` as uint32 words [n] (bool and 8/16-bit values widened, 64-bit split)."""
  if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
    x = jax.random.key_data(x)
  if x.dtype == jnp.bool_:
    return x.astype(jnp.uint32).ravel()
  size = jnp.dtype(x.dtype).itemsize
  if size < 4:
    narrow = {1: jnp.uint8, 2: jnp.uint16}[size]
    return jax.lax.bitcast_convert_type(x, narrow).astype(jnp.uint32).ravel()
  return jax.lax.bitcast_convert_type(x, jnp.uint32).ravel()  # 8 bytes: two words each


def _leaf_sums(x) -> jax.Array:
  """uint32 [2]: the two weighted word sums of one array."""
  u = _words(jnp.asarray(x))
  i = jnp.arange(u.shape[0], dtype=jnp.uint32)
  s1 = jnp.sum(u * (i * _WEIGHT_1 | 1), dtype=jnp.uint32)
  s2 = jnp.sum((u ^ (u >> 13)) * (i * _WEIGHT_2 | 1), dtype=jnp.uint32)
  return jnp.stack([s1, s2])


@jax.jit
def _tree_sums(tree):
  return jax.tree.map(_leaf_sums, tree)


def tree_checksums(tree) -> dict[str, str]:
  """{jax.tree_util.keystr(path): 16 hex digits} for every array of `tree` (one host sync)."""
  sums = jax.device_get(_tree_sums(tree))
  flat = jax.tree_util.tree_flatten_with_path(sums)[0]
  return {jax.tree_util.keystr(path): '%08x%08x' % tuple(int(v) for v in np.asarray(s))
          for path, s in flat}


def mismatches(saved: dict[str, str], tree) -> list[str]:
  """The array names of `tree` whose checksum differs from `saved` (or is missing there)."""
  now = tree_checksums(tree)
  return [k for k in sorted(set(now) | set(saved)) if now.get(k) != saved.get(k)]


class Damaged(Exception):
  """What is wrong with one checkpoint step (a phrase; the caller names the step and the fix)."""


def first_line(e: BaseException) -> str:
  """A library error in one short line (TensorStore appends its whole spec to the message)."""
  text = str(e)
  for noise in ('[tensorstore_spec', 'See full TensorStore details'):
    text = text.split(noise)[0]
  lines = text.strip().rstrip('.').splitlines()
  text = lines[0] if lines else type(e).__name__
  return text if len(text) <= 240 else text[:237] + '...'


def _read_json(step_dir: epath.Path, name: str):
  path = step_dir / name
  if not path.exists():
    raise Damaged(f'{name} is missing')
  try:
    return json.loads(path.read_text())
  except (ValueError, UnicodeDecodeError) as e:  # ValueError: json.JSONDecodeError
    raise Damaged(f'{name} is truncated, empty or overwritten ({first_line(e)})') from e


def check_files(step_dir: epath.Path, items, checksums_item: str) -> dict | None:
  """The saved checksums ({item: {array: checksum}}, None before they existed) of `step_dir`.

  Args:
    step_dir: one checkpoint step, WORKDIR/checkpoints/<step>.
    items: the orbax items to check (e.g. ('params',)).
    checksums_item: the JSON item holding `tree_checksums` of every item.

  Raises:
    Damaged: a file every checkpoint has is missing or unreadable.
  """
  for item in items:
    if not (step_dir / item).is_dir():
      raise Damaged(f'its {item} item ({item}/) is missing')
    _read_json(step_dir, f'{item}/_METADATA')
    if not (step_dir / item / 'manifest.ocdbt').exists():
      raise Damaged(f'{item}/manifest.ocdbt (the index of its array files) is missing')
  if not (step_dir / checksums_item).exists():
    return None
  sums = _read_json(step_dir, f'{checksums_item}/metadata')  # orbax's JSON item file
  for item in items:
    if not isinstance(sums, dict) or not isinstance(sums.get(item), dict):
      raise Damaged(f'{checksums_item}/metadata holds no checksums of {item}')
  return sums


def layout_problems(saved, abstract) -> list[str]:
  """How the saved item's array metadata differs from `abstract` (missing, extra, other shapes)."""
  saved_tree = getattr(saved, 'tree', saved)
  flat_saved = {jax.tree_util.keystr(p): getattr(v, 'shape', None)
                for p, v in jax.tree_util.tree_flatten_with_path(saved_tree)[0] if v is not None}
  flat_want = {jax.tree_util.keystr(p): tuple(v.shape)
               for p, v in jax.tree_util.tree_flatten_with_path(abstract)[0]}
  problems = [f'{k} missing from the checkpoint' for k in sorted(set(flat_want) - set(flat_saved))]
  problems += [f'{k} not in the model' for k in sorted(set(flat_saved) - set(flat_want))]
  problems += [f'{k} has shape {tuple(flat_saved[k])} in the checkpoint, {flat_want[k]} in the model'
               for k in sorted(set(flat_saved) & set(flat_want))
               if tuple(flat_saved[k]) != flat_want[k]]
  return problems


def move_aside(step_dir: epath.Path, damaged_dir: epath.Path) -> epath.Path:
  """Moves `step_dir` into `damaged_dir` (as <step>, else <step>-2, ...); returns the new path."""
  damaged_dir.mkdir(parents=True, exist_ok=True)
  target, n = damaged_dir / step_dir.name, 1
  while target.exists():
    n += 1
    target = damaged_dir / f'{step_dir.name}-{n}'
  step_dir.rename(target)
  return target
