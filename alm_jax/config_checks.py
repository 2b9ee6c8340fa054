"""Config values checked once, up front: each error names the key, its value and the valid range.

    config_checks.check(config)   # raises ConfigError listing every bad value

`alm_jax.main` runs it before any work and `alm_jax.checkpoints` on a saved
run's config.json, so a value such as `train.batch_size=0` is refused by name
instead of surfacing later as a ZeroDivisionError, an empty validation split or
a run that trains nothing. Keys absent from a config (an older config.json)
are skipped; names (model.name, embedding.name, ...) are left to the code that
reads them, which lists the valid ones.
"""

import json
import math
import os
import numbers
from typing import Callable, Sequence

import ml_collections

from alm_jax import frames


class ConfigError(ValueError):
  """One or more config values out of range (the message lists them all)."""


def _is_int(v) -> bool:
  return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
  return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _integer(lo: int, hi: int | None = None):
  text = f'an integer >= {lo}' if hi is None else f'an integer in [{lo}, {hi}]'
  return (lambda v: _is_int(v) and v >= lo and (hi is None or v <= hi)), text


def _number(lo: float | None = None, hi: float | None = None, *, lo_open: bool = False,
            hi_open: bool = False):
  """A finite number in the interval lo..hi (open or closed at each end; None: unbounded)."""
  parts = []
  if lo is not None:
    parts.append(f'{">" if lo_open else ">="} {lo:g}')
  if hi is not None:
    parts.append(f'{"<" if hi_open else "<="} {hi:g}')

  def ok(v):
    if not _is_real(v):
      return False
    if lo is not None and (v <= lo if lo_open else v < lo):
      return False
    return hi is None or (v < hi if hi_open else v <= hi)

  return ok, 'a finite number' + (' ' + ' and '.join(parts) if parts else '')


def _each(rule, empty_ok: bool = False):
  ok, text = rule
  return ((lambda v: isinstance(v, Sequence) and not isinstance(v, str)
           and (empty_ok or len(v) > 0) and all(ok(x) for x in v)),
          f'a {"" if empty_ok else "non-empty "}list, each {text}')


def _range_pair(rule):
  """(low, high), both passing `rule`, low <= high."""
  ok, text = rule
  return ((lambda v: isinstance(v, Sequence) and len(v) == 2 and ok(v[0]) and ok(v[1])
           and v[0] <= v[1]), f'(low, high) with low <= high, each {text}')


POSITIVE = _number(0, lo_open=True)
NON_NEGATIVE = _number(0)
FINITE = _number()
FRACTION = _number(0, 1, hi_open=True)  # dropout rates

# key -> (test, valid range in words)
RULES: dict[str, tuple[Callable, str]] = {
    'seed': _integer(0),
    'model.sample_rate': _integer(1),
    'model.f1_ms': POSITIVE,
    'model.f2_ms': POSITIVE,
    'model.f1_stride': _integer(1),
    'model.f1_lag': _integer(0),
    'model.max_channels': _integer(1),
    'model.initial_gain': NON_NEGATIVE,
    'model.gain_smooth_s': NON_NEGATIVE,
    'model.d_model': _integer(1),
    'model.rms_floor_db': FINITE,
    'model.frontend.sample_rate': _integer(1),
    'model.frontend.window_ms': POSITIVE,
    'model.frontend.hop_ms': POSITIVE,
    'model.frontend.n_fft': _integer(1),
    'model.frontend.n_mels': _integer(1),
    'model.frontend.fmin': NON_NEGATIVE,
    'model.frontend.fmax': POSITIVE,
    'model.frontend.log_offset': POSITIVE,
    'model.frontend.patch_frames': _integer(1),
    'model.frontend.resample_zero_crossings': _integer(1),
    'model.frontend.resample_rolloff': _number(0, 1, lo_open=True),
    'model.embedding.dim': _integer(1),
    'model.embedding.small_features': _each(_integer(1)),
    'model.encoder.num_layers': _integer(0),
    'model.encoder.num_heads': _integer(1),
    'model.encoder.mlp_dim': _integer(1),
    'model.encoder.dropout': FRACTION,
    'model.gru_hidden': _integer(1),
    'model.mlp_dims': _each(_integer(1), empty_ok=True),
    'model.dmc_dropout': FRACTION,
    'model.staging.level_db': FINITE,
    'model.staging.offset_scale_db': POSITIVE,
    'model.staging.active_range_db': POSITIVE,
    'model.staging.time_constant_s': POSITIVE,
    'model.staging.smooth_s': NON_NEGATIVE,
    'model.staging.min_gain_db': FINITE,
    'model.register.n_fft': _integer(8),
    'model.register.time_constant_s': POSITIVE,
    'model.register.relation_dim': _integer(1),
    'model.register.sharpness': POSITIVE,
    'model.register.ends_sharpness': POSITIVE,
    'model.register.pan_sharpness': POSITIVE,
    'model.register.layout_width_init': FINITE,
    'model.staging.max_gain_db': FINITE,
    'model.min_gain_db': FINITE,
    'model.max_gain_db': FINITE,
    'loss.fft_sizes': _each(_integer(1)),
    'loss.win_lengths': _each(_integer(1)),
    'loss.hop_fraction': _number(0, 1, lo_open=True),
    'loss.w_sc': NON_NEGATIVE,
    'loss.w_log_mag': NON_NEGATIVE,
    'loss.eps': POSITIVE,
    'loss.balance_weight': NON_NEGATIVE,
    'loss.gain_change_weight': NON_NEGATIVE,
    'loss.side_weight': NON_NEGATIVE,
    'loss.pan_weight': NON_NEGATIVE,
    'loss.spread_weight': NON_NEGATIVE,
    'loss.pan_width_weight': NON_NEGATIVE,
    'data.max_raw_tracks': _integer(1),
    'data.segment_seconds': POSITIVE,
    'data.eval_segment_seconds': POSITIVE,
    'data.silence_db': FINITE,
    'data.eval_segments_per_song': _integer(1),
    'data.prefetch': _integer(0),
    'data.num_workers': _integer(-1),
    'data.bleed.bank_size': _integer(1),
    'data.bleed.severity_db': _range_pair(FINITE),
    'data.bleed.rir_seconds': POSITIVE,
    'data.bleed.rt60': _range_pair(POSITIVE),
    'data.bleed.room_min': _each(POSITIVE),
    'data.bleed.room_max': _each(POSITIVE),
    'data.bleed.mic_distance': _range_pair(POSITIVE),
    'data.bleed.min_source_spacing': NON_NEGATIVE,
    'data.bleed.max_order': _integer(0),
    'data.bleed.workers': _integer(1),
    'data.levels.pre_bleed_db': _range_pair(FINITE),
    'data.levels.post_bleed_db': _range_pair(FINITE),
    'data.timbre.tilt_db': NON_NEGATIVE,
    'data.timbre.bell_db': NON_NEGATIVE,
    'data.timbre.bells': _integer(0),
    'train.batch_size': _integer(1),
    'train.num_epochs': _integer(1),
    'train.learning_rate': POSITIVE,
    'train.lr_boundaries_epochs': _each(NON_NEGATIVE, empty_ok=True),
    'train.lr_decay': POSITIVE,
    'train.weight_decay': NON_NEGATIVE,
    'train.freeze_embedding_epochs': NON_NEGATIVE,
    'train.grad_clip_norm': NON_NEGATIVE,
    'train.grad_accum_steps': _integer(1),
    'train.remat_embedding_chunk': _integer(0),
    'train.log_every_steps': _integer(1),
    'train.eval_every_steps': _integer(-(2**62)),  # <= 0: no validation
    'train.checkpoint_every_steps': _integer(1),
    'train.keep_checkpoints': _integer(1),
}
COMPUTE_DTYPES = ('float32', 'bfloat16', 'float16')
_MISSING = object()


def _get(config, key: str):
  node = config
  for part in key.split('.'):
    try:
      node = node[part]
    except (KeyError, TypeError, AttributeError):
      return _MISSING
  return node


def spread_problem(spread_weight: float, layout_on: bool) -> str | None:
  """Why config.loss.spread_weight cannot train this model (None: it can)."""
  if spread_weight and not layout_on:
    return (f'config.loss.spread_weight = {spread_weight!r} trains the pan layout\'s spread, and '
            'config.model.register.pan_layout is off: set config.model.register.pan_layout = '
            'True (with config.model.outputs = (\'gain\', \'pan\')), or the weight to 0.')
  return None


def _relations(get) -> list[str]:
  """Checks between keys (each value alone already passed its rule)."""
  problems = []

  def both(*keys):
    values = [get(k) for k in keys]
    return None if any(v is _MISSING for v in values) else values

  v = both('model.f1_ms', 'model.f2_ms')
  if v and v[1] > v[0]:
    problems.append(f'config.model.f2_ms = {v[1]!r} is longer than config.model.f1_ms = {v[0]!r}: '
                    'an F2 (gain) frame must fit in one F1 (embedding) frame, f2_ms <= f1_ms.')
  v = both('model.f1_lag', 'model.f1_stride')
  if v and frames.lag_problem(*v):
    problems.append(frames.lag_problem(*v))
  v = both('loss.spread_weight', 'model.register.pan_layout')
  if v and spread_problem(*v):
    problems.append(spread_problem(*v))
  v = both('data.timbre.in_eval', 'data.timbre.enabled')
  if v and v[0] and not v[1]:
    problems.append('config.data.timbre.in_eval = True needs config.data.timbre.enabled = True '
                    '(the evaluation batches are equalised only with the augmentation on).')
  v = both('model.f2_ms', 'model.sample_rate')
  if v and round(v[0] * v[1] / 1000.0) < 1:
    problems.append(f'config.model.f2_ms = {v[0]!r} is less than one sample at '
                    f'config.model.sample_rate = {v[1]!r} Hz: give f2_ms >= {1000.0 / v[1]:.4g}.')
  for seg in ('data.segment_seconds', 'data.eval_segment_seconds'):
    v = both(seg, 'model.f1_ms')
    if v and v[0] * 1000.0 < v[1]:
      problems.append(f'config.{seg} = {v[0]!r} is shorter than one F1 frame (config.model.f1_ms = '
                      f'{v[1]!r}): the model needs at least {v[1] / 1000.0:g} s.')
  v = both('model.frontend.fmin', 'model.frontend.fmax', 'model.frontend.sample_rate')
  if v and not v[0] < v[1] <= v[2] / 2:
    problems.append(f'config.model.frontend.fmin = {v[0]!r}, fmax = {v[1]!r}: need fmin < fmax <= '
                    f'half of frontend.sample_rate ({v[2] / 2:g} Hz).')
  v = both('model.frontend.window_ms', 'model.frontend.n_fft', 'model.frontend.sample_rate')
  if v and v[0] * v[2] / 1000.0 > v[1] + 0.5:
    problems.append(f'config.model.frontend.window_ms = {v[0]!r} is longer than n_fft = {v[1]!r} '
                    f'samples at {v[2]} Hz: raise n_fft or shorten the window.')
  v = both('model.d_model', 'model.encoder.num_heads')
  if v and get('model.name') == 'alm' and v[0] % v[1]:
    problems.append(f'config.model.d_model = {v[0]!r} is not a multiple of '
                    f'config.model.encoder.num_heads = {v[1]!r}.')
  v = both('model.min_gain_db', 'model.max_gain_db')
  if v and v[0] >= v[1]:
    problems.append(f'config.model.min_gain_db = {v[0]!r} must be below max_gain_db = {v[1]!r}.')
  v = both('loss.fft_sizes', 'loss.win_lengths')
  if v and (len(v[0]) != len(v[1]) or any(w > n for n, w in zip(*v))):
    problems.append(f'config.loss.win_lengths = {tuple(v[1])!r} must pair with config.loss.fft_sizes'
                    f' = {tuple(v[0])!r}: as many entries, each window <= its FFT size.')
  v = both('data.bleed.room_min', 'data.bleed.room_max')
  if v and (len(v[0]) != 3 or len(v[1]) != 3 or any(a > b for a, b in zip(*v))):
    problems.append(f'config.data.bleed.room_min = {tuple(v[0])!r}, room_max = {tuple(v[1])!r}: '
                    'need 3 sides each (m), room_min <= room_max.')
  v = both('train.steps_per_epoch',)
  if v and not (_is_int(v[0]) and (v[0] == -1 or v[0] >= 1)):
    problems.append(f'config.train.steps_per_epoch = {v[0]!r}: valid are -1 (ceil(train songs / '
                    'batch_size)) or an integer >= 1.')
  v = both('train.batch_size', 'train.grad_accum_steps')
  if v and _is_int(v[0]) and _is_int(v[1]) and v[1] >= 1 and v[0] % v[1]:
    problems.append(f'config.train.batch_size = {v[0]!r} is not a multiple of '
                    f'config.train.grad_accum_steps = {v[1]!r}.')
  v = both('train.compute_dtype')
  if v and v[0] not in COMPUTE_DTYPES:
    problems.append(f'config.train.compute_dtype = {v[0]!r}: valid are {", ".join(COMPUTE_DTYPES)}.')
  v = both('train.batch_size', 'model.max_channels', 'data.segment_seconds', 'model.sample_rate')
  if v:
    problems.extend(_batch_memory(*v))
  return problems


def physical_memory() -> int | None:
  """This machine's RAM in bytes (None where the OS does not say)."""
  try:
    return os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES')
  except (ValueError, OSError, AttributeError):
    return None


def _batch_memory(batch: int, channels: int, seconds: float, rate: int) -> list[str]:
  """A batch whose audio alone exceeds this machine's RAM is refused, saying how much it needs.

  The bound is a floor: one batch's multitrack input and its target mix in
  float32 ([batch, channels + 1, samples]); the model's activations come on
  top. Without it a batch of a million grinds for minutes before failing.
  """
  total = physical_memory()
  per_example = (channels + 1) * math.ceil(seconds * rate) * 4
  need = batch * per_example
  if total is None or need <= total:
    return []
  return [f'config.train.batch_size = {batch!r} needs at least {need / 1e9:,.1f} GB for one '
          f'batch\'s audio alone ({batch} x {channels + 1} tracks x {seconds:g} s at {rate} Hz, '
          f'float32), more than this machine\'s {total / 1e9:.1f} GB of RAM: at most '
          f'{total // per_example} fits even before the model; lower train.batch_size (or '
          'data.segment_seconds).']


def problems(config, sections: Sequence[str] | None = None) -> list[str]:
  """Every out-of-range value of `config` (a ConfigDict or nested dict), one sentence each.

  Args:
    sections: only keys under these top-level sections (e.g. ('model',)); None: all.
  """
  keep = (lambda key: True) if sections is None else (
      lambda key: key.split('.')[0] in sections)
  found = []
  for key, (ok, valid) in RULES.items():
    value = _get(config, key)
    if keep(key) and value is not _MISSING and not ok(value):
      found.append(f'config.{key} = {value!r}: must be {valid}.')
  if not found:  # relations only between values that are each valid
    found = [p for p in _relations(lambda k: _get(config, k) if keep(k) else _MISSING)]
  return found


def check(config, sections: Sequence[str] | None = None, where: str = 'The config'):
  """Raises ConfigError listing every out-of-range value (see `problems`)."""
  found = problems(config, sections)
  if found:
    raise ConfigError(f'{where} has {len(found)} invalid value(s): ' + ' '.join(found) +
                      ' Fix them in the config file or the --config.<key>=... override.')


# ---- command-line overrides --------------------------------------------------


def _load_config_file(spec: str):
  """get_config() of `--config`'s value (PATH or PATH:ARG, as ml_collections reads it)."""
  import importlib.util  # pylint: disable=g-import-not-at-top  (only for this check)
  path, _, arg = spec.partition(':')
  module_spec = importlib.util.spec_from_file_location('_alm_config_for_overrides', path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  return module.get_config(arg) if arg else module.get_config()


def override_problem(argv: Sequence[str], flag: str = 'config') -> str | None:
  """One line for a `--config.a.b=...` override naming a key the config lacks, else None.

  ml_collections raises a bare AttributeError (a traceback) while parsing the
  flags; this check runs first and says which key is wrong and the closest
  valid one ("did you mean num_epochs"). Anything it cannot check (no
  --config, a config file that does not load) is left to the flag parser.
  """
  import difflib  # pylint: disable=g-import-not-at-top  (only for this check)
  spec, keys = None, []
  args = list(argv)
  for i, a in enumerate(args):
    if a == '--':
      break
    if a.startswith(f'--{flag}=') or a.startswith(f'-{flag}='):
      spec = a.split('=', 1)[1]
    elif a in (f'--{flag}', f'-{flag}') and i + 1 < len(args):
      spec = args[i + 1]
    elif a.lstrip('-').startswith(f'{flag}.') and a.startswith('-'):
      keys.append(a.lstrip('-')[len(flag) + 1:].split('=', 1)[0])
  if spec is None or not keys:
    return None
  try:
    config = _load_config_file(spec)
  except Exception:  # pylint: disable=broad-except  (the flag parser reports it)
    return None
  for key in keys:
    node, where = config, flag
    for part in key.split('.'):
      if isinstance(node, (ml_collections.ConfigDict, dict)) and part in node:
        node, where = node[part], f'{where}.{part}'
        continue
      if isinstance(node, (ml_collections.ConfigDict, dict)):
        valid = sorted(node.keys())
        close = difflib.get_close_matches(part, valid, n=1, cutoff=0.5)
        hint = (f'did you mean {close[0]} (--{where}.{close[0]}=...)?' if close else
                f'its keys are {", ".join(valid)}.')
        return (f'--{flag}.{key}: {where} in {spec} has no key {part!r}; {hint} Fix the '
                'override.')
      return (f'--{flag}.{key}: {where} in {spec} is a value ({node!r}), not a section with '
              f'key {part!r}; fix the override.')
  return None


# ---- comparing configs -------------------------------------------------------


def _plain(config_section) -> dict:
  """A config section as plain JSON values, so tuples and lists compare equal."""
  if isinstance(config_section, ml_collections.ConfigDict):
    return json.loads(config_section.to_json_best_effort())
  return json.loads(json.dumps(config_section))


def _flatten(d, prefix=''):
  out = {}
  for k, v in d.items():
    key = f'{prefix}{k}'
    if isinstance(v, dict):
      out.update(_flatten(v, key + '.'))
    else:
      out[key] = v
  return out


# config.model keys added after models were saved with them absent: absent means this value,
# so a checkpoint saved before the key existed matches a config that states the default.
MODEL_DEFAULTS = {'outputs': ['gain'], 'pan_embedding': False, 'register.pan_relation': False,
                  'register.pan_sharpness': 4.0, 'register.pan_layout': False,
                  'register.layout_width_init': 0.0, 'register.pan_relation_own': False,
                  'register.ends': False, 'register.ends_sharpness': 8.0}


def model_differences(saved_model, model, ignore=()) -> list[str]:
  """'model.key: saved -> new' for every config.model entry that differs, but the keys in `ignore`."""
  a, b = _flatten(_plain(saved_model)), _flatten(_plain(model))
  for key, value in MODEL_DEFAULTS.items():
    a.setdefault(key, value)
    b.setdefault(key, value)
  diffs = []
  for key in sorted(set(a) | set(b)):
    if key in ignore:
      continue
    if a.get(key, '<absent>') != b.get(key, '<absent>'):
      diffs.append(f'model.{key}: {a.get(key, "<absent>")!r} -> {b.get(key, "<absent>")!r}')
  return diffs
