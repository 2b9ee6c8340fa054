"""The music of `rendered_live`: corpus works from music21 and generated pop-style arrangements.

Two sources, both ending as an Arrangement (parts of timed notes with a role
and an instrument family; `alm_jax.data.rendered` picks programs and renders):
  - corpus works: the multi-part pieces of music21's built-in corpus by the
    composers in COMPOSERS, an excerpt of each, every part one instrument chosen
    by register within an ensemble (voices, winds, brass, strings, organ, mixed);
  - generated songs in STYLES: a drum-kit groove, a bass line on the chords,
    comping, a pad and a lead line, either a fiddle tune from the corpus's
    `ryansMammoth` collection (harmonised bar by bar) or a generated melody;
    with band=True (`rendered_live/stage`) a band whose kit is four channels
    (kick, snare, hi-hat, overheads: BAND_ROLES), a guitar and keys.
No work of J. S. Bach (nor any corpus path naming 'bach') is ever read:
`no_bach` filters every list of corpus paths. Parsed pieces are cached as
small JSON files (music21 takes 0.5-6 s a piece).
"""

import dataclasses
import functools
import hashlib
import json
import math
import os

import numpy as np

from alm_jax import outputs

# composer -> (corpus folder, file extensions, ensemble kind)
COMPOSERS = {
    'palestrina': ('palestrina', ('krn',), 'vocal'),
    'trecento': ('trecento', ('xml', 'mxl'), 'vocal'),
    'monteverdi': ('monteverdi', ('mxl',), 'vocal'),
    'haydn': ('haydn', ('mxl',), 'quartet'),
    'mozart': ('mozart', ('mxl',), 'quartet'),
    'beethoven': ('beethoven', ('mxl', 'krn'), 'quartet'),
}
STYLES = ('rock', 'pop', 'funk', 'ballad', 'shuffle', 'bossa')
TUNES = 'ryansMammoth'


def no_bach(paths) -> list[str]:
  """The paths that name no Bach (J. S. Bach's works, and C. P. E. Bach's, are never used)."""
  return [p for p in paths if 'bach' not in str(p).lower()]


@functools.lru_cache(maxsize=None)
def corpus_paths(folder: str, extensions: tuple) -> tuple:
  """Sorted corpus paths relative to music21's corpus root, e.g. 'haydn/opus1no1/movement1.mxl'."""
  from music21 import corpus  # pylint: disable=import-outside-toplevel  (optional, slow import)
  out = []
  for p in corpus.getCorePaths():
    rel = str(p).replace(os.sep, '/').split('/corpus/', 1)[-1]
    if rel.split('/')[0] == folder and rel.rsplit('.', 1)[-1] in extensions:
      out.append(rel)
  return tuple(sorted(no_bach(out)))


def hash_unit(text: str) -> float:
  return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], 'big') / 2.0 ** 64


# ---- parsing, cached ------------------------------------------------------------------


def parse_piece(rel_path: str, cache_dir: str | None) -> dict:
  """{'parts': [[(onset q, duration q, midi), ...] per part], 'quarters_per_bar': float}.

  Parts with no pitched note are dropped; chords give one entry per pitch.
  """
  if no_bach([rel_path]) != [rel_path]:
    raise ValueError(f'{rel_path}: the works of Bach are not used by rendered_live.')
  cache = None
  if cache_dir:
    cache = os.path.join(cache_dir, hashlib.sha1(rel_path.encode()).hexdigest()[:16] + '.json')
    if os.path.isfile(cache):
      with open(cache) as f:
        return json.load(f)
  from music21 import corpus, stream  # pylint: disable=import-outside-toplevel
  score = corpus.parse(rel_path)
  if isinstance(score, stream.Opus):
    score = score.scores[0]
  parts = []
  for part in score.parts:
    notes = []
    for n in part.stripTies().flatten().notes:
      q = float(n.quarterLength)
      if q <= 0:  # grace notes
        continue
      for pitch in n.pitches:
        notes.append((round(float(n.offset), 4), round(q, 4), int(pitch.midi)))
    if notes:
      parts.append(sorted(notes))
  ts = score.recurse().getElementsByClass('TimeSignature').first()
  piece = {'parts': parts, 'quarters_per_bar': float(ts.barDuration.quarterLength) if ts else 4.0}
  if cache:
    os.makedirs(cache_dir, exist_ok=True)
    outputs.atomic_write_text(cache, json.dumps(piece))
  return piece


# ---- arrangements ----------------------------------------------------------------------


@dataclasses.dataclass
class Part:
  role: str     # a key of alm_jax.data.rendered.ROLE_LEVELS_DB
  family: str   # an instrument family (rendered.FAMILIES) or 'drums'
  notes: list   # [(start s, duration s, midi key, velocity)]


@dataclasses.dataclass
class Arrangement:
  source: str      # corpus path, or 'generated:<style>' (+ ':' tune path)
  repertoire: str  # composer or style
  parts: list
  seconds: float


def _register(median: float) -> str:
  return 'high' if median >= 67 else 'mid' if median >= 55 else 'low'


def corpus_arrangement(piece: dict, source: str, composer: str, rng, seconds: float,
                       max_parts: int) -> Arrangement | None:
  """An excerpt of `seconds` of a parsed piece, or None if fewer than 3 parts play in it."""
  kind = COMPOSERS[composer][2]
  all_notes = [n for p in piece['parts'] for n in p]
  if not all_notes:
    return None
  durs = np.array([d for _, d, _ in all_notes])
  # Tempo from the notation: the median note lasts 0.3-0.6 s, so Palestrina's
  # breves and a quartet's sixteenths both come out at singable speeds.
  sec_per_q = float(np.clip(rng.uniform(0.3, 0.6) / np.median(durs), 60 / 200, 60 / 40))
  span_q = seconds / sec_per_q
  end_q = max(o + d for o, d, _ in all_notes)
  onsets = sorted({o for o, _, _ in all_notes if o <= max(0.0, end_q - span_q)})
  start_q = float(onsets[int(rng.integers(len(onsets)))]) if onsets else 0.0
  transpose = int(rng.integers(-3, 4))
  parts = []
  for notes in piece['parts']:
    inside = [(o - start_q, min(d, start_q + span_q - o), m) for o, d, m in notes
              if start_q <= o < start_q + span_q]
    if len(inside) >= 3:
      parts.append(inside)
  if len(parts) < 3:
    return None
  medians = [float(np.median([m for _, _, m in p])) for p in parts]
  order = list(np.argsort(medians)[::-1])  # high to low
  if len(order) > max_parts:  # keep the top and bottom voices, and random inner ones
    inner = list(rng.choice(order[1:-1], max_parts - 2, replace=False))
    order = [o for o in order if o in (order[0], order[-1], *inner)]
  if kind == 'quartet':
    ensemble = 'strings' if rng.random() < 0.8 else 'mixed'
  else:
    ensemble = str(rng.choice(['voices', 'winds', 'brass', 'strings', 'organ', 'mixed']))
  out = []
  for rank, i in enumerate(order):
    role = 'melody' if rank == 0 else 'bass_voice' if rank == len(order) - 1 else 'inner'
    ens = str(rng.choice(['voices', 'winds', 'brass', 'strings'])) if ensemble == 'mixed' \
        else ensemble
    base_vel = rng.uniform(70, 100)
    notes = [(o * sec_per_q, d * sec_per_q * 0.97, m + transpose,
              int(np.clip(base_vel + rng.normal(0, 6), 30, 120))) for o, d, m in parts[i]]
    out.append(Part(role, f'{ens}_{_register(medians[i] + transpose)}', notes))
  return Arrangement(source, composer, out, seconds)


_MAJOR = (0, 2, 4, 5, 7, 9, 11)
_PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 4), (0, 3, 0, 4),
                 (0, 4, 3, 4), (1, 4, 0, 0))
# Per style: tempo range; swing; drum steps (16 per 4/4 bar) as {GM key: [(step, velocity)]};
# bass [(step, steps long, interval over the root)]; comp [(step, steps long)]; comp families.
_STYLE = {
    'rock': dict(bpm=(100, 140), swing=False,
                 drums={36: [(0, 110), (8, 105), (10, 95)], 38: [(4, 115), (12, 115)],
                        42: [(s, 80 + 15 * (s % 4 == 0)) for s in range(0, 16, 2)]},
                 bass=[(s, 2, 0) for s in range(0, 16, 2)], comp=[(0, 4), (4, 4), (8, 4), (12, 4)],
                 comps=('guitar_drive', 'guitar', 'piano', 'organ')),
    'pop': dict(bpm=(88, 122), swing=False,
                drums={36: [(0, 105), (6, 90), (8, 100)], 38: [(4, 105), (12, 108)],
                       42: [(s, 70 + 15 * (s % 4 == 0)) for s in range(0, 16, 2)]},
                bass=[(0, 3, 0), (6, 2, 0), (8, 4, 0), (14, 2, 7)],
                comp=[(0, 6), (6, 2), (8, 6), (14, 2)], comps=('piano', 'epiano', 'guitar')),
    'funk': dict(bpm=(90, 112), swing=False,
                 drums={36: [(0, 110), (3, 85), (6, 95), (10, 100)],
                        38: [(4, 115), (12, 115), (7, 40), (9, 35), (15, 40)],
                        42: [(s, 60 + 25 * (s % 2 == 0)) for s in range(16) if s != 14],
                        46: [(14, 85)]},
                 bass=[(0, 1, 0), (3, 1, 12), (6, 1, 0), (7, 1, 7), (10, 1, 0), (12, 1, 10),
                       (14, 1, 12)],
                 comp=[(2, 1), (6, 1), (10, 1), (14, 1)],
                 comps=('guitar', 'epiano', 'clav', 'organ')),
    'ballad': dict(bpm=(60, 80), swing=False,
                   drums={36: [(0, 95), (10, 80)], 37: [(4, 80), (12, 85)],
                          42: [(s, 55 + 10 * (s % 4 == 0)) for s in range(0, 16, 2)]},
                   bass=[(0, 8, 0), (8, 6, 0), (14, 2, 7)], comp='arpeggio',
                   comps=('piano', 'epiano', 'guitar_nylon')),
    'shuffle': dict(bpm=(96, 128), swing=True,
                    drums={36: [(0, 105), (8, 100)], 38: [(4, 110), (12, 110)],
                           51: [(s, 70 + 15 * (s % 4 == 0)) for s in range(0, 16, 2)]},
                    bass=[(0, 4, 0), (4, 4, 4), (8, 4, 7), (12, 4, 9)],
                    comp=[(2, 2), (6, 2), (10, 2), (14, 2)], comps=('piano', 'organ', 'guitar')),
    'bossa': dict(bpm=(120, 145), swing=False,
                  drums={36: [(s, 70 + 15 * (s % 8 == 0)) for s in (0, 3, 4, 7, 8, 11, 12, 15)],
                         37: [(0, 85), (6, 85), (12, 85)],
                         42: [(s, 55 + 10 * (s % 4 == 0)) for s in range(0, 16, 2)]},
                  bass=[(0, 3, 0), (3, 1, 7), (4, 4, 7), (8, 3, 0), (11, 1, 7), (12, 4, 7)],
                  comp=[(0, 3), (3, 3), (6, 4), (10, 3), (13, 3)],
                  comps=('guitar_nylon', 'piano', 'epiano')),
}
KICK, SNARE = (35, 36), (37, 38, 40)  # the rest of a kit's keys go to the 'hats' channel
# A band song's kit miked piece by piece: the hats channel plays only the hi-hat; the
# 'overheads' channel every other cymbal (crash, ride) and the toms.
HIHAT = (42, 44, 46)
DRUM_ROLES = ('drums', 'kick', 'snare', 'hats', 'overheads')
BAND_ROLES = {6: ['kick', 'snare', 'hats', 'overheads', 'bass', 'lead'],
              7: ['kick', 'snare', 'hats', 'overheads', 'bass', 'comp', 'lead'],
              8: ['kick', 'snare', 'hats', 'overheads', 'bass', 'comp', 'keys', 'lead']}
BAND_GUITARS = ('guitar', 'guitar_drive', 'guitar_nylon')  # the guitar amp's comp
BAND_KEYS = ('piano', 'epiano', 'organ', 'clav')            # the keys: comping, or a pad
_TOMS = (50, 48, 47, 45, 43, 41)  # high to low: a fill runs down them


def _triad(tonic: int, degree: int) -> list[int]:
  return [tonic + _MAJOR[(degree + i) % 7] + 12 * ((degree + i) // 7) for i in (0, 2, 4)]


def _harmonise(melody, bars: int, beats_per_bar: float) -> list[int]:
  """Per bar, the diatonic degree (of C) whose triad covers most of the bar's melody."""
  degrees = []
  for b in range(bars):
    weight = np.zeros(7)
    for o, d, m in melody:
      if b * beats_per_bar <= o < (b + 1) * beats_per_bar:
        for deg in range(7):
          if m % 12 in {p % 12 for p in _triad(0, deg)}:
            weight[deg] += d * (2.0 if o % 1 == 0 else 1.0)
    weight[[0, 3, 4]] += 0.01  # ties go to I, IV, V
    degrees.append(int(np.argmax(weight)))
  return degrees


def _tune_melody(piece: dict, rng, bars: int):
  """(notes [(beat, beats, midi)], chord degrees per bar), the tune transposed to C, looped."""
  notes = piece['parts'][0]
  pcs = np.zeros(12)
  for _, d, m in notes:
    pcs[m % 12] += d
  # The key: the major scale holding most of the tune's duration.
  shift = int(np.argmax([sum(pcs[(t + s) % 12] for s in _MAJOR) for t in range(12)]))
  length = max(o + d for o, d, _ in notes)
  length = math.ceil(length / 4) * 4
  out, k = [], 0
  while k * length < bars * 4:
    out += [(o + k * length, d, m - shift) for o, d, m in notes if o + k * length < bars * 4]
    k += 1
  center = np.median([m for _, _, m in out])
  octave = 12 * round((74 - center) / 12)
  out = [(o, d, m + octave) for o, d, m in out]
  return out, _harmonise(out, bars, 4)


def _generated_melody(rng, degrees, bars: int):
  scale = [60 + 12 * o + s for o in range(-1, 3) for s in _MAJOR]
  idx, pos, out = scale.index(72), 0.0, []
  while pos < bars * 4:
    dur = float(rng.choice([0.5, 0.5, 1.0, 1.0, 1.5, 2.0]))
    chord = {p % 12 for p in _triad(0, degrees[int(pos // 4)])}
    if rng.random() > 0.15:
      idx = int(np.clip(idx + rng.integers(-2, 3), 7, len(scale) - 8))
      if pos % 1 == 0 and scale[idx] % 12 not in chord:  # strong beats on chord tones
        idx += 1 if scale[idx + 1] % 12 in chord else -1
      out.append((pos, dur * 0.95, scale[idx]))
    pos += dur
  return out


def generated_arrangement(style: str, rng, seconds: float, channels: int, tune: dict | None,
                          source: str, band: bool = False) -> Arrangement:
  """A pop-style song of `channels` (3-8) parts; the lead is `tune` if given, else generated.

  band: a band on a stage (`rendered_live/stage`, channels 6-8, BAND_ROLES): the kit in four
  channels (kick, snare, the hi-hat alone, and 'overheads': the other cymbals and the toms,
  with a tom fill ending each 4-bar section), a guitar comp (7-8 channels) and keys, comping
  or a pad (8). Without it the draws are the same as ever (the built `default` songs).
  """
  st = _STYLE[style]
  beat = 60.0 / rng.uniform(*st['bpm'])
  bars = max(2, math.ceil(seconds / (4 * beat)))
  if tune is not None:
    melody, degrees = _tune_melody(tune, rng, bars)
  else:
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    degrees = [prog[b % 4] for b in range(bars)]
    melody = _generated_melody(rng, degrees, bars)
  key = int(rng.integers(-5, 7))
  chords = [[60 + key + p for p in _triad(0, d)] for d in degrees]
  if band:
    if channels not in BAND_ROLES:
      raise ValueError(f'A band song has 6-8 channels (BAND_ROLES), not {channels}.')
    roles = list(BAND_ROLES[channels])
    if 'keys' in roles:  # the keys comp or hold a pad
      roles[roles.index('keys')] = 'pad' if rng.random() < 0.4 else 'comp'
  else:
    roles = {3: ['drums', 'bass', 'lead'], 4: ['drums', 'bass', 'comp', 'lead'],
             5: ['drums', 'bass', 'comp', 'pad', 'lead'],
             6: ['kick', 'snare', 'hats', 'bass', 'comp', 'lead'],
             7: ['kick', 'snare', 'hats', 'bass', 'comp', 'pad', 'lead'],
             8: ['kick', 'snare', 'hats', 'bass', 'comp', 'comp', 'pad', 'lead']}[channels]
  sections = math.ceil(bars / 4)
  plays = rng.random((sections, len(roles))) < 0.85
  plays[0] = True  # every part plays in the first section
  active = np.repeat(plays, 4, axis=0)[:bars]

  def at(bar, step):  # seconds of a 16th step, swung if the style swings
    beat_i, sub = divmod(step, 4)
    frac = {0: 0.0, 1: 1 / 3, 2: 2 / 3, 3: 5 / 6}[sub] if st['swing'] else sub / 4
    t = (bar * 4 + beat_i + frac) * beat
    return max(0.0, t + rng.normal(0, 0.006))  # humanised timing

  def vel(v, spread=8):
    return int(np.clip(v + rng.normal(0, spread), 20, 127))

  if band:  # the guitar amp's part, then the keys'
    guitars = [c for c in st['comps'] if c in BAND_GUITARS] or list(BAND_GUITARS[:2])
    keys = [c for c in st['comps'] if c in BAND_KEYS] or list(BAND_KEYS)
    comps = [str(rng.choice(guitars)), str(rng.choice(keys))]
  else:
    comps = [str(rng.choice(st['comps']))]
    others = [c for c in ('piano', 'epiano', 'organ', 'guitar') if c != comps[0]]
    comps.append(str(rng.choice(others)))
  hihat_groove = any(k in HIHAT for k in st['drums'])
  parts, ncomp = [], 0
  for ch, role in enumerate(roles):
    notes = []
    for bar in range(bars):
      if not active[bar, ch]:
        continue
      chord = chords[bar]
      if band and role in DRUM_ROLES:
        notes += _band_drums(role, st, bar, bars, at, vel, hihat_groove)
      elif role in ('drums', 'kick', 'snare', 'hats'):
        for k, hits in st['drums'].items():
          mine = (role == 'kick') == (k in KICK) and (role == 'snare') == (k in SNARE)
          if role == 'drums' or mine:
            notes += [(at(bar, s), 0.2, k, vel(v)) for s, v in hits]
        if role in ('drums', 'hats') and bar % 4 == 0:
          notes.append((at(bar, 0), 0.5, 49, vel(100)))  # crash on each section
      elif role == 'bass':
        notes += [(at(bar, s), n * beat / 4 * 0.9, chord[0] - 24 + iv, vel(95))
                  for s, n, iv in st['bass']]
      elif role == 'comp':
        voicing = [p - 12 + 12 * (p < chord[0]) for p in chord] + [chord[0]]
        if st['comp'] == 'arpeggio':
          notes += [(at(bar, s), beat * 0.9, voicing[(s // 2) % 4], vel(70))
                    for s in range(0, 16, 2)]
        else:
          notes += [(at(bar, s), n * beat / 4 * 0.9, p, vel(80)) for s, n in st['comp']
                    for p in voicing]
      elif role == 'pad':
        notes += [(at(bar, 0), 4 * beat, p - 12 * (i == 0), vel(70, 4))
                  for i, p in enumerate(chord)]
      elif role == 'lead':
        notes += [(o * beat + rng.normal(0, 0.006), d * beat, m + key, vel(95, 6))
                  for o, d, m in melody if bar * 4 <= o < (bar + 1) * 4]
    if role == 'comp':
      family, ncomp = comps[ncomp], ncomp + 1
    else:
      family = 'drums' if role in DRUM_ROLES else role
    parts.append(Part(role, family, [(max(0.0, t), d, k, v) for t, d, k, v in notes]))
  return Arrangement(source, style, parts, seconds)


def _band_drums(role: str, st: dict, bar: int, bars: int, at, vel, hihat_groove: bool) -> list:
  """One bar of a band song's kit piece `role` (kick, snare, hats or overheads).

  Kick and snare play the style's keys as ever; hats the style's hi-hat keys (a groove kept on
  the ride gets the pedal hi-hat on 2 and 4); overheads the other cymbals, a crash opening each
  4-bar section, and a tom fill over the second half of each section's last bar (and the song's).
  """
  notes = []
  for k, hits in st['drums'].items():
    if ((role == 'kick' and k in KICK) or (role == 'snare' and k in SNARE)
        or (role == 'hats' and k in HIHAT)
        or (role == 'overheads' and k not in KICK + SNARE + HIHAT)):
      notes += [(at(bar, s), 0.2, k, vel(v)) for s, v in hits]
  if role == 'hats' and not hihat_groove:
    notes += [(at(bar, s), 0.2, 44, vel(75)) for s in (4, 12)]
  if role == 'overheads':
    if bar % 4 == 0:
      notes.append((at(bar, 0), 0.5, 49, vel(100)))  # crash on each section
    if bar % 4 == 3 or bar == bars - 1:  # a fill down the toms into the next section
      notes += [(at(bar, s), 0.2, _TOMS[(s - 8) * len(_TOMS) // 8], vel(95)) for s in range(8, 16)]
  return notes
