"""ONNX export (jax2onnx) of serve functions and block streams for ONNX Runtime; knows no model.

`export_offline_onnx` turns `serve(params, audio, channel_mask) -> {'mix',
'gains'}` into one ONNX graph, `export_streaming_onnx` turns a block stream's
`init_state(batch, channels)` / `step(params, state, block, channel_mask)`
into an `init_state` graph and one `step` graph per block size, with one
tensor per state key in (`state_<key>`) and out (`new_state_<key>`). Every
dimension is fixed at export (jax2onnx 0.17 could not lower this graph with
symbolic dimensions); the parameters are initializers. Before conversion the
traced jaxpr is rewritten into ONNX-friendly equivalents (`onnx_friendly`); the
converted graph is repaired for ONNX Runtime (`_inline_captures`) and compacted
(`compact`: no full-size copies of broadcast scalars, one copy of each
constant). jax2onnx is 0.13.0, the newest whose requirements admit our orbax
(setup.py). Why jax2onnx and not tf2onnx, the graphs' signatures and a host
loop: docs/deploy.md.
"""

import hashlib
import logging
import os
import pathlib
from typing import Callable, Sequence

import jax
from jax import lax
from jax.extend import core as jcore
import jax.numpy as jnp
import numpy as np

OPSET = 20  # jax2onnx writes DFT in its opset-20 form (axis as an input); ONNX Runtime >= 1.17
# Above this the weights go to a `<name>.data` file beside the graph (protobuf's 2 GB limit).
EXTERNAL_DATA_BYTES = 1 << 30


def _onnx():
  import onnx  # pylint: disable=g-import-not-at-top
  return onnx


# jax2onnx graph passes left out of the conversion: 0.13.0's removal of reshape
# pairs drops a Reshape of the top graph whose output an If body still reads (a
# dangling name that onnx.checker rejects: "Nodes in a graph must be topologically
# sorted"). Without it the graph keeps a Reshape pair; the results are the same.
_SKIPPED_PASSES = ('remove_redundant_reshape_pairs_ir',)


def _to_onnx():
  # jax2onnx imports every optional plugin and logs a traceback for each one
  # whose package (equinox, dm_pix) is absent: those plugins are not needed.
  logging.getLogger('jax2onnx.plugins.plugin_system').setLevel(logging.ERROR)
  from jax2onnx import to_onnx  # pylint: disable=g-import-not-at-top
  from jax2onnx.converter import ir_optimizations  # pylint: disable=g-import-not-at-top

  def converted(*args, **kwargs):
    saved = {name: getattr(ir_optimizations, name) for name in _SKIPPED_PASSES
             if hasattr(ir_optimizations, name)}
    try:
      for name in saved:
        setattr(ir_optimizations, name, lambda graph: None)
      return to_onnx(*args, **kwargs)
    finally:
      for name, fn in saved.items():
        setattr(ir_optimizations, name, fn)

  return converted


# ---------------------------------------------------------------------------
# jaxpr rewrite: constructs jax2onnx converts wrongly, as equivalent ones
# ---------------------------------------------------------------------------

_INLINED_CALLS = ('pjit', 'jit', 'closed_call', 'core_call', 'remat', 'checkpoint')
_CUSTOM_DIFF = ('custom_jvp_call', 'custom_vjp_call', 'custom_vjp_call_jaxpr')


def _rewrite_closed(closed):
  specs = [jax.ShapeDtypeStruct(a.shape, a.dtype, weak_type=a.weak_type) for a in closed.in_avals]
  return jax.make_jaxpr(lambda *args: _interpret(closed.jaxpr, closed.consts, *args))(*specs)


def _rewrite_param(value):
  if isinstance(value, jcore.ClosedJaxpr):
    return _rewrite_closed(value)
  if isinstance(value, tuple) and value and all(isinstance(v, jcore.ClosedJaxpr) for v in value):
    return tuple(_rewrite_closed(v) for v in value)
  return value


def _interpret(jaxpr, consts, *args):
  """Evaluates `jaxpr` under the current trace, binding each equation again except:

  * `abs` of a complex value (|rfft| in the front end): jax2onnx 0.13-0.17 lower it
    to an elementwise Abs of the [..., 2] (re, im) pair instead of the modulus;
    here it is sqrt(re^2 + im^2) (the same number to float rounding);
  * `jit` calls and custom-derivative wrappers: inlined (export needs no
    derivative rule, and fewer nested functions convert faster);
  * sub-jaxprs of control flow (scan, cond, while): rewritten recursively.
  """
  env = {}

  def read(v):
    return v.val if isinstance(v, jcore.Literal) else env[v]

  env.update(zip(jaxpr.constvars, consts))
  env.update(zip(jaxpr.invars, args))
  for eqn in jaxpr.eqns:
    invals = [read(v) for v in eqn.invars]
    name = eqn.primitive.name
    if name == 'abs' and jnp.issubdtype(eqn.invars[0].aval.dtype, jnp.complexfloating):
      re, im = lax.real(invals[0]), lax.imag(invals[0])
      outs = [lax.sqrt(re * re + im * im)]
    elif name in _INLINED_CALLS or name in _CUSTOM_DIFF:
      inner = eqn.params.get('jaxpr', eqn.params.get('call_jaxpr', eqn.params.get('fun_jaxpr')))
      if isinstance(inner, jcore.ClosedJaxpr):
        outs = _interpret(inner.jaxpr, inner.consts, *invals)
      else:
        outs = _interpret(inner, (), *invals)
    else:
      params = {k: _rewrite_param(v) for k, v in eqn.params.items()}
      outs = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(params))
      if not eqn.primitive.multiple_results:
        outs = [outs]
    env.update(zip(eqn.outvars, outs))
  return [read(v) for v in jaxpr.outvars]


def onnx_friendly(fn: Callable, specs: Sequence[jax.ShapeDtypeStruct]) -> Callable:
  """`fn` traced at `specs` and rewritten (`_interpret`): flat arrays -> flat list of outputs."""
  closed = jax.make_jaxpr(lambda *args: jax.tree.leaves(fn(*args)))(*specs)

  def rewritten(*args):
    outs = _interpret(closed.jaxpr, closed.consts, *args)
    # An output that is an input (state a mixer leaves alone, e.g. DMC's GRU
    # carry) or another output would be one ONNX value with two names: copy it.
    seen = {id(a) for a in args}
    for i, x in enumerate(outs):
      if id(x) in seen:
        outs[i] = lax.copy_p.bind(x)
      seen.add(id(outs[i]))
    return outs

  return rewritten


# ---------------------------------------------------------------------------
# Graph repair for ONNX Runtime
# ---------------------------------------------------------------------------


def _subgraphs(node):
  onnx = _onnx()
  for attr in node.attribute:
    if attr.type == onnx.AttributeProto.GRAPH:
      yield attr.g
    elif attr.type == onnx.AttributeProto.GRAPHS:
      yield from attr.graphs


def _rename_inputs(graph, mapping):
  for node in graph.node:
    for i, name in enumerate(node.input):
      if name in mapping:
        node.input[i] = mapping[name]
    for sub in _subgraphs(node):
      _rename_inputs(sub, mapping)


def _inline_captures(graph, top: bool = True) -> int:
  """Drops the Identity nodes by which jax2onnx copies outer values into If/Loop bodies.

  With three nested Ifs inside a Loop (the streaming step: scan over frames ->
  cond(frame complete) -> the mixer's own conds), ONNX Runtime 1.32's graph
  optimizations lose such a copy ("Missing Input: .../cond_capture_N") and
  the session fails at run time. Reading the outer value directly is the same
  graph (ONNX subgraphs see the enclosing scopes' values) and runs.

  Returns:
    the number of nodes removed.
  """
  removed = 0
  if not top:
    local = {v.name for v in graph.input} | {v.name for v in graph.initializer}
    for node in graph.node:
      local.update(node.output)
    outputs = {v.name for v in graph.output}
    mapping, keep = {}, []
    for node in graph.node:
      copy = node.op_type == 'Identity' and node.input[0] not in local
      if copy and node.output[0] not in outputs:
        mapping[node.output[0]] = node.input[0]
      else:
        keep.append(node)
    if mapping:
      del graph.node[:]
      graph.node.extend(keep)
      _rename_inputs(graph, mapping)
      removed += len(mapping)
  for node in graph.node:
    for sub in _subgraphs(node):
      removed += _inline_captures(sub, top=False)
  return removed


def _used_names(graph) -> set:
  """Names the nodes of `graph` and of its subgraphs read, and its outputs."""
  names = {v.name for v in graph.output}
  for node in graph.node:
    names.update(node.input)
    for sub in _subgraphs(node):
      names |= _used_names(sub)
  return names


def _drop_unused_initializers(graph) -> int:
  """Removes initializers nothing reads (jax2onnx leaves some in Loop/If bodies).

  ONNX Runtime would drop them too, with one warning per initializer at every
  session start.
  """
  used = _used_names(graph)
  keep = [t for t in graph.initializer if t.name in used]
  removed = len(graph.initializer) - len(keep)
  if removed:
    del graph.initializer[:]
    graph.initializer.extend(keep)
  for node in graph.node:
    for sub in _subgraphs(node):
      removed += _drop_unused_initializers(sub)
  return removed


def _is_uniform(array) -> bool:
  flat = array.reshape(-1)
  return flat.size > 0 and bool((flat == flat[0]).all())


def _fill_uniform_constants(graph, min_elements: int) -> int:
  """Replaces each initializer of one repeated value by a `ConstantOfShape` node making it.

  jax2onnx writes a broadcast scalar (the 0 of `jnp.where(mask, x, 0)` over
  [batch, channels, frames, samples]) as a full-size initializer: for the
  shipped mixer two [1, 8, 600, 2205] zeros took 85 of the file's 96 MB. The
  node computes the same tensor when the session starts (ONNX Runtime folds
  it), so the graph's results are unchanged. Subgraphs (If/Loop bodies) too.

  Returns:
    the number of initializers replaced.
  """
  onnx = _onnx()
  from onnx import numpy_helper  # pylint: disable=g-import-not-at-top
  keep, nodes = [], []
  for tensor in graph.initializer:
    if _numel(tensor) < min_elements or tensor.data_location == onnx.TensorProto.EXTERNAL:
      keep.append(tensor)
      continue
    array = numpy_helper.to_array(tensor)
    if not _is_uniform(array):
      keep.append(tensor)
      continue
    shape = numpy_helper.from_array(np.asarray(array.shape, np.int64), tensor.name + '__shape')
    keep.append(shape)
    value = numpy_helper.from_array(array.reshape(-1)[:1].copy(), 'value')
    nodes.append(onnx.helper.make_node('ConstantOfShape', [shape.name], [tensor.name],
                                       name=tensor.name + '__fill', value=value))
  if nodes:
    del graph.initializer[:]
    graph.initializer.extend(keep)
    rest = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + rest)  # first: the graph's nodes stay topologically sorted
  replaced = len(nodes)
  for node in graph.node:
    for sub in _subgraphs(node):
      replaced += _fill_uniform_constants(sub, min_elements)
  return replaced


def _numel(tensor) -> int:
  return int(np.prod(tensor.dims, dtype=np.int64)) if tensor.dims else 1


def _merge_duplicate_initializers(graph) -> int:
  """Keeps one copy of top-level initializers equal in type, shape and values.

  jax2onnx writes a constant once per use (the resampler's filter bank once per
  embedding call: eight copies in the shipped mixer's graph). Readers,
  subgraphs included, are pointed at the first copy.

  Returns:
    the number of initializers removed.
  """
  onnx = _onnx()
  from onnx import numpy_helper  # pylint: disable=g-import-not-at-top
  outputs = {v.name for v in graph.output}
  first, mapping, keep = {}, {}, []
  for tensor in graph.initializer:
    if (tensor.data_location == onnx.TensorProto.EXTERNAL or _numel(tensor) < 16
        or tensor.name in outputs):
      keep.append(tensor)
      continue
    key = (tensor.data_type, tuple(tensor.dims),
           hashlib.sha256(numpy_helper.to_array(tensor).tobytes()).hexdigest())
    if key in first:
      mapping[tensor.name] = first[key]
    else:
      first[key] = tensor.name
      keep.append(tensor)
  if mapping:
    del graph.initializer[:]
    graph.initializer.extend(keep)
    _rename_inputs(graph, mapping)
  return len(mapping)


def _drop_value_info(graph) -> int:
  """Removes the intermediate shape annotations (`value_info`) of `graph` and its subgraphs.

  They are hints, not part of what the graph computes; jax2onnx 0.13 writes
  some inside `If` bodies with the batch dimension of 1 whatever the batch, which
  onnx.checker's shape inference rejects ("Inferred shape and existing shape
  differ"). Without them, ONNX and ONNX Runtime infer the shapes themselves.
  """
  removed = len(graph.value_info)
  del graph.value_info[:]
  for node in graph.node:
    for sub in _subgraphs(node):
      removed += _drop_value_info(sub)
  return removed


def compact(model, min_elements: int = 1024):
  """Shrinks `model` in place without changing what it computes; returns it.

  Uniform initializers of at least `min_elements` become `ConstantOfShape`
  nodes and duplicate initializers one copy (`_fill_uniform_constants`,
  `_merge_duplicate_initializers`).
  """
  _merge_duplicate_initializers(model.graph)
  _fill_uniform_constants(model.graph, min_elements)
  return model


def _save(model, path) -> pathlib.Path:
  """Checks `model` (onnx.checker) and writes it; large weights go to `<name>.data` beside it."""
  onnx = _onnx()
  onnx.checker.check_model(model)
  path = pathlib.Path(path)
  path.parent.mkdir(parents=True, exist_ok=True)
  external = model.ByteSize() > EXTERNAL_DATA_BYTES
  onnx.save_model(model, os.fspath(path), save_as_external_data=external,
                  location=path.name + '.data' if external else None)
  return path


def convert(fn: Callable, specs: Sequence[jax.ShapeDtypeStruct], input_names: Sequence[str],
            output_names: Sequence[str], opset: int = OPSET, name: str = 'alm_jax'):
  """The onnx.ModelProto of `fn(*specs)`; its flattened outputs are named `output_names`."""
  model = _to_onnx()(onnx_friendly(fn, specs), inputs=list(specs), input_names=list(input_names),
                     output_names=list(output_names), opset=opset, model_name=name)
  _inline_captures(model.graph)
  _drop_unused_initializers(model.graph)
  _drop_value_info(model.graph)
  return compact(model)


# ---------------------------------------------------------------------------
# Offline and streaming graphs
# ---------------------------------------------------------------------------


def export_offline_onnx(serve: Callable, params, path, *, batch: int, channels: int,
                        samples: int, opset: int = OPSET) -> pathlib.Path:
  """Writes the ONNX graph of an offline mixer.

  Args:
    serve: (params, audio [b, c, n], channel_mask [b, c] bool) -> {'mix' [b, n],
      'gains' [b, c, frames]}.
    params: the parameter tree (becomes initializers).
    path: the .onnx file to write.
    batch, channels, samples: the fixed input shape.
    opset: ONNX opset.
  Returns:
    path. Graph inputs `audio` float32 [batch, channels, samples] and
    `channel_mask` bool [batch, channels]; outputs `mix`, `gains`.
  """
  specs = [jax.ShapeDtypeStruct((batch, channels, samples), jnp.float32),
           jax.ShapeDtypeStruct((batch, channels), jnp.bool_)]
  keys = sorted(jax.eval_shape(lambda a, m: serve(params, a, m), *specs))
  fn = lambda audio, mask: [serve(params, audio, mask)[k] for k in keys]
  return _save(convert(fn, specs, ['audio', 'channel_mask'], keys, opset, 'offline'), path)


def export_streaming_onnx(init_state: Callable, step: Callable, params, block_sizes: Sequence[int],
                          folder, *, batch: int, channels: int,
                          opset: int = OPSET) -> dict[str, pathlib.Path]:
  """Writes `init_state.onnx` and `step_<n>.onnx` for each block size n into `folder`.

  Args:
    init_state: (batch, channels) -> flat dict of state arrays.
    step: (params, state, block [b, c, n], channel_mask [b, c]) ->
      (state, out [b, n], gains [b, c], faults [b, c] bool).
    params: the parameter tree (becomes initializers of every step graph).
    block_sizes: samples per block, one graph each.
    folder: where the graphs go.
    batch, channels: the fixed stream shape.
    opset: ONNX opset.
  Returns:
    {'init_state': path, 'step_<n>': path, ...}. `init_state.onnx` has no
    inputs and outputs `state_<key>`; `step_<n>.onnx` takes `block` float32
    [batch, channels, n], `channel_mask` bool [batch, channels] and every
    `state_<key>`, and outputs `out`, `gains`, `faults` and `new_state_<key>`.
  """
  folder = pathlib.Path(folder)
  state0 = jax.eval_shape(lambda: init_state(batch, channels))
  keys = sorted(state0)
  state_names = [f'state_{k}' for k in keys]
  paths = {'init_state': _save(convert(
      lambda: [init_state(batch, channels)[k] for k in keys], [], [], state_names, opset,
      'init_state'), folder / 'init_state.onnx')}
  state_specs = [jax.ShapeDtypeStruct(state0[k].shape, state0[k].dtype) for k in keys]

  def step_fn(block, mask, *state):
    new_state, out, gains, faults = step(params, dict(zip(keys, state)), block, mask)
    return [out, gains, faults] + [new_state[k] for k in keys]

  for n in block_sizes:
    specs = [jax.ShapeDtypeStruct((batch, channels, int(n)), jnp.float32),
             jax.ShapeDtypeStruct((batch, channels), jnp.bool_)] + state_specs
    model = convert(step_fn, specs, ['block', 'channel_mask'] + state_names,
                    ['out', 'gains', 'faults'] + [f'new_state_{k}' for k in keys], opset,
                    f'step_{n}')
    paths[f'step_{n}'] = _save(model, folder / f'step_{int(n)}.onnx')
  return paths
