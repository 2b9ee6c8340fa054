"""Drum kits played from their recorded samples (Hydrogen drumkits) for `rendered_live`.

A soundfont holds few drum kits, so a mixer trained on two soundfonts' kits learns the level of
*those* snares. The Debian package hydrogen-drumkits ships a dozen kits recorded one piece at a
time (a `drumkit.xml` naming each instrument and its velocity layers, plus the sample files);
this module plays General MIDI drum notes on them. `KITS` maps a short name to a kit folder
(one entry a kit); `SampleKit.load` reads the kit's instruments and names which one plays each
GM key from the instrument's name (kick, snare, hi-hat closed / pedal / open, toms, crash, ride);
`SampleKit.render` lays each note's velocity layer at its onset, scaled by the velocity, and a
hi-hat note chokes the hi-hat still ringing, as a hi-hat does. The output is dry and mono
float32 [samples] at the renderer's rate, as FluidSynth's parts are (alm_jax.data.rendered_synth).
"""

import dataclasses
import os
import re
import xml.etree.ElementTree as ET

import numpy as np
import soundfile

from alm_jax import audio_io

HYDROGEN = '/usr/share/hydrogen/data/drumkits'
PACKAGE = 'hydrogen-drumkits'
# Acoustic kits, a kit of collected samples and a breakbeat kit; not the hand-percussion and
# djembe kits (no kick or snare), nor 'The Black Pearl 1.0' (the AVL Black Pearl soundfont's kit,
# already in training).
KITS = {
    'h2_bja_pacific': 'BJA_Pacific',
    'h2_colombo': 'ColomboAcousticDrumkit',
    'h2_forzee': 'ForzeeStereo',
    'h2_millo1': 'Millo-Drums_v.1',
    'h2_millo2': 'Millo_MultiLayered2',
    'h2_millo3': 'Millo_MultiLayered3',
    'h2_rumpf': 'rumpf_kit_z01_h2',
    'h2_audiophob': 'Audiophob',
    'h2_varibreaks': 'VariBreaks',
}  # ElectricEmpireKit and HardElectro1 have neither cymbal nor tom for a band's overheads
HIHAT_KEYS = (42, 44, 46)
_CHOKE_S = 0.005  # a choked hi-hat fades out over 5 ms


class KitError(RuntimeError):
  """A kit's folder, drumkit.xml or samples are missing or unusable; the message names the fix."""


def folder(name: str) -> str:
  return os.path.join(HYDROGEN, KITS[name])


def _is_hat(n: str) -> bool:
  return bool(re.search(r'hh|hat', n))


def _tom_height(n: str) -> str | None:
  if not re.search(r'\btom', n):  # not 'stomp'
    return None
  if re.search(r'floor|low|\blo\b', n):
    return 'low'
  if 'mid' in n:
    return 'mid'
  return 'high' if re.search(r'\bhi|high', n) else 'mid'


# GM key -> a test on an instrument's lower-cased name, and keys to fall back on (in order).
_RULES = {
    36: (lambda n: bool(re.search(r'kick|bass ?drum|^bd', n)), ()),
    38: (lambda n: 'snare' in n and not re.search(r'roll|rim|flam', n), ()),
    37: (lambda n: bool(re.search(r'stick|rim', n)) and 'tom' not in n, (38,)),
    42: (lambda n: _is_hat(n) and bool(re.search(r'clos|\bcl\b', n)), ()),
    44: (lambda n: _is_hat(n) and bool(re.search(r'pedal|\bpd\b|foot', n)), (42,)),
    46: (lambda n: _is_hat(n) and bool(re.search(r'open|\bop\b', n)) and 'semi' not in n, (42,)),
    49: (lambda n: 'crash' in n, (51,)),
    51: (lambda n: 'ride' in n and not re.search(r'bell|cup', n), (49,)),
    41: (lambda n: _tom_height(n) == 'low', (45, 48)),
    43: (lambda n: _tom_height(n) == 'low', (41,)),
    45: (lambda n: _tom_height(n) == 'mid', (41, 48)),
    47: (lambda n: _tom_height(n) == 'mid', (45,)),
    48: (lambda n: _tom_height(n) == 'high', (45, 41)),
    50: (lambda n: _tom_height(n) == 'high', (48,)),
}
_ALIASES = {35: 36, 40: 38}
_REQUIRED = (36, 38, 42)
_OVERHEAD_KEYS = (49, 51, 41, 45, 48)  # a band's overheads channel needs one of them


@dataclasses.dataclass
class _Layer:
  lo: float                # velocity range [lo, hi] in 0..1
  hi: float
  gain: float
  audio: np.ndarray        # float32 [samples], mono at the kit's sample rate


@dataclasses.dataclass
class SampleKit:
  """A kit's instruments by GM key: key -> (instrument name, volume, layers)."""
  name: str
  sample_rate: int
  keys: dict

  @classmethod
  def load(cls, name: str, sample_rate: int) -> 'SampleKit':
    """Reads kit `name` of KITS, its samples resampled to `sample_rate` and mixed to mono."""
    path = os.path.join(folder(name), 'drumkit.xml')
    if not os.path.isfile(path):
      raise KitError(f'Drum kit {name!r}: {path} missing; install the Debian package {PACKAGE} '
                     f'(`apt-get install -y {PACKAGE}`).')
    try:
      root = ET.parse(path).getroot()
    except ET.ParseError as e:
      raise KitError(f'Drum kit {name!r}: {path} is not readable XML ({e}); reinstall '
                     f'{PACKAGE}.') from e
    for el in root.iter():  # newer drumkit.xml files carry a namespace: drop it
      el.tag = el.tag.rsplit('}', 1)[-1]
    instruments = []
    for inst in root.iter('instrument'):
      iname = (inst.findtext('name') or '').strip().lower()
      layers = [(lay.findtext('filename'), float(lay.findtext('min') or 0),
                 float(lay.findtext('max') or 1), float(lay.findtext('gain') or 1))
                for lay in inst.iter('layer')]
      if not layers and inst.findtext('filename'):  # the old format: one sample, no layers
        layers = [(inst.findtext('filename'), 0.0, 1.0, 1.0)]
      if iname and layers:
        instruments.append((iname, float(inst.findtext('volume') or 1), layers))
    chosen = {}
    for key, (test, _) in _RULES.items():
      hit = next((i for i in instruments if test(i[0])), None)
      if hit is not None:
        chosen[key] = hit
    for key, (_, fallbacks) in _RULES.items():
      if key not in chosen:
        alt = next((k for k in fallbacks if k in chosen), None)
        if alt is not None:
          chosen[key] = chosen[alt]
    missing = [k for k in _REQUIRED if k not in chosen]
    if not any(k in chosen for k in _OVERHEAD_KEYS):
      missing.append('crash 49 / ride 51 / a tom')
    if missing:
      raise KitError(f'Drum kit {name!r} ({path}) has no instrument named for GM key(s) '
                     f'{missing} (kick 36, snare 38, closed hi-hat 42, and a cymbal or tom); '
                     'drop it from KITS.')
    cache = {}
    keys = {}
    for key, (iname, volume, layers) in chosen.items():
      loaded = []
      for fname, lo, hi, gain in layers:
        if fname not in cache:
          cache[fname] = _read(os.path.join(folder(name), fname), sample_rate, name)
        loaded.append(_Layer(lo, hi, gain, cache[fname]))
      keys[key] = (iname, volume, loaded)
    return cls(name, sample_rate, keys)

  def instrument(self, key: int) -> str | None:
    hit = self.keys.get(_ALIASES.get(key, key))
    return None if hit is None else hit[0]

  def render(self, notes, num_samples: int) -> np.ndarray:
    """float32 [num_samples]: notes [(start s, duration s, key, velocity 1..127)], dry and mono.

    A drum sample plays to its end whatever the note's duration (as in Hydrogen); a hi-hat
    note cuts the hi-hat sample still sounding with a 5 ms fade. Keys the kit lacks are silent.
    """
    out = np.zeros(num_samples, np.float32)
    events = sorted((int(round(start * self.sample_rate)), int(key), float(vel))
                    for start, _, key, vel in notes)
    hat_onsets = [t for t, k, _ in events if _ALIASES.get(k, k) in HIHAT_KEYS]
    fade = max(1, int(_CHOKE_S * self.sample_rate))
    for t, key, vel in events:
      hit = self.keys.get(_ALIASES.get(key, key))
      if hit is None or not 0 <= t < num_samples:
        continue
      _, volume, layers = hit
      v = float(np.clip(vel, 1, 127)) / 127
      layer = next((la for la in layers if la.lo <= v <= la.hi),
                   min(layers, key=lambda la: min(abs(v - la.lo), abs(v - la.hi))))
      x = layer.audio * np.float32(v * layer.gain * volume)
      end = min(num_samples, t + x.size)
      if _ALIASES.get(key, key) in HIHAT_KEYS:
        nxt = next((u for u in hat_onsets if u > t), None)
        if nxt is not None and nxt < end:
          x = x[:nxt - t + fade].copy()
          x[nxt - t:] *= np.linspace(1, 0, x.size - (nxt - t), dtype=np.float32)
          end = min(num_samples, t + x.size)
      out[t:end] += x[:end - t]
    return out


def _read(path: str, sample_rate: int, kit: str) -> np.ndarray:
  """float32 [samples]: a sample file, mixed to mono and resampled to `sample_rate`."""
  try:
    audio, sr = soundfile.read(path, dtype='float32', always_2d=True)
  except (RuntimeError, soundfile.LibsndfileError) as e:
    raise KitError(f'Drum kit {kit!r}: cannot read sample {path} ({e}); reinstall '
                   f'{PACKAGE}.') from e
  return np.ascontiguousarray(audio_io.resample(audio.mean(axis=1), sr, sample_rate))
