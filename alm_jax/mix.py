r"""Offline (batch) mixing of multitrack recordings with a trained mixer.

    python -m alm_jax.mix --checkpoint=WORKDIR_OR_STEP_DIR --input=SONG_DIR --output=OUT_DIR
    python -m alm_jax.mix --checkpoint=... --input=SONG_DIR/*.wav --output=OUT_DIR [--raw]
    python -m alm_jax.mix --checkpoint=... --input=FOLDER_OF_SONG_DIRS --output=OUT_DIR --batch_songs=4

How a song is mixed (see docs/inference.md):

* Songs are cut into chunks of `chunk_samples` samples, a whole number of F1
  hops (`stride * f2` samples: 300 ms in MR, 975 ms in SR). One jitted function
  mixes one chunk of a batch of songs, carrying between chunks exactly the state
  the model's recurrence needs: the last input samples that the next F1
  frames' front end reads (`ChunkLayout.history`), the GRU carry and, in
  zero-latency mode, the last predicted gain. Because every chunk starts on an F1 hop, the result equals
  the model's whole-song call (`AiLiveMixer.__call__`) to float tolerance.
* Batches are padded to `[batch_songs, max_channels, chunks * chunk_samples]`
  with silence and masks. The model is causal, so silence padded at the *end*
  changes no earlier output. Hence the CLI compiles the chunk function exactly
  once per run, whatever the songs' lengths and channel counts.
* Unlike the whole-song call, which drops the samples after the last whole F2
  frame, the mix keeps every input sample: the trailing partial frame gets its
  gain like any other frame (in zero-latency mode the gain predicted on the
  previous frame, so it is already known), computed as if the frame were
  completed with silence. So `mix` has the input's length and `gains` has
  ceil(samples / f2) frames; the first floor(samples / f2) frames equal the
  whole-song call.
* Per-segment models (DMC-OG: `model.name = 'dmc'`, `dmc_per_frame = False`)
  are not causal and cannot be chunked (`make_chunk_fn` refuses them). They
  are mixed segment by segment (`SegmentMixer`, `dmc.mix_by_segments`): each
  segment of the training length (`config.data.segment_seconds`, or
  `--segment_seconds`) gets one gain per channel computed from the whole
  segment; the last partial segment is completed with silence, which the
  model's segment mean leaves out. One jitted call per segment of a padded
  batch, so again one compilation per run. Gains are written per F2 frame,
  constant within a segment. The log says the mix is non-causal.
"""

import csv
import dataclasses
import functools
import math
import os
import pathlib
import sys
from typing import Sequence

from absl import logging
import jax
import jax.numpy as jnp
import numpy as np
import soundfile as sf

from alm_jax import audio_io
from alm_jax import checks
from alm_jax import frames
from alm_jax import frontend
from alm_jax import outputs
from alm_jax import plots
from alm_jax.models import build_model

AUDIO_EXTENSIONS = ('.wav', '.flac')
DEFAULT_CHUNK_SECONDS = 9.6  # 32 MR hops: big enough to amortise dispatch, small enough for RAM
GAINS_TIME_COLUMN = 'time_s'


# ---------------------------------------------------------------------------
# The chunked mixer (library)
# ---------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class ChunkLayout:
  """Sizes of the chunked computation, in samples.

  Attributes:
    spec: the model's frame sizes.
    hop: samples between two F1 frames (`stride * f2`); chunks are multiples of it.
    history: past samples the front end of an F1 frame reads before its hop
      (`frontend.FrontendSpec.frame_input_samples - f2`).
  """
  spec: frames.FrameSpec
  hop: int
  history: int

  @classmethod
  def from_config(cls, config):
    spec = frames.FrameSpec.from_config(config.model)
    fs = frontend.FrontendSpec.from_config(config.model)
    frontend.check_frame(spec.f1, fs)
    return cls(spec=spec, hop=spec.stride * spec.f2,
               history=max(0, fs.frame_input_samples - spec.f2))

  def chunk_samples(self, chunk_seconds: float) -> int:
    """A chunk of about `chunk_seconds`, rounded up to a whole number of hops."""
    hops = max(1, math.ceil(chunk_seconds * self.spec.sample_rate / self.hop))
    return hops * self.hop


class UnsupportedModelError(ValueError):
  """The checkpoint's model cannot be mixed chunk by chunk (it is not causal)."""


def init_chunk_state(config, batch: int, channels: int):
  """The state before the first chunk: silence before the song, a zero GRU carry.

  Returns:
    dict with `history` [b, c, layout.history] (the last input samples), `carry`
    [b, c, gru_hidden] and `last_pred` [b, c] (the gain predicted on the
    previous F2 frame; `initial_gain` before the first one).
  """
  layout = ChunkLayout.from_config(config)
  return {
      'history': jnp.zeros((batch, channels, layout.history), jnp.float32),
      'carry': jnp.zeros((batch, channels, config.model.gru_hidden), jnp.float32),
      'last_pred': jnp.full((batch, channels), config.model.initial_gain, jnp.float32),
  }


def make_chunk_fn(config):
  """The pure function that mixes one chunk.

  Returns:
    `chunk_fn(params, state, chunk [b, c, n], channel_mask [b, c]) ->
    (new_state, gains [b, c, n // f2], mix [b, n])`, where n is a multiple of
    the F1 hop (`stride * f2` samples) and `state` comes from
    `init_chunk_state` or the previous call. Shapes may be symbolic
    (it is what the SavedModel export converts).
  """
  model = build_model(config)
  if not all(hasattr(model, m) for m in ('embed', 'condition', 'recur', 'head')):
    raise UnsupportedModelError(
        f'config.model.name={config.model.name!r} has no causal per-stage methods '
        '(embed/condition/recur/head), which chunked mixing needs.')
  if config.model.name == 'dmc' and not config.model.get('dmc_per_frame', False):
    raise UnsupportedModelError(
        'This checkpoint is a per-segment DMC (DMC-OG, config.model.dmc_per_frame=False): its gains '
        'depend on the whole segment, so it cannot be mixed chunk by chunk nor exported. Mix it '
        'with alm_jax.models.dmc.mix_by_segments (docs/baselines.md).')
  layout = ChunkLayout.from_config(config)
  spec = layout.spec
  fs = frontend.FrontendSpec.from_config(config.model)
  zero_latency = bool(config.model.zero_latency)

  def stages(module, state, chunk, channel_mask):
    num_groups = chunk.shape[-1] // layout.hop
    extended = jnp.concatenate([state['history'], chunk], axis=-1)
    # The chunk's last F1 frame ends hop - f2 samples before the chunk does.
    signal = extended[..., :extended.shape[-1] - (layout.hop - spec.f2)]
    # An F2 frame longer than the front end's input (no history then) reads only its end.
    signal = signal[..., max(0, spec.f2 - fs.frame_input_samples):]
    emb = module.embed(signal, num_groups, channel_mask)
    # The chunk starts on an F1 hop, so F2 frame t uses F1 frame t // stride.
    emb = jnp.repeat(emb, spec.stride, axis=2)  # [b, c, t, d]
    rms = frames.frame_rms(frames.f2_frames(chunk, spec))  # [b, c, t]
    x = module.condition(emb, rms, channel_mask)
    carry, y = module.recur(state['carry'], x)
    pred = module.head(y, channel_mask)  # [b, c, t]
    if zero_latency:
      gains = jnp.concatenate([state['last_pred'][..., None], pred[..., :-1]], axis=-1)
    else:
      gains = pred
    gains = jnp.where(channel_mask[..., None], gains, 0.0)
    new_state = {
        'history': extended[..., extended.shape[-1] - layout.history:],
        # Fixed dtypes, so a low-precision compute dtype cannot change the state's type.
        'carry': carry.astype(jnp.float32),
        'last_pred': pred[..., -1].astype(jnp.float32),
    }
    return new_state, gains, frames.apply_gains(chunk, gains, channel_mask, spec)

  def chunk_fn(params, state, chunk, channel_mask):
    return model.apply({'params': params}, state, chunk.astype(jnp.float32),
                       channel_mask.astype(bool), method=stages)

  return chunk_fn


def mix_whole(config, params, audio, channel_mask):
  """Mixes whole signals in one chunk (traceable; used by the SavedModel export).

  Args:
    config: the full config.
    params: the model parameters.
    audio: [batch, channels, samples], any number of samples >= 1 (may be symbolic).
    channel_mask: [batch, channels] bool.
  Returns:
    dict with `mix` [batch, samples] and `gains` [batch, channels, ceil(samples / f2)].
  """
  layout = ChunkLayout.from_config(config)
  b, c, n = audio.shape
  padded_n = layout.hop * ((n + layout.hop - 1) // layout.hop)
  padded = jnp.pad(audio, [(0, 0), (0, 0), (0, padded_n - n)])
  _, gains, mix = make_chunk_fn(config)(params, init_chunk_state(config, b, c), padded,
                                        channel_mask)
  f2 = layout.spec.f2
  return {'mix': mix[:, :n], 'gains': gains[..., :(n + f2 - 1) // f2]}


class ChunkedMixer:
  """Mixes arrays of any length chunk by chunk with one jitted function.

  One compilation per distinct (batch, channels) shape: lengths never cause a
  recompilation. Callers that pad batch and channels to fixed sizes (the CLI)
  compile once.
  """

  def __init__(self, config, chunk_seconds: float = DEFAULT_CHUNK_SECONDS):
    self.config = config
    self.layout = ChunkLayout.from_config(config)
    self.chunk_samples = self.layout.chunk_samples(chunk_seconds)
    self._step = jax.jit(make_chunk_fn(config), donate_argnums=(1,))

  @property
  def num_compiles(self) -> int:
    """How many times the chunk function has been compiled."""
    return self._step._cache_size()  # pylint: disable=protected-access

  def __call__(self, params, audio, channel_mask):
    """Mixes audio [b, c, n] (numpy) -> dict(mix [b, n], gains [b, c, ceil(n / f2)]) as numpy."""
    audio = np.asarray(audio, np.float32)
    channel_mask = np.asarray(channel_mask, bool)
    checks.check_shapes(audio.shape, channel_mask.shape, 1, self.config.model.max_channels)
    b, c, n = audio.shape
    size = self.chunk_samples
    num_chunks = -(-n // size)
    # Every argument committed to one device: jit keys its cache on where
    # arguments live, so numpy params and restored (committed) params would
    # otherwise compile twice.
    put = functools.partial(jax.device_put, device=jax.local_devices()[0])
    params = put(params)
    state = put(init_chunk_state(self.config, b, c))
    mask = put(channel_mask)
    outputs = []
    for i in range(num_chunks):
      chunk = audio[..., i * size:(i + 1) * size]
      if chunk.shape[-1] < size:
        # Silence after the end: causal, so no earlier output changes.
        chunk = np.pad(chunk, [(0, 0), (0, 0), (0, size - chunk.shape[-1])])
      state, gains, mix = self._step(params, state, put(chunk), mask)
      outputs.append((gains, mix))
    # One transfer at the end: the loop above only dispatches.
    outputs = jax.device_get(outputs)
    f2 = self.layout.spec.f2
    return {'mix': np.concatenate([m for _, m in outputs], axis=-1)[:, :n],
            'gains': np.concatenate([g for g, _ in outputs], axis=-1)[..., :-(-n // f2)]}


_MIXERS: dict[tuple[str, int], ChunkedMixer] = {}


def get_mixer(config, chunk_seconds: float = DEFAULT_CHUNK_SECONDS) -> ChunkedMixer:
  """A cached `ChunkedMixer`, so repeated calls reuse its compilation."""
  key = (config.to_json_best_effort(sort_keys=True), ChunkLayout.from_config(config)
         .chunk_samples(chunk_seconds))
  if key not in _MIXERS:
    _MIXERS[key] = ChunkedMixer(config, chunk_seconds)
  return _MIXERS[key]


def mix_arrays(config, params, audio, channel_mask, *, chunk_seconds: float = DEFAULT_CHUNK_SECONDS,
               segment_seconds: float | None = None):
  """Mixes a batch of multitrack signals.

  Causal models (ALM, DMC-B-0L) are mixed chunk by chunk (`ChunkedMixer`);
  per-segment models (DMC-OG) segment by segment (`SegmentMixer`, non-causal).

  Args:
    config: the full config the parameters were trained with.
    params: the model parameters.
    audio: [batch, channels, samples] float numpy at config.model.sample_rate,
      any length >= 1 sample.
    channel_mask: [batch, channels] bool, False for padded channels.
    chunk_seconds: chunk length (rounded up to whole F1 hops); causal models only.
    segment_seconds: per-segment models only: the segment length (None: the
      training segment, config.data.segment_seconds).
  Returns:
    dict with `mix` [batch, samples] and `gains` [batch, channels,
    ceil(samples / f2)] (the gain applied to each F2 frame), numpy float32.
  Raises:
    ValueError: NaN/Inf audio, a batch element without an active channel,
      bad shapes or more channels than config.model.max_channels.
    SettingsError: segment_seconds for a causal model, or too short.
  """
  checks.check_values(audio, channel_mask)
  if is_per_segment(config):
    return get_segment_mixer(config, segment_seconds)(params, audio, channel_mask)
  if segment_seconds is not None:
    raise SettingsError(NOT_PER_SEGMENT.format(name=config.model.name))
  return get_mixer(config, chunk_seconds)(params, audio, channel_mask)


# ---------------------------------------------------------------------------
# Per-segment models (DMC-OG): non-causal, mixed segment by segment
# ---------------------------------------------------------------------------


class SettingsError(ValueError):
  """A mixing setting that does not fit the checkpoint's model."""


NOT_PER_SEGMENT = ('--segment_seconds applies to per-segment models only (DMC-OG: '
                    "config.model.name='dmc', dmc_per_frame=False); this checkpoint's model "
                    '({name!r}) is causal and mixed chunk by chunk: drop the flag.')


def is_per_segment(config) -> bool:
  """Whether the model gives one gain per channel per segment (DMC-OG), from the whole segment."""
  return config.model.name == 'dmc' and not config.model.get('dmc_per_frame', False)


def frames_per_segment(config, segment_seconds: float | None = None) -> int:
  """F2 frames per segment of a per-segment model.

  Args:
    config: the full config.
    segment_seconds: the segment length; None: the training segment,
      `config.data.segment_seconds`. Rounded down to whole F2 frames, as the
      training segments are framed (20 s -> 20 frames of 975 ms in DMC-OG).
  Raises:
    SettingsError: a segment shorter than one F1 frame, which the model cannot embed.
  """
  spec = frames.FrameSpec.from_config(config.model)
  seconds = float(config.data.segment_seconds if segment_seconds is None else segment_seconds)
  count = int(round(seconds * spec.sample_rate)) // spec.f2
  if count * spec.f2 < spec.f1:
    raise SettingsError(
        f'A segment of {seconds:g} s holds {count} whole F2 frames ({count * spec.f2} samples), '
        f'less than one F1 frame ({spec.f1} samples): give --segment_seconds >= '
        f'{-(-spec.f1 // spec.f2) * spec.f2 / spec.sample_rate:g}.')
  return count


def check_per_segment(config) -> None:
  """Raises UnsupportedModelError unless the model can be mixed segment by segment."""
  if not is_per_segment(config):
    raise UnsupportedModelError(f'config.model.name={config.model.name!r} with per-frame gains is '
                                'not a per-segment model; mix it chunk by chunk (mix_arrays).')
  if config.model.zero_latency:
    raise UnsupportedModelError(
        'This per-segment DMC has config.model.zero_latency=True, which has no defined segment mix '
        '(the one gain of a segment would be applied to the next F2 frame); DMC-OG is trained '
        'with zero_latency=False (configs/dmc_og.py).')


def mix_segments_whole(config, params, audio, channel_mask, segment_frames: int):
  """Mixes whole signals with a per-segment model (DMC-OG); traceable, `samples` may be symbolic.

  The signal is completed with silence to whole segments of `segment_frames`
  F2 frames and mixed by `alm_jax.models.dmc.mix_by_segments`: each segment
  gets one gain per channel computed from that whole segment (non-causal). The
  silence completing the last segment is left out of its segment mean, so the
  last partial segment gets the gains it would get alone (exactly when
  f1 = f2, DMC-OG's framing; with longer overlapping F1 frames, those ending in
  the padding still reach back into the audio and count too). The outputs are
  cut back to the input's length.

  Args:
    config: the full config (a per-segment DMC without zero latency).
    params: the model parameters.
    audio: [batch, channels, samples], samples >= 1.
    channel_mask: [batch, channels] bool.
    segment_frames: F2 frames per segment (`frames_per_segment(config)`).
  Returns:
    dict with `mix` [batch, samples] and `gains` [batch, channels,
    ceil(samples / f2)]: the segment's gain repeated on each of its F2 frames.
  """
  from alm_jax.models import dmc  # pylint: disable=g-import-not-at-top
  f2 = frames.FrameSpec.from_config(config.model).f2
  size = int(segment_frames) * f2
  n = audio.shape[-1]
  padded_n = size * ((n + size - 1) // size)  # symbolic-friendly ceil
  padded = jnp.pad(audio.astype(jnp.float32), [(0, 0), (0, 0), (0, padded_n - n)])
  out = dmc.mix_by_segments(build_model(config), params, padded, channel_mask.astype(bool),
                            segment_frames)
  return {'mix': out['mix'][:, :n], 'gains': out['gains'][..., :(n + f2 - 1) // f2]}


class SegmentMixer:
  """Mixes arrays of any length with a per-segment model, one segment per jitted call.

  Every call mixes [batch, channels, segment_samples] (the last segment is
  completed with silence), so lengths never cause a recompilation: one
  compilation per distinct (batch, channels), once per run in the CLI.
  """

  def __init__(self, config, segment_seconds: float | None = None):
    check_per_segment(config)
    self.config = config
    self.spec = frames.FrameSpec.from_config(config.model)
    self.segment_frames = frames_per_segment(config, segment_seconds)
    self.segment_samples = self.segment_frames * self.spec.f2
    self._mix = jax.jit(functools.partial(mix_segments_whole, config,
                                          segment_frames=self.segment_frames))

  @property
  def num_compiles(self) -> int:
    """How many times the segment function has been compiled."""
    return self._mix._cache_size()  # pylint: disable=protected-access

  def __call__(self, params, audio, channel_mask):
    """Mixes audio [b, c, n] (numpy) -> dict(mix [b, n], gains [b, c, ceil(n / f2)]) as numpy."""
    audio = np.asarray(audio, np.float32)
    channel_mask = np.asarray(channel_mask, bool)
    checks.check_shapes(audio.shape, channel_mask.shape, 1, self.config.model.max_channels)
    n = audio.shape[-1]
    size = self.segment_samples
    # Committed arguments, as in ChunkedMixer: one compilation whatever the params' origin.
    put = functools.partial(jax.device_put, device=jax.local_devices()[0])
    params = put(params)
    mask = put(channel_mask)
    outputs = []
    for start in range(0, n, size):
      piece = audio[..., start:start + size]
      if piece.shape[-1] < size:
        piece = np.pad(piece, [(0, 0), (0, 0), (0, size - piece.shape[-1])])
      outputs.append(self._mix(params, put(piece), mask))
    outputs = jax.device_get(outputs)  # one transfer: the loop only dispatched
    return {'mix': np.concatenate([o['mix'] for o in outputs], axis=-1)[:, :n],
            'gains': np.concatenate([o['gains'] for o in outputs],
                                    axis=-1)[..., :-(-n // self.spec.f2)]}


_SEGMENT_MIXERS: dict[tuple[str, int], SegmentMixer] = {}


def get_segment_mixer(config, segment_seconds: float | None = None) -> SegmentMixer:
  """A cached `SegmentMixer`, so repeated calls reuse its compilation."""
  key = (config.to_json_best_effort(sort_keys=True), frames_per_segment(config, segment_seconds))
  if key not in _SEGMENT_MIXERS:
    _SEGMENT_MIXERS[key] = SegmentMixer(config, segment_seconds)
  return _SEGMENT_MIXERS[key]


def describe_per_segment(config, segment_seconds: float | None = None) -> str:
  """One line for the log: how a per-segment model mixes, and that it is not causal."""
  spec = frames.FrameSpec.from_config(config.model)
  count = frames_per_segment(config, segment_seconds)
  seconds = count * spec.f2 / spec.sample_rate
  return (f'per-segment model (DMC-OG), NON-CAUSAL as published: each {seconds:g} s segment '
          f'({count} F2 frames) is mixed with one gain per channel computed from the whole '
          'segment, future samples included, so it cannot run live; gains jump at segment '
          'boundaries. The last partial segment is completed with silence, which the segment '
          'mean leaves out.')


# ---------------------------------------------------------------------------
# Reading songs
# ---------------------------------------------------------------------------


class InputError(ValueError):
  """Input files that cannot be mixed; the message names them and the fix."""


@dataclasses.dataclass
class Song:
  """One multitrack recording: its name and its channel files."""
  name: str
  files: list[pathlib.Path]
  rate: int = 0
  frames: int = 0  # longest file, at its own rate

  @property
  def channel_names(self) -> list[str]:
    """File stems, or file names where two files share a stem."""
    stems = [f.stem for f in self.files]
    return [f.name if stems.count(f.stem) > 1 else f.stem for f in self.files]


def _audio_files(folder: pathlib.Path) -> list[pathlib.Path]:
  return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTENSIONS)


def discover_songs(inputs: Sequence[str]) -> list[Song]:
  """Turns the --input values into songs.

  * files only: one song made of those files (named after the first one's folder);
  * a folder holding WAV/FLAC files: one song (named after the folder);
  * a folder holding only song folders: one song per sub-folder (batch mode).

  Raises:
    InputError: missing paths, files mixed with folders, or no audio found.
  """
  if not inputs:
    raise InputError('No --input given: pass a song folder, audio files or a folder of song folders.')
  paths = [pathlib.Path(p) for p in inputs]
  missing = [str(p) for p in paths if not p.exists()]
  if missing:
    raise InputError(f'Input path(s) do not exist: {", ".join(missing)}.')
  is_file = [p.is_file() for p in paths]
  if all(is_file):
    bad = [str(p) for p in paths if p.suffix.lower() not in AUDIO_EXTENSIONS]
    if bad:
      raise InputError(f'Not WAV/FLAC files: {", ".join(bad)}.')
    return [Song(name=paths[0].resolve().parent.name or 'song', files=paths)]
  if any(is_file):
    raise InputError('Give either audio files (one song) or folders, not both: '
                     f'files {[str(p) for p, f in zip(paths, is_file) if f]}, '
                     f'folders {[str(p) for p, f in zip(paths, is_file) if not f]}.')
  songs = []
  for folder in paths:
    files = _audio_files(folder)
    if files:
      songs.append(Song(name=folder.resolve().name, files=files))
      continue
    subs = sorted(p for p in folder.iterdir() if p.is_dir() and _audio_files(p))
    if not subs:
      raise InputError(f'No WAV/FLAC files in {folder} nor in any folder inside it.')
    songs.extend(Song(name=s.name, files=_audio_files(s)) for s in subs)
  names = [s.name for s in songs]
  dups = sorted({n for n in names if names.count(n) > 1})
  if dups:
    raise InputError(f'Several songs are named {dups}: their outputs would collide; rename the '
                     'folders or mix them in separate runs.')
  return songs


def validate_songs(songs: list[Song], max_channels: int, pad_unequal: bool) -> None:
  """Checks every file's header before any mixing, so a bad file fails the run up front.

  Fills `song.rate` and `song.frames`. Raises InputError listing every problem.
  """
  problems = []
  for song in songs:
    if not song.files:
      problems.append(f'{song.name}: no audio files.')
      continue
    if len(song.files) > max_channels:
      problems.append(f'{song.name}: {len(song.files)} files but the model mixes at most '
                      f'{max_channels} channels (config.model.max_channels): premix or drop some of '
                      f'{", ".join(f.name for f in song.files)}.')
    infos = {}
    for f in song.files:
      try:
        infos[f] = sf.info(os.fspath(f))
      except (RuntimeError, sf.LibsndfileError, OSError) as e:
        problems.append(f'{song.name}: cannot read {f}: {e}')
    if len(infos) < len(song.files):
      continue
    for f, info in infos.items():
      if info.channels > 2:
        problems.append(f'{song.name}: {f} has {info.channels} channels; give mono or stereo files.')
      if info.frames == 0:
        problems.append(f'{song.name}: {f} holds no samples.')
    rates = {f: info.samplerate for f, info in infos.items()}
    if len(set(rates.values())) > 1:
      listing = ', '.join(f'{f.name}: {r} Hz' for f, r in rates.items())
      problems.append(f'{song.name}: files have different sample rates ({listing}); the tracks of '
                      'one recording share a rate, so one of them is likely from another session: '
                      'check them, or convert them to one rate (e.g. `sox IN -r 44100 OUT.wav`).')
      continue
    song.rate = next(iter(rates.values()))
    lengths = {f: info.frames for f, info in infos.items()}
    song.frames = max(lengths.values())
    if len(set(lengths.values())) > 1 and not pad_unequal:
      listing = ', '.join(f'{f.name}: {n}' for f, n in lengths.items())
      problems.append(f'{song.name}: files have different lengths in samples ({listing}); trim them '
                      'or pass --pad_unequal=true to pad the short ones with silence at the end.')
  if problems:
    raise InputError('Cannot mix:\n  ' + '\n  '.join(problems))


def load_song(song: Song, sample_rate: int) -> np.ndarray:
  """Reads a validated song as float32 [channels, samples] at `sample_rate`, mono per channel."""
  tracks = []
  for f in song.files:
    # Resampled with scipy.signal.resample_poly (see alm_jax.audio_io); raises
    # naming the file when it is unreadable, empty or holds NaN/Inf.
    audio, _ = audio_io.read_audio(f, sample_rate)
    if audio.shape[0] == 2:
      logging.info('%s is stereo: downmixed to mono as (left + right) / 2.', f)
    tracks.append(audio_io.to_mono(audio))
  n = max(t.shape[-1] for t in tracks)
  short = [(f, t.shape[-1]) for f, t in zip(song.files, tracks) if t.shape[-1] < n]
  for f, m in short:
    logging.warning('%s: %s is %.3f s shorter than the longest file: padded with silence at the end.',
                    song.name, f.name, (n - m) / sample_rate)
  out = np.zeros((len(tracks), n), np.float32)
  for i, t in enumerate(tracks):
    out[i, :t.shape[-1]] = t
  if song.rate != sample_rate:
    logging.info('%s: resampled from %d Hz to %d Hz (scipy.signal.resample_poly).', song.name,
                 song.rate, sample_rate)
  return out


# ---------------------------------------------------------------------------
# Writing results
# ---------------------------------------------------------------------------


def write_gains_csv(path, gains, frame_seconds: float, channel_names: Sequence[str]) -> None:
  """gains [channels, frames] -> CSV: `time_s` (start of the F2 frame), then one column per channel."""
  with open(path, 'w', newline='', encoding='utf-8') as fh:
    writer = csv.writer(fh)
    writer.writerow([GAINS_TIME_COLUMN] + list(channel_names))
    for t in range(gains.shape[1]):
      writer.writerow([f'{t * frame_seconds:.6f}'] + [f'{g:.7g}' for g in gains[:, t]])


def write_song(out_dir: pathlib.Path, song: Song, mix, gains, raw, sample_rate: int, f2: int,
               overwrite: bool) -> pathlib.Path:
  """Writes one song's results into a temporary folder, then renames it into place.

  A crash leaves only a hidden `.tmp-*` folder (removed by the next run,
  `outputs.clean_stale_temporaries`), never an incomplete song folder.
  """
  with outputs.folder_written_aside(out_dir / song.name, replace=overwrite) as tmp:
    audio_io.write_wav(tmp / 'mix.wav', mix, sample_rate, subtype='FLOAT')
    peak = float(np.max(np.abs(mix))) if mix.size else 0.0
    if peak > 1.0:
      logging.warning('%s: the mix peaks at %.2f (%.1f dBFS); it is written as float WAV, so '
                      'nothing is clipped, but players may clip it.', song.name, peak,
                      20 * math.log10(peak))
    if raw is not None:
      audio_io.write_wav(tmp / 'raw.wav', raw, sample_rate, subtype='FLOAT')
    write_gains_csv(tmp / 'gains.csv', gains, f2 / sample_rate, song.channel_names)
    plots.plot_gains(gains, f2 / sample_rate, song.channel_names, tmp / 'gains.png',
                     title=song.name)
  return out_dir / song.name


# ---------------------------------------------------------------------------
# Batch driver
# ---------------------------------------------------------------------------


def mix_songs(config, params, songs: list[Song], out_dir, *, batch_songs: int = 4,
              chunk_seconds: float = DEFAULT_CHUNK_SECONDS, raw: bool = False,
              pad_unequal: bool = True, overwrite: bool = False, progress: bool = True,
              segment_seconds: float | None = None,
              mixer: ChunkedMixer | SegmentMixer | None = None) -> list[pathlib.Path]:
  """Mixes songs in batches of `batch_songs` and writes their results under `out_dir/<song>/`.

  Every batch is padded to [batch_songs, max_channels, whole chunks], so the
  chunk function compiles once for the whole run. Per-segment models (DMC-OG)
  are mixed segment by segment instead (`SegmentMixer`; `segment_seconds`,
  None for the training segment), also with one compilation per run; their
  gains are written per F2 frame like the ALM's, constant within a segment.

  Returns:
    The song folders written, in the order of `songs`.
  """
  from tqdm import tqdm  # pylint: disable=g-import-not-at-top

  if batch_songs < 1:
    raise ValueError(f'--batch_songs must be >= 1, got {batch_songs}.')
  # Built first: a checkpoint or setting that cannot be mixed fails before anything is written.
  if mixer is None:
    if is_per_segment(config):
      mixer = get_segment_mixer(config, segment_seconds)
    elif segment_seconds is not None:
      raise SettingsError(NOT_PER_SEGMENT.format(name=config.model.name))
    else:
      mixer = get_mixer(config, chunk_seconds)
  if isinstance(mixer, SegmentMixer):
    logging.warning('Mixing with a %s (--chunk_seconds does not apply.)', describe_per_segment(
        config, mixer.segment_samples / mixer.spec.sample_rate))
  max_channels = int(config.model.max_channels)
  out_dir = outputs.check_writable(out_dir, what='--output')
  validate_songs(songs, max_channels, pad_unequal)
  out_dir.mkdir(parents=True, exist_ok=True)
  for leftover in outputs.clean_stale_temporaries(out_dir):
    logging.info('Removed %s, left by an interrupted run.', leftover)
  if not overwrite:
    existing = [str(out_dir / s.name) for s in songs if (out_dir / s.name).exists()]
    if existing:
      raise FileExistsError(f'Output folder(s) exist: {", ".join(existing)}; pass --overwrite or '
                            'choose another --output.')
  sample_rate = int(config.model.sample_rate)
  f2 = frames.FrameSpec.from_config(config.model).f2
  # Similar lengths share a batch, so little time is spent mixing padding.
  order = sorted(range(len(songs)), key=lambda i: songs[i].frames / max(songs[i].rate, 1))
  written = {}
  with tqdm(total=len(songs), unit='song', disable=not progress) as bar:
    for start in range(0, len(order), batch_songs):
      batch = [songs[i] for i in order[start:start + batch_songs]]
      tracks = [load_song(s, sample_rate) for s in batch]
      n = max(t.shape[-1] for t in tracks)
      audio = np.zeros((batch_songs, max_channels, n), np.float32)
      mask = np.zeros((batch_songs, max_channels), bool)
      # Unused batch rows get one silent active channel: every row needs one.
      mask[len(batch):, 0] = True
      for i, t in enumerate(tracks):
        audio[i, :t.shape[0], :t.shape[1]] = t
        mask[i, :t.shape[0]] = True
      out = mixer(params, audio, mask)
      for i, (song, t) in enumerate(zip(batch, tracks)):
        c, m = t.shape
        written[song.name] = write_song(
            out_dir, song, out['mix'][i, :m], out['gains'][i, :c, :-(-m // f2)],
            t.sum(axis=0) if raw else None, sample_rate, f2, overwrite)
        bar.update(1)
  return [written[s.name] for s in songs]


def run(f, extra_inputs: Sequence[str] = ()) -> int:
  """Runs the CLI with parsed flags `f` (see `define_flags`); returns the exit status."""
  from alm_jax import checkpoints  # pylint: disable=g-import-not-at-top

  # Shell globs (--input=song/*.wav) put all but the first file after the flags.
  inputs = list(f.input or []) + list(extra_inputs)
  try:
    songs = discover_songs(inputs)
    outputs.check_writable(f.output, what='--output')  # before any work
    config, params, step = checkpoints.restore_params(f.checkpoint)
    logging.info('Restored %s at step %d; mixing %d song(s).', f.checkpoint, step, len(songs))
    written = mix_songs(config, params, songs, f.output, batch_songs=f.batch_songs,
                        chunk_seconds=f.chunk_seconds, raw=f.raw, pad_unequal=f.pad_unequal,
                        overwrite=f.overwrite, segment_seconds=f.segment_seconds)
  except (InputError, UnsupportedModelError, SettingsError, audio_io.AudioFileError,
          outputs.OutputError, FileExistsError, FileNotFoundError) as e:
    print(f'error: {e}', file=sys.stderr)
    return 2
  for path in written:
    print(path)
  return 0


def define_flags(flag_values):
  """Defines the CLI flags on `flag_values` (absl FlagValues)."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  kw = dict(flag_values=flag_values)
  from alm_jax import checkpoints  # pylint: disable=g-import-not-at-top
  checkpoints.define_checkpoint_flag(flag_values)
  flags.DEFINE_multi_string('input', None, 'A song folder of per-channel WAV/FLAC files, audio '
                            'files of one song, or a folder of song folders. Repeatable; extra '
                            'positional arguments are inputs too (shell globs).', **kw)
  flags.DEFINE_string('output', None, 'Output folder; each song goes to OUTPUT/<song name>/.',
                      required=True, **kw)
  flags.DEFINE_boolean('raw', False, 'Also write raw.wav, the plain sum of the channels.', **kw)
  flags.DEFINE_boolean('pad_unequal', True, 'Pad files shorter than their song with silence at the '
                       'end (logged); false: refuse songs with unequal file lengths.', **kw)
  flags.DEFINE_integer('batch_songs', 4, 'Songs mixed together in one batch.', **kw)
  flags.DEFINE_float('chunk_seconds', DEFAULT_CHUNK_SECONDS, 'Chunk length in seconds (rounded up '
                     'to whole F1 hops); bounds memory, never changes the result.', **kw)
  flags.DEFINE_float('segment_seconds', None, 'Per-segment models (DMC-OG) only: the segment that '
                     'gets one gain per channel, in seconds, rounded down to whole F2 frames; '
                     'changes the result. Default: the training segment '
                     '(config.data.segment_seconds).', **kw)
  flags.DEFINE_boolean('overwrite', False, 'Replace existing song output folders.', **kw)


def main(argv):
  from absl import flags  # pylint: disable=g-import-not-at-top
  return run(flags.FLAGS, argv[1:])


if __name__ == '__main__':
  from absl import app  # pylint: disable=g-import-not-at-top
  from absl import flags as absl_flags  # pylint: disable=g-import-not-at-top
  define_flags(absl_flags.FLAGS)
  app.run(main)
