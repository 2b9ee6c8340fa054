"""The package's structure: no import cycle, no import from a lower layer back up, models/ = mixers.

Read from the source (every `import` and `from ... import`, function-local ones
included, so a cycle cannot hide inside a function). The layers run from the
basic modules up to the command-line entry points (docs/architecture.md); a
module may import its own layer and those below. A new module is placed in
`LAYERS` by its longest matching prefix; one that matches none fails here, so
its place is decided when it is added.
"""

import ast
import pathlib

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / 'alm_jax'

# Lowest first. A module takes the layer of the longest prefix that names it ('alm_jax' itself,
# the package's __init__, names only itself).
LAYERS = (
    ('alm_jax', 'alm_jax.checks', 'alm_jax.paths', 'alm_jax.frames', 'alm_jax.loudness',
     'alm_jax.integrity', 'alm_jax.stereo', 'alm_jax.config_checks', 'alm_jax.sharding',
     'alm_jax.writers', 'alm_jax.losses', 'alm_jax.audio_io', 'alm_jax.outputs', 'alm_jax.cli',
     'alm_jax.optimizer', 'alm_jax.gradients', 'alm_jax.metrics', 'alm_jax.evaluation.plots',
     'alm_jax.songio', 'alm_jax.allocator'),
    ('alm_jax.embeddings',),
    ('alm_jax.models',),
    ('alm_jax.data',),
    ('alm_jax.checkpoints', 'alm_jax.pretrained'),
    ('alm_jax.restore',),
    ('alm_jax.inference', 'alm_jax.songs'),
    ('alm_jax.validation', 'alm_jax.train', 'alm_jax.evaluation', 'alm_jax.live'),
    ('alm_jax.main', 'alm_jax.mix', 'alm_jax.export', 'alm_jax.evaluate', 'alm_jax.live.__main__'),
)
# What models/ may hold besides mixers (modules defining build_mixer): what they share.
MODEL_HELPERS = {'__init__', 'protocol', 'layers', 'stepping', 'console', 'staging', 'register',
                 'roles'}


def modules() -> dict[str, pathlib.Path]:
  out = {}
  for path in PACKAGE.rglob('*.py'):
    parts = list(path.relative_to(ROOT).with_suffix('').parts)
    if parts[-1] == '__init__':
      parts = parts[:-1]
    out['.'.join(parts)] = path
  return out


def imports(name: str, path: pathlib.Path, known) -> set[str]:
  """The package modules `name` imports (a `from pkg import mod` counts as pkg.mod)."""
  package = name if path.name == '__init__.py' else name.rsplit('.', 1)[0]
  found = set()
  for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
    if isinstance(node, ast.Import):
      targets = [alias.name for alias in node.names]
    elif isinstance(node, ast.ImportFrom):
      base = node.module or ''
      if node.level:
        parts = package.split('.')[:len(package.split('.')) - node.level + 1]
        base = '.'.join(parts + ([base] if base else []))
      targets = [f'{base}.{a.name}' if f'{base}.{a.name}' in known else base for a in node.names]
    else:
      continue
    for target in targets:
      while target not in known and '.' in target:
        target = target.rsplit('.', 1)[0]
      if target in known and target != name:
        found.add(target)
  return found


def graph() -> dict[str, set[str]]:
  known = modules()
  return {name: imports(name, path, known) for name, path in known.items()}


def layer(name: str) -> int:
  best, best_len = None, -1
  for i, prefixes in enumerate(LAYERS):
    for prefix in prefixes:
      covers = name == prefix or (prefix != 'alm_jax' and name.startswith(prefix + '.'))
      if covers and len(prefix) > best_len:
        best, best_len = i, len(prefix)
  return best


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
  """The strongly connected components of more than one module (Tarjan)."""
  index, low, stack, on_stack, found = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on_stack.add(v)
    for w in edges[v]:
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on_stack:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      component = []
      while True:
        w = stack.pop()
        on_stack.discard(w)
        component.append(w)
        if w == v:
          break
      if len(component) > 1:
        found.append(sorted(component))

  for v in sorted(edges):
    if v not in index:
      visit(v)
  return found


def test_the_import_graph_has_no_cycle():
  assert cycles(graph()) == []


def test_the_cycle_finder_finds_one():
  assert cycles({'a': {'b'}, 'b': {'c'}, 'c': {'a'}, 'd': {'a'}}) == [['a', 'b', 'c']]


def test_every_module_has_a_layer_and_imports_nothing_above_it():
  edges = graph()
  unplaced = sorted(name for name in edges if layer(name) is None)
  assert not unplaced, f'place these modules in LAYERS: {unplaced}'
  upward = sorted(f'{a} (layer {layer(a)}) imports {b} (layer {layer(b)})'
                  for a, targets in edges.items() for b in targets if layer(b) > layer(a))
  assert not upward, '\n'.join(upward)


def test_models_holds_mixers_only():
  for path in sorted((PACKAGE / 'models').glob('*.py')):
    if path.stem in MODEL_HELPERS:
      continue
    tree = ast.parse(path.read_text(encoding='utf-8'))
    defined = {n.name for n in tree.body if isinstance(n, (ast.FunctionDef, ast.ClassDef))}
    assert 'build_mixer' in defined, (
        f'{path.relative_to(ROOT)} defines no build_mixer: models/ holds mixers (and '
        f'{sorted(MODEL_HELPERS)}); embeddings, front ends and weights go to alm_jax/embeddings/.')
  assert not list((PACKAGE / 'models').glob('*/')), 'models/ has no sub-folders (weights/ moved)'


def test_mixers_are_built_at_the_entry_points_only():
  """At most 5 places outside models/ build a mixer (models.build_mixer/load/capabilities)."""
  calls = []
  for path in sorted(PACKAGE.rglob('*.py')):
    if (PACKAGE / 'models') in path.parents:
      continue
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
      if isinstance(node, ast.Call):
        func = node.func
        called = func.attr if isinstance(func, ast.Attribute) else getattr(func, 'id', '')
        owner = func.value.id if isinstance(func, ast.Attribute) and isinstance(
            func.value, ast.Name) else ''
        if called == 'build_mixer' or (owner == 'models' and called in ('load', 'capabilities')):
          calls.append(f'{path.relative_to(ROOT)}:{node.lineno}')
  assert len(calls) <= 5, calls


def test_steps_per_epoch_is_defined_once():
  defined = [f'{p.relative_to(ROOT)}' for p in PACKAGE.rglob('*.py')
             for n in ast.walk(ast.parse(p.read_text(encoding='utf-8')))
             if isinstance(n, ast.FunctionDef) and n.name == 'steps_per_epoch']
  assert defined == ['alm_jax/optimizer.py']
