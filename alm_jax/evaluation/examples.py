"""Evaluation examples: the song segments every system hears, drawn from the data pipeline.

The segments, channel orders, bleed and input levels come from
`alm_jax.data.pipeline.make_eval_batches`, which draws them from (seed, split,
song, window) only, so all systems hear identical audio and reruns reproduce
it. The batches' metadata names each channel's raw track, the input level
applied to it and (synthetic_live) its designed gain in the target mix.
"""

import copy
import dataclasses
from typing import Optional

import numpy as np

from alm_jax import metrics
from alm_jax.data import common
from alm_jax.data import pipeline
from alm_jax.data import placement
from alm_jax.evaluation import systems


def role_of(channel_name: str) -> str:
  """An example's channel label '3: bass:Fingered Bs.' -> its role 'bass' (`placement.role_of`)."""
  return placement.role_of(channel_name.split(': ', 1)[-1])


@dataclasses.dataclass
class Example:
  """One song segment, as every system receives it.

  Attributes:
    song_id: the dataset's song id.
    segment: the window's index within the song (0 in whole-song mode).
    audio: float32 [channels, samples], the pipeline's inputs (bleed and levels applied).
    target: float32 [samples], the target mix.
    bleed_severity_db: the simulated severity (bleed.BLEED_OFF_DB when none).
    channel_names: one label per channel ('2: bass').
    target_gains: float64 [channels] linear gains that turn each input channel's
      own source into its level in the target mix, or None when the dataset does
      not know them (MedleyDB).
    start_seconds: where the segment starts in the song.
    target_stereo: float32 [2, samples], the target mix with the designed placement
      (left, right), or None where the dataset has none (MedleyDB).
    ideal_pans: float64 [channels], each input channel's designed pan
      (`alm_jax.data.placement`), or None where the dataset has no placement.
  """
  song_id: str
  segment: int
  audio: np.ndarray
  target: np.ndarray
  bleed_severity_db: float
  channel_names: list
  target_gains: Optional[np.ndarray]
  start_seconds: float = 0.0
  target_stereo: Optional[np.ndarray] = None
  ideal_pans: Optional[np.ndarray] = None

  @property
  def roles(self) -> list:
    """Each channel's role: '3: bass:Fingered Bs.' -> 'bass' (the instrument label's part before ':')."""
    return [role_of(n) for n in self.channel_names]

  @property
  def has_placement(self) -> bool:
    """Whether the stereo metrics are defined: a stereo target and every channel's designed pan."""
    return self.target_stereo is not None and self.ideal_pans is not None

  @property
  def key(self) -> str:
    return f'{systems.slugify(self.song_id)}_seg{self.segment:02d}'

  @property
  def span(self) -> str:
    """'0:12.0–0:32.0': where the segment lies in the song."""
    end = self.start_seconds + self.audio.shape[-1] / common.SAMPLE_RATE
    return f'{clock(self.start_seconds)}–{clock(end)}'

  @property
  def where(self) -> str:
    """Names the example in messages."""
    return f'{self.song_id} segment {self.segment}'


def clock(seconds: float) -> str:
  """'2:05.3' for 125.34 s."""
  minutes, rest = divmod(max(float(seconds), 0.0), 60.0)
  if rest >= 59.95:  # would print as 60.0
    minutes, rest = minutes + 1, 0.0
  return f'{int(minutes)}:{rest:04.1f}'


def eval_data_config(config, split: str, *, segment_seconds: Optional[float] = None,
                     segments_per_song: Optional[int] = None):
  """A copy of `config` whose evaluation batches are this evaluation's examples.

  segment_seconds: None keeps config.data.eval_segment_seconds; 0 means whole
  songs (one window as long as the longest song; shorter songs are cut back to
  their length). segments_per_song: None keeps config.data.eval_segments_per_song.
  Batches hold one example each, so no padding example costs a bleed simulation.

  Raises:
    EvaluationError: a negative segment length, fewer than one segment per song,
      or (whole songs) an empty split.
  """
  cfg = copy.deepcopy(config)
  with cfg.unlocked():
    if segment_seconds is not None and segment_seconds < 0:
      raise systems.EvaluationError(f'--segment_seconds must be >= 0 (0: whole songs), got '
                                    f'{segment_seconds}.')
    if segment_seconds == 0:
      songs = pipeline.load_songs(cfg, split)
      if not songs:
        raise systems.EvaluationError(f'The {split!r} split of {cfg.data.name!r} has no songs.')
      cfg.data.eval_segment_seconds = max(s.num_samples for s in songs) / common.SAMPLE_RATE
      cfg.data.eval_segments_per_song = 1
    elif segment_seconds is not None:
      cfg.data.eval_segment_seconds = float(segment_seconds)
    if segments_per_song is not None:
      if segments_per_song < 1:
        raise systems.EvaluationError(f'--segments_per_song must be >= 1, got {segments_per_song}.')
      if segment_seconds != 0:
        cfg.data.eval_segments_per_song = int(segments_per_song)
    cfg.train.batch_size = 1
  return cfg


def load_examples(config, split: str, *, workdir: Optional[str] = None) -> list[Example]:
  """The examples of `split` under `config` (see `eval_data_config`), in pipeline order.

  Raises:
    EvaluationError: the split has no songs.
  """
  lengths = {s.song_id: s.num_samples for s in pipeline.load_songs(config, split)}
  batches = pipeline.make_eval_batches(config, split, workdir=workdir)
  if not batches:
    raise systems.EvaluationError(
        f'The {split!r} split of {config.data.name!r} has no songs to evaluate; check config.data '
        '(name, data_dir, max_raw_tracks) and --split.')
  examples, windows = [], {}
  for batch in batches:
    for e in np.flatnonzero(batch['example_mask']):
      song_id = batch['song_id'][e]
      c = int(np.sum(batch['channel_mask'][e]))
      n = min(batch['audio'].shape[-1], lengths[song_id])  # a song shorter than the window
      w = windows.get(song_id, 0)
      windows[song_id] = w + 1
      names = [f'{i + 1}: {name}' if name else f'ch{i + 1}'
               for i, name in enumerate(batch['instruments'][e][:c])]
      examples.append(Example(
          song_id, w, np.asarray(batch['audio'][e, :c, :n], np.float32),
          np.asarray(batch['target'][e, :n], np.float32), float(batch['bleed_severity'][e]),
          names, input_target_gains(batch['target_gains'][e, :c], batch['input_gain_db'][e, :c]),
          float(batch['segment_start'][e]),
          *designed_placement(batch.get('target_stereo'), batch.get('ideal_pans'), e, c, n)))
  return examples


def designed_placement(target_stereo, ideal_pans, e: int, c: int, n: int):
  """(target_stereo float32 [2, n], ideal_pans float64 [c]) of batch example `e`, or (None, None)
  where its song has no designed placement (the pipeline's pans are NaN there)."""
  if target_stereo is None or ideal_pans is None:
    return None, None
  pans = np.asarray(ideal_pans[e, :c], np.float64)
  if not np.isfinite(pans).all():
    return None, None
  return np.asarray(target_stereo[e, :, :n], np.float32), pans


def input_target_gains(track_gains, input_gain_db) -> Optional[np.ndarray]:
  """Ideal gains of the input channels (`metrics.ideal_input_gains`): float64 [c], or None
  where a track's gain is unknown."""
  ideal = metrics.ideal_input_gains(track_gains, input_gain_db)
  return ideal if np.isfinite(ideal).all() else None
