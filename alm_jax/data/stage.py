"""Stage layouts for `rendered_live/stage`: where each source and its mic stand, and the bleed.

`layout(song_id, instruments)` draws a song's room (size, RT60) and stage plot: the drum kit
at the back miked piece by piece (kick, snare, hi-hat, an overhead, all within a metre or so
of each other), the bass and guitar amps on either side, keys and the lead mic at the front,
and the players of a corpus ensemble in a line with spot mics. It is a pure function of the
song id and the channels' roles (the instrument label's part before ':'), so the layout is
derived, never stored (like alm_jax.data.placement), and a changed stage model needs no
rebuild. `direct_gains` / `direct_delays` give each mic's direct path from every source
(1/distance relative to that source in its own close mic, a cardioid mic pattern, the delay
from the extra distance at 343 m/s); `responses` adds the room's reflections (the image
sources of pyroomacoustics, walls from `rooms.absorption` as the RIR bank's) and returns
the float32 [mics, sources, taps] responses the input pipeline convolves, each mic's own
source at tap 0 with gain 1 as in the RIR bank. Songs whose id starts with `PREFIX + '_'`
have a layout (`layout_of`); the model and its numbers: docs/data.md ("The stage model").
"""

import dataclasses
import functools
import hashlib

import numpy as np

from alm_jax.data import placement
from alm_jax.data import rooms

PREFIX = 'stage'      # song ids `stage_<split>_<index>` (rendered.RenderedLiveConfig.song_prefix)
SPEED_OF_SOUND = 343.0  # m/s
PATTERN_FLOOR = 0.1     # a cardioid's rear rejection, about -20 dB (a real one's average)
MAX_ORDER = 12          # image-source order cap (as config.data.bleed.max_order's default)

# Ranges (m, s) of a song's room and stage; x runs across the stage from the audience's left to
# its right, y from the room's front wall (the audience's end) to the back of the stage, z up.
ROOM_WIDTH = (9.0, 16.0)
ROOM_DEPTH = (8.0, 16.0)
ROOM_HEIGHT = (4.0, 8.0)
RT60 = (0.3, 1.0)
STAGE_DEPTH = (4.0, 6.5)

# The kit, relative to the drummer's seat (facing the audience, -y; the hi-hat on the drummer's
# left, the audience's right): each piece's centre, and its close mic's direction and distance.
_KIT = {  # place: (source offset, mic direction from the source, mic distance range)
    'kick': ((0.0, -0.75, 0.25), (0.0, -1.0, 0.0), (0.05, 0.25)),   # at the resonant head
    'snare': ((0.2, -0.45, 0.62), (0.0, -0.7, 0.7), (0.05, 0.12)),   # over the rim
    'hats': ((0.5, -0.35, 0.9), (-0.2, -0.3, 1.0), (0.08, 0.2)),     # above the top cymbal
    'overheads': ((-0.25, -0.45, 1.05), (0.0, 0.0, 1.0), (0.45, 0.7)),  # toms, cymbals; from above
    'kit': ((0.0, -0.5, 0.8), (0.0, -0.3, 1.0), (0.8, 1.2)),        # a whole kit, one mic
}
_PLACES = {'kick': 'kick', 'snare': 'snare', 'hats': 'hats', 'overheads': 'overheads',
           'drums': 'kit', 'bass': 'bass_amp'}


@dataclasses.dataclass(frozen=True)
class Layout:
  """A song's stage: room, and per channel (the song's channel order) its source and close mic.

  Attributes:
    song_id, roles: what it was drawn for.
    places: [c] where each channel stands ('kick', 'guitar_amp', 'lead', 'front', ...).
    room: float [3] m; rt60: s.
    sources, mics: float [c, 3] m; aims: float [c, 3] unit vectors, where each mic points (at its
      own source).
  """
  song_id: str
  roles: tuple
  places: tuple
  room: np.ndarray
  rt60: float
  sources: np.ndarray
  mics: np.ndarray
  aims: np.ndarray


def has_layout(song_id: str) -> bool:
  """Whether a song is laid out on a stage: `rendered_live/stage*` songs (their id's prefix)."""
  return str(song_id).startswith(PREFIX + '_')


def _rng(song_id: str) -> np.random.Generator:
  return np.random.default_rng(int.from_bytes(
      hashlib.sha256(('stage:' + song_id).encode()).digest()[:8], 'little'))


def _unit(v) -> np.ndarray:
  v = np.asarray(v, np.float64)
  return v / np.linalg.norm(v)


def _places(roles) -> list[str]:
  """Where each role stands: kit pieces, amps, keys and lead; the rest in the front line."""
  out, taken = [], set()
  for r in roles:
    place = _PLACES.get(r)
    if place is None:
      place = {'comp': 'guitar_amp', 'pad': 'keys', 'lead': 'lead'}.get(r, 'front')
      if place == 'guitar_amp' and place in taken:
        place = 'keys'  # a second comping part: the keys
    if place in taken and place != 'front':
      place = 'front'  # a second lead, third harmony part, ...: the front line
    taken.add(place)
    out.append(place)
  return out


def layout(song_id: str, instruments) -> Layout:
  """The stage of song `song_id` with these channels (labels 'role:name' or the role alone).

  Every draw is taken whatever the roles (a fixed order), so the room and the band's
  positions depend on the song id alone and each channel's place on its role.
  Raises:
    ValueError: a layout in which a mic is not closest to its own source (names the song).
  """
  roles = tuple(placement.role_of(i) for i in instruments)
  places = _places(roles)
  rng = _rng(song_id)
  room = np.array([rng.uniform(*ROOM_WIDTH), rng.uniform(*ROOM_DEPTH), rng.uniform(*ROOM_HEIGHT)])
  rt60 = float(rng.uniform(*RT60))
  stage_depth = float(rng.uniform(*STAGE_DEPTH))
  front = room[1] - stage_depth                      # the stage's front edge
  centre = room[0] / 2 + rng.uniform(-0.5, 0.5)
  seat = np.array([centre, room[1] - rng.uniform(1.2, 2.0), rng.uniform(0.0, 0.4)])  # on a riser
  side = 1.0 if rng.random() < 0.5 else -1.0         # the bass amp's side; the guitar's the other
  fixed = {
      'bass_amp': (np.array([centre + side * rng.uniform(1.8, 3.2), room[1] - rng.uniform(0.6, 1.4),
                             0.45]), rng.uniform(0.03, 0.12)),
      'guitar_amp': (np.array([centre - side * rng.uniform(1.8, 3.2),
                               room[1] - rng.uniform(0.6, 1.6), rng.uniform(0.35, 0.9)]),
                     rng.uniform(0.03, 0.12)),
      'keys': (np.array([centre + side * rng.uniform(2.0, 3.5), front + rng.uniform(1.0, 2.0),
                         1.0]), rng.uniform(0.1, 0.3)),
      # The singer 0.6-1.4 m behind the stage's edge and at least 2.5 m in front of the drummer.
      'lead': (np.array([centre + rng.uniform(-0.8, 0.8),
                         min(front + rng.uniform(0.6, 1.4), seat[1] - 2.5),
                         rng.uniform(1.5, 1.75)]), rng.uniform(0.03, 0.12)),
  }
  kit = {p: (seat + np.array(off) + rng.uniform(-0.05, 0.05, 3), _unit(d), rng.uniform(*dist))
         for p, (off, d, dist) in _KIT.items()}
  spacing = rng.uniform(1.0, 1.6)
  jitter = rng.uniform(-0.2, 0.2, (8, 3))            # the front line: up to 8 players
  line = [c for c, p in enumerate(places) if p == 'front']
  if len(line) > 1:  # closer together where the room is too narrow for the line
    spacing = min(spacing, (room[0] - 2.0) / (len(line) - 1))
  sources = np.zeros((len(roles), 3))
  mics = np.zeros((len(roles), 3))
  for c, place in enumerate(places):
    if place in kit:
      src, direction, dist = kit[place]
      sources[c], mics[c] = src, src + direction * dist
    elif place in fixed:  # amps and the keys' speaker face the audience; the lead sings to it
      src, dist = fixed[place]
      sources[c] = src
      mics[c] = src + np.array([0.0, -dist, -0.02 if place == 'lead' else 0.0])
    else:  # the front line, audience left to right in channel order, spot mics in front, above
      k = line.index(c)
      x = centre + (k - (len(line) - 1) / 2) * spacing
      sources[c] = np.array([x, front + 1.5, 1.3]) + jitter[k % 8] * np.array([1, 2.5, 1])
      mics[c] = sources[c] + _unit([0.0, -1.0, 0.6]) * (0.4 + 0.1 * (jitter[k % 8, 2] + 0.2) / 0.4)
  out = Layout(song_id, roles, tuple(places), room, rt60, sources, mics,
               np.stack([_unit(s - m) for s, m in zip(sources, mics)]) if len(roles) else
               np.zeros((0, 3)))
  _check(out)
  return out


def _check(lay: Layout):
  inside = lambda p: np.all(p > 0.1, axis=-1) & np.all(p < lay.room - 0.1, axis=-1)
  d = distances(lay)
  bad = [c for c in range(len(lay.roles))
         if not (inside(lay.sources[c]) and inside(lay.mics[c])
                 and np.all(np.delete(d[c], c) > d[c, c]))]
  if bad:
    raise ValueError(f'Stage layout of {lay.song_id}: the mics of channels {bad} '
                     f'({[lay.places[c] for c in bad]}) are outside the room or not closest to '
                     'their own source; alm_jax/data/stage.py places them.')


def layout_of(song_id: str, instruments) -> Layout | None:
  """The song's layout if it has one (`has_layout`), else None (random RIR-bank bleed)."""
  return layout(song_id, instruments) if has_layout(song_id) else None


def distances(lay: Layout) -> np.ndarray:
  """float [mics, sources] metres."""
  return np.linalg.norm(lay.mics[:, None, :] - lay.sources[None, :, :], axis=-1)


def pattern(cos_angle) -> np.ndarray:
  """A cardioid's gain at an angle off its axis (given as the cosine), floored at -20 dB."""
  return np.maximum(PATTERN_FLOOR, 0.5 + 0.5 * np.asarray(cos_angle, np.float64))


@functools.lru_cache(maxsize=None)
def diffuse_gain() -> float:
  """The pattern's gain for sound from all directions alike (RMS over the sphere): about 0.58."""
  u = np.linspace(-1.0, 1.0, 20001)  # cos(angle) is uniform over the sphere
  return float(np.sqrt(np.mean(pattern(u) ** 2)))


def direct_gains(lay: Layout) -> np.ndarray:
  """float [mics, sources]: source j's direct sound in mic i relative to source j in its own mic.

  d_jj / d_ij (spherical spreading) times mic i's pattern toward source j (each mic points at
  its own source: the diagonal is 1).
  """
  d = distances(lay)
  to_src = (lay.sources[None, :, :] - lay.mics[:, None, :]) / d[..., None]
  cos = np.einsum('ik,ijk->ij', lay.aims, to_src)
  return np.diag(d)[None, :] / d * pattern(cos)


def direct_delays(lay: Layout, sample_rate: int) -> np.ndarray:
  """int [mics, sources]: source j's direct path in mic i, samples after mic i's own source."""
  d = distances(lay)
  return np.maximum(0, np.round((d - np.diag(d)[:, None]) / SPEED_OF_SOUND * sample_rate)
                    ).astype(np.int64)


def responses(lay: Layout, rir_samples: int, sample_rate: int = 44100, *,
              reflections: bool = True, max_order: int = MAX_ORDER) -> np.ndarray:
  """float32 [mics, sources, rir_samples]: each mic's response to each source on this stage.

  Tap 0 of row i is mic i's own direct sound (gain 1); h[i, j] holds `direct_gains[i, j]` at
  `direct_delays[i, j]`, plus (with `reflections`) the room's reflections: pyroomacoustics'
  image sources of order 1..max_order (`_pra_reflections`), in the
  same scale (source j's own direct path = 1), shifted as row i, and times the pattern's
  `diffuse_gain` (reflections come from all around). Cut to `rir_samples` with the RIR bank's
  raised-cosine fade.
  """
  c, n = len(lay.roles), int(rir_samples)
  gains, delays = direct_gains(lay), direct_delays(lay, sample_rate)
  d = distances(lay)
  out = np.zeros((c, c, n), np.float64)
  if reflections and c:
    refl, unit = _pra_reflections(lay, sample_rate, n, max_order)
    own = np.diag(d)
    for i in range(c):
      # pyroomacoustics delays every path by half its fractional-delay filter.
      shift = int(round(_PRA_DELAY + own[i] / SPEED_OF_SOUND * sample_rate))
      for j in range(c):
        r = np.asarray(refl[i][j], np.float64)[shift:shift + n] / unit[j] * diffuse_gain()
        out[i, j, :r.size] = r
  rows, cols = np.nonzero(delays < n)
  out[rows, cols, delays[rows, cols]] += gains[rows, cols]
  fade = np.ones(n)
  k = max(1, n // 10)
  fade[-k:] = 0.5 * (1 + np.cos(np.linspace(0, np.pi, k)))
  return (out * fade).astype(np.float32)


_PRA_DELAY = 40  # pyroomacoustics' global delay: frac_delay_length (81) // 2, checked below


def _pra_reflections(lay: Layout, sample_rate: int, rir_samples: int, max_order: int):
  """pyroomacoustics' reflections [mic][source] (image sources of order >= 1), and the unit.

  unit[j]: the L2 norm of source j's direct response in its own mic (pyroomacoustics'
  fractional-delay direct path, whatever its amplitude convention: 1/d in 0.10), so
  reflections / unit[j] are in the scale of source j's own direct path. The direct paths are
  left out by making their images invisible rather than by subtracting an order-0 simulation:
  pyroomacoustics high-passes each response forwards and backwards (sosfiltfilt), which differs
  between responses of different lengths.
  """
  import pyroomacoustics as pra  # pylint: disable=import-outside-toplevel  (optional, slow import)
  if pra.constants.get('frac_delay_length') // 2 != _PRA_DELAY:
    raise RuntimeError('pyroomacoustics changed its fractional delay; update stage._PRA_DELAY.')
  e_abs, order = rooms.absorption(lay.rt60, lay.room, max_order, rir_samples / sample_rate)
  c = len(lay.sources)

  def simulate(o: int, direct: bool):
    room = pra.ShoeBox(lay.room, fs=sample_rate, materials=pra.Material(e_abs), max_order=o)
    for s in lay.sources:
      room.add_source(s)
    room.add_microphone_array(lay.mics.T)
    room.image_source_model()
    if not direct:
      for s, src in enumerate(room.sources):
        room.visibility[s][:, np.asarray(src.orders) == 0] = 0
    room.compute_rir()
    return room.rir

  direct = simulate(0, True)
  refl = simulate(order, False) if order > 0 else [[np.zeros(0)] * c for _ in range(c)]
  return refl, [float(np.linalg.norm(direct[j][j])) for j in range(c)]


@functools.lru_cache(maxsize=512)
def song_responses(song_id: str, instruments: tuple, rir_samples: int, sample_rate: int = 44100,
                   max_order: int = MAX_ORDER) -> np.ndarray | None:
  """float16 [c, c, rir_samples] `responses` of the song's layout (None: it has none), cached.

  Kept per process (0.1-0.3 s to simulate, 1.1 MB for 8 channels at 0.2 s).
  """
  lay = layout_of(song_id, instruments)
  if lay is None:
    return None
  return responses(lay, rir_samples, sample_rate, max_order=max_order).astype(np.float16)
