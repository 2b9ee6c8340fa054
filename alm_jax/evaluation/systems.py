"""The systems under evaluation: named functions from (audio, channel mask) to a mix and its gains.

A system is a reference (RAW, the plain sum of the inputs; IDEAL, the
dataset's ideal input gains, where it knows them) or a restored checkpoint.
How a checkpoint mixes follows from its mixer's capabilities
(`alm_jax.models.protocol`), never from its name: a causal mixer is mixed chunk
by chunk at zero latency, a per-segment one (DMC-OG) segment by segment as
published; `alm_jax.inference.offline.mix_arrays` does both. A stereo mixer
(`capabilities.stereo`) also gives its pans and stereo mix; every other system
is placed at the centre, so all are scored on the same stereo metrics.
"""

import copy
import dataclasses
import functools
import re
from typing import Any, Optional, Sequence

from absl import logging
import numpy as np

from alm_jax import models
from alm_jax import restore
from alm_jax import stereo
from alm_jax.data import common
from alm_jax.inference import offline
from alm_jax.models import protocol

RAW = 'RAW'
IDEAL = 'IDEAL'
TARGET = 'TARGET'
TARGET_STEREO = 'TARGET (stereo)'  # the listening page's column of the stereo target
# Added by the evaluation itself, so no checkpoint may be named so.
RESERVED = (RAW, IDEAL, TARGET, TARGET_STEREO)


class EvaluationError(ValueError):
  """Evaluation cannot run as asked; the message says what to change."""


class CheckpointError(EvaluationError):
  """A checkpoint cannot be restored (missing, or not matching its config); names it."""


@dataclasses.dataclass
class System:
  """One mixer under evaluation: a name and a function (audio, mask) -> (mix, gains[, pans, stereo]).

  Attributes:
    name: column name (unique).
    kind: 'raw' (sum of the inputs), 'ideal' (the example's ideal input gains,
      constant), 'causal' (chunked, zero latency) or 'per_segment' (one gain per
      channel per segment, from the whole segment).
    config: the full config used to mix (for RAW and IDEAL: the evaluation's,
      whose model sets their gain frame).
    params: the parameters (None for RAW and IDEAL).
    step: the checkpoint's training step.
    checkpoint: where it was restored from.
    note: how it was evaluated, when that differs from its training config.
    loaded: the mixer built once from `config` and `params` (None for RAW and IDEAL).
  """
  name: str
  kind: str
  config: Any = None
  params: Any = None
  step: Optional[int] = None
  checkpoint: str = ''
  note: str = ''
  loaded: Optional[protocol.LoadedMixer] = None

  @functools.cached_property
  def capabilities(self) -> protocol.Capabilities:
    return self.loaded.capabilities if self.loaded is not None else capabilities(self.config)

  @property
  def frame_seconds(self) -> float:
    """Duration of one gain frame (the mixer's F2)."""
    return self.capabilities.f2 / self.capabilities.sample_rate

  @property
  def stereo(self) -> bool:
    """Whether the system pans (its mixer's capabilities say so); RAW, IDEAL and every mono
    mixer are placed at the centre (`protocol.step_stereo`)."""
    return self.kind not in ('raw', 'ideal') and self.capabilities.stereo

  def mix(self, audio, mask, *, target_gains=None,
          chunk_seconds: float = offline.DEFAULT_CHUNK_SECONDS,
          where: str = '') -> tuple[np.ndarray, np.ndarray]:
    """Mixes one example: (mix float32 [samples], gains float32 [channels, frames]).

    The mono part of `mix_stereo` (same arguments, same errors).
    """
    out = self.mix_stereo(audio, mask, target_gains=target_gains, chunk_seconds=chunk_seconds,
                          where=where)
    return out['mix'], out['gains']

  def mix_stereo(self, audio, mask, *, target_gains=None,
                 chunk_seconds: float = offline.DEFAULT_CHUNK_SECONDS, where: str = '') -> dict:
    """Mixes one example, in stereo too.

    Args:
      audio: float32 [channels, samples].
      mask: bool [channels], False for padding channels.
      target_gains: float64 [channels], the example's ideal input gains
        (`Example.target_gains`), or None where unknown. Only IDEAL reads them:
        a mixer must never see the answer.
      chunk_seconds: chunk length of a causal model.
      where: names the example in error messages.
    Returns:
      {'mix': float32 [samples] (the mono mix: sum of gain x input),
       'gains': float32 [channels, frames] (padding channels 0),
       'pans': float32 [channels, frames] (0, the centre, for a mono system and padding),
       'stereo': float32 [2, samples] (left, right: a stereo mixer's own mix with its
       pans; a mono system's mix at the centre, `stereo.centred`, as
       `protocol.step_stereo` places it)}.
    Raises:
      EvaluationError: more active channels than the model takes, NaN/Inf output,
        or IDEAL without the example's ideal gains.
    """
    audio = np.asarray(audio, np.float32)
    mask = np.asarray(mask, bool)
    c, n = audio.shape
    if self.kind in ('raw', 'ideal'):
      static = (mask.astype(np.float32) if self.kind == 'raw'
                else self._ideal_gains(target_gains, mask, where))
      # One gain per F2 frame, as a mixer's, so the gain metrics read them alike.
      gains = np.repeat(static[:, None], -(-n // self.capabilities.f2), axis=1)
      return _centred((audio * static[:, None]).sum(axis=0), gains)
    cmax = self.capabilities.max_channels
    active = np.flatnonzero(mask)
    if active.size > cmax:
      raise EvaluationError(f'{where} has {active.size} channels, more than the {cmax} of '
                            f'{self.name} (config.model.max_channels); evaluate on data with fewer '
                            'channels or drop that checkpoint.')
    padded = np.zeros((1, cmax, n), np.float32)
    padded[0, :active.size] = audio[active]
    model_mask = np.zeros((1, cmax), bool)
    model_mask[0, :active.size] = True
    # Causal mixers chunk by chunk; per-segment ones segment by segment, each segment of
    # its training length completed with silence (alm_jax.inference.offline). A stereo
    # mixer's outputs hold its pans and stereo mix too.
    loaded = self.loaded if self.loaded is not None else _load(self.name, self.checkpoint,
                                                                self.config, self.params)
    out = offline.mix_arrays(loaded, padded, model_mask, chunk_seconds=chunk_seconds)
    gains = np.zeros((c, out['gains'].shape[-1]), np.float32)
    gains[active] = out['gains'][0, :active.size]
    if 'stereo' in out:
      pans = np.zeros_like(gains)
      pans[active] = out['pans'][0, :active.size]
      result = {'mix': np.asarray(out['mix'][0], np.float32), 'gains': gains, 'pans': pans,
                'stereo': np.asarray(out['stereo'][0], np.float32)}
    else:
      result = _centred(np.asarray(out['mix'][0], np.float32), gains)
    if not all(np.isfinite(v).all() for v in result.values()):
      raise EvaluationError(f'{self.name} ({self.checkpoint}) produced NaN/Inf on {where}: its '
                            'parameters are broken (diverged training?); evaluate an earlier '
                            'checkpoint.')
    return result

  def _ideal_gains(self, target_gains, mask, where) -> np.ndarray:
    """IDEAL's gains: float32 [channels], the ideal gains on active channels, 0 on padding."""
    ideal = None if target_gains is None else np.asarray(target_gains, np.float64)
    if ideal is None or ideal.shape != mask.shape or not np.isfinite(ideal[mask]).all():
      raise EvaluationError(f'{self.name} needs the ideal gain of every active channel of {where} '
                            f'(Example.target_gains), got {target_gains!r}: evaluate it only on '
                            'data that knows its mixing gains (reference_systems decides).')
    return np.where(mask, ideal, 0.0).astype(np.float32)


def _centred(mix, gains) -> dict:
  """`System.mix_stereo`'s outputs of a mono system: every pan 0, the mix at the centre."""
  return {'mix': mix, 'gains': gains, 'pans': np.zeros_like(gains),
          'stereo': np.asarray(stereo.centred(mix), np.float32)}


def raw_system(data_config) -> System:
  """RAW: the plain sum of the inputs, with gain frames of `data_config`'s model."""
  return System(RAW, 'raw', data_config, note='plain sum of the inputs')


def ideal_system(data_config) -> System:
  """IDEAL: the example's ideal input gains, constant, with gain frames of `data_config`'s model.

  Its balance error is 0 and, without bleed, its mix is the target: the
  reference a static-gain mixer could at best reach on the bleed-laden inputs.
  """
  return System(IDEAL, 'ideal', data_config,
                note=("oracle, not a mixer: the dataset's ideal input gains "
                      '(`metrics.ideal_input_gains`), constant over the segment'))


def reference_systems(data_config, target_gains: Sequence[Optional[np.ndarray]]
                      ) -> tuple[list[System], str]:
  """The systems the evaluation adds itself: RAW, and IDEAL where the data knows its gains.

  Args:
    data_config: the evaluation's config (its model sets the gain frames).
    target_gains: each example's `Example.target_gains` (None where unknown).
  Returns:
    ([RAW] or [RAW, IDEAL], why IDEAL was left out: '' when it was not). IDEAL
    needs every example's gains, so that all systems are averaged over the same segments.
  """
  unknown = sum(g is None for g in target_gains)
  if target_gains and not unknown:
    return [raw_system(data_config), ideal_system(data_config)], ''
  return [raw_system(data_config)], (
      f'{IDEAL} (the ideal input gains) is not evaluated: {unknown} of {len(target_gains)} '
      "segments have no known mixing gains (the dataset gives the mix, not each track's gain, "
      'as MedleyDB).')


def slugify(name: str) -> str:
  """A file-name-safe version of `name` (letters, digits, '.', '_', '-')."""
  slug = re.sub(r'[^A-Za-z0-9._-]+', '_', name).strip('._')
  return slug or 'x'


def parse_checkpoints(spec: str) -> list[tuple[str, str]]:
  """'NAME=PATH,NAME=PATH' -> [(name, path)] (an empty spec evaluates the references only).

  Raises:
    EvaluationError: an entry without NAME=, an empty name or path, a name used
      twice (also after making it file-name safe) or a reserved name (RESERVED).
  """
  out, slugs = [], {r.lower(): r for r in RESERVED}
  for entry in [e.strip() for e in (spec or '').split(',') if e.strip()]:
    name, sep, path = entry.partition('=')
    name, path = name.strip(), path.strip()
    if not sep or not name or not path:
      raise EvaluationError(f'--checkpoints entry {entry!r} is not NAME=PATH (e.g. '
                            'ALM-MR=/tmp/alm_mr,DMC-OG=/tmp/dmc_og).')
    slug = slugify(name).lower()
    if slug in slugs:
      clash = slugs[slug]
      what = 'is reserved' if clash in RESERVED else f'clashes with {clash!r}'
      raise EvaluationError(f'--checkpoints name {name!r} {what} (names must be unique, also as '
                            f'file names, and {" / ".join(RESERVED)} are added by the evaluation '
                            'itself): rename it.')
    slugs[slug] = name
    out.append((name, path))
  return out


def capabilities(config) -> protocol.Capabilities:
  """What the config's mixer promises: the one place evaluation asks (never the model's name).

  Raises:
    UnsupportedModelError: the mixer refuses this config (e.g. a per-segment DMC
      with zero_latency=True, which has no defined mix).
  """
  return models.capabilities(config)


def _load(name: str, path: str, config, params, step: Optional[int] = None):
  """The mixer of a checkpoint's config, built once (CheckpointError if it refuses the config)."""
  try:
    return models.load(config, params, step=step or 0, source=path)
  except protocol.UnsupportedModelError as e:
    raise CheckpointError(f'Checkpoint {name}={path}: {e}') from e


def load_system(name: str, path: str) -> System:
  """Restores a checkpoint and decides how it mixes (module docstring).

  `path` is a training workdir or step directory, or the config file of a mixer
  without trained parameters (configs/dugan.py), as `restore.restore_params` takes.

  A causal checkpoint trained with `model.zero_latency = False` is evaluated
  with it forced on (its gains arrive one F2 frame late, as they would live).

  Raises:
    CheckpointError: the checkpoint is missing, unreadable, at another sample
      rate than the data, its parameters do not match its saved config, or its
      model has no defined offline mix; the message names the checkpoint.
  """
  try:
    config, params, step = restore.restore_params(path)
  except Exception as e:  # orbax and the config check raise several types; all end here
    raise CheckpointError(f'Cannot evaluate checkpoint {name}={path}: {type(e).__name__}: {e}') from e
  loaded = _load(name, path, config, params, step)
  caps = loaded.capabilities
  if caps.sample_rate != int(common.SAMPLE_RATE):
    raise CheckpointError(f'Checkpoint {name}={path} mixes at {caps.sample_rate} Hz; the '
                          f'datasets are at {common.SAMPLE_RATE} Hz.')
  if not caps.trainable:
    step = None  # a console automixer (given by its config file): nothing was trained
  if caps.per_segment:
    note = ('non-causal as published: one gain per channel per '
            f'{float(config.data.segment_seconds):g} s segment, computed from the whole segment')
    return System(name, 'per_segment', config, params, step, path, note, loaded)
  note = ''
  if not caps.zero_latency:
    config = copy.deepcopy(config)
    with config.unlocked():
      config.model.zero_latency = True
    note = ('zero latency forced: trained with zero_latency=False, its gains are applied one F2 '
            'frame late')
    logging.warning('%s: %s.', name, note)
    loaded = _load(name, path, config, params, step)
  return System(name, 'causal', config, params, step, path, note, loaded)
