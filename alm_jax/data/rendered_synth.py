"""FluidSynth rendering for `rendered_live`: the soundfonts, and one part as a dry mono track.

The soundfonts are Debian packages (nothing is downloaded): SOUNDFONTS maps a
short name to its file and package; the drum kits played from their samples
(alm_jax.data.sample_kits.KITS) are named like soundfonts and render alike.
`check_installed` raises RenderError naming the `apt-get install` line for
whatever is missing (the FluidSynth library, a soundfont or a kit). `Renderer`
loads the soundfonts once into one pyfluidsynth synth (reverb and chorus off, pan
centred) and renders a note list sample-accurately into float32 [samples] at
44.1 kHz, the mean of the left and right outputs.
The FluidR3 soundfonts (fluid-soundfont-gm / -gs, fluidr3mono) are never used:
they are reserved for an independent evaluation.
"""

import ctypes
import dataclasses
import os

import numpy as np

from alm_jax.data import common
# sample_kits imports soundfile, whose libsndfile then also decodes FluidSynth's sf3 samples (one
# libsndfile.so.1 per process): imported here, before FluidSynth, so every build decodes alike
# whatever else the process imported (1.0.0's songs were decoded by the system's; within 3 LSB).
from alm_jax.data import sample_kits

SF2, SF3 = '/usr/share/sounds/sf2', '/usr/share/sounds/sf3'


@dataclasses.dataclass(frozen=True)
class Soundfont:
  path: str
  package: str
  drum_bank: int          # the bank holding drum kits (GM: 128; the AVL kits: 0)
  drum_presets: tuple     # presets of that bank that are drum kits
  melodic: bool           # holds the 128 GM melodic programs in bank 0


SOUNDFONTS = {
    'musescore_lite': Soundfont(f'{SF3}/MuseScore_General_Lite.sf3',
                                'musescore-general-soundfont-small',
                                128, (0, 8, 16, 24, 32, 40), True),
    'timgm6mb': Soundfont(f'{SF2}/TimGM6mb.sf2', 'timgm6mb-soundfont', 128, (0, 8, 16, 32, 40),
                          True),
    'avl_black_pearl': Soundfont(f'{SF2}/Black_Pearl_4_LV2.sf2', 'avldrums.lv2-soundfont', 0, (0,),
                                 False),
    'avl_red_zeppelin': Soundfont(f'{SF2}/Red_Zeppelin_4_LV2.sf2', 'avldrums.lv2-soundfont', 0,
                                  (0,), False),
    # Csound's public-domain GM bank: a third set of timbres and kits (incl. TR 808, 25).
    'csound_gm': Soundfont(f'{SF2}/sf_GMbank.sf2', 'csound-soundfont', 128,
                           (0, 8, 16, 24, 25, 32, 40), True),
}
_BLOCK = 64  # FluidSynth's internal block (FLUID_BUFSIZE)
_FLUID_WARN = 2  # its log level enum: PANIC, ERR, WARN, INFO, DBG
_FORBIDDEN = ('fluidr3', 'fluid_r3', 'fluid-soundfont')
APT_LINE = ('apt-get install -y --no-install-recommends fluidsynth timgm6mb-soundfont '
            'musescore-general-soundfont-small avldrums.lv2-soundfont csound-soundfont '
            f'{sample_kits.PACKAGE}')


class RenderError(RuntimeError):
  """FluidSynth or a soundfont is missing; the message names the Debian package."""


def _fluidsynth_module():
  try:
    import fluidsynth  # pylint: disable=import-outside-toplevel  (optional, needs libfluidsynth)
  except ImportError as e:
    raise RenderError(f'rendered_live needs the FluidSynth library and pyfluidsynth ({e}). '
                      f'Install them: `{APT_LINE}` (Debian fluidsynth / libfluidsynth3) and '
                      '`pip install pyfluidsynth`.') from e
  return fluidsynth


def _where(name: str) -> tuple[str, str]:
  """(file or folder, Debian package) of a soundfont or sample kit name."""
  if name in SOUNDFONTS:
    return SOUNDFONTS[name].path, SOUNDFONTS[name].package
  if name in sample_kits.KITS:
    return os.path.join(sample_kits.folder(name), 'drumkit.xml'), sample_kits.PACKAGE
  raise RenderError(f'rendered_live: no soundfont or sample kit {name!r}; known: '
                    f'{sorted(SOUNDFONTS) + sorted(sample_kits.KITS)}.')


def check_installed(names) -> None:
  """Raises RenderError naming the Debian packages of the missing soundfonts (or FluidSynth)."""
  _fluidsynth_module()
  missing = [_where(n) for n in names if not os.path.isfile(_where(n)[0])]
  if missing:
    pkgs = sorted({pkg for _, pkg in missing})
    raise RenderError(f'rendered_live: soundfont(s) {[p for p, _ in missing]} missing; install '
                      f'the Debian package(s) {pkgs}: `{APT_LINE}`.')
  for n in names:
    if any(f in _where(n)[0].lower() for f in _FORBIDDEN):
      raise RenderError(f'{_where(n)[0]} is a FluidR3 soundfont, reserved for evaluation.')


@dataclasses.dataclass(frozen=True)
class Voice:
  """What plays a part: soundfont, bank, preset; notes [(start s, duration s, key, velocity)]."""
  soundfont: str
  bank: int
  preset: int
  notes: tuple


class Renderer:
  """One FluidSynth synth with the named soundfonts loaded: make one per song, then `close()`.

  A synth carries state from one render into the next (voice-pool filter state,
  the first use of each preset: up to ~-15 dB around a part's first notes), so
  a song rendered in a fresh synth depends on its own notes only, whatever was
  rendered before. Its parts are rendered in channel order in that one synth.
  """

  def __init__(self, names, sample_rate: int = common.SAMPLE_RATE):
    check_installed(names)
    fs = _fluidsynth_module()
    # FluidSynth warns on stderr for every channel without a preset at each reset
    # (one line per channel and part): drop its warnings, keep its errors.
    fs.cfunc('fluid_set_log_function', ctypes.c_void_p, ('level', ctypes.c_int, 1),
             ('fun', ctypes.c_void_p, 1), ('data', ctypes.c_void_p, 1))(_FLUID_WARN, None, None)
    self.sample_rate = int(sample_rate)
    # Gain 0.3 keeps dense polyphony (8-voice chords, drum rolls) clear of clipping in float.
    self._synth = fs.Synth(gain=0.3, samplerate=float(sample_rate), channels=16,
                           **{'synth.reverb.active': 0, 'synth.chorus.active': 0,
                              'synth.polyphony': 512, 'synth.cpu-cores': 1,
                              # sf3: decode only the presets a song uses, on program_select.
                              'synth.dynamic-sample-loading': 1})
    self._write = fs.cfunc('fluid_synth_write_float', ctypes.c_int, ('synth', ctypes.c_void_p, 1),
                           ('len', ctypes.c_int, 1), ('lout', ctypes.c_void_p, 1),
                           ('loff', ctypes.c_int, 1), ('lincr', ctypes.c_int, 1),
                           ('rout', ctypes.c_void_p, 1), ('roff', ctypes.c_int, 1),
                           ('rincr', ctypes.c_int, 1))
    self._ids = {n: self._synth.sfload(SOUNDFONTS[n].path) for n in names if n in SOUNDFONTS}
    try:
      self._kits = {n: sample_kits.SampleKit.load(n, self.sample_rate) for n in names
                    if n in sample_kits.KITS}
    except sample_kits.KitError as e:
      raise RenderError(str(e)) from e
    bad = [n for n, i in self._ids.items() if i < 0]
    if bad:
      raise RenderError(f'FluidSynth could not load {[SOUNDFONTS[n].path for n in bad]}; reinstall '
                        f'{sorted({SOUNDFONTS[n].package for n in bad})}.')

  def _reset(self):
    """Every render starts from one state: no voices, and the same note played last.

    FluidSynth keeps the last key played per channel across system_reset (it
    shapes the next note's onset by ~-40 dB), so a fixed silent note is played,
    released and cut before each render.
    """
    synth = self._synth
    synth.system_reset()
    synth.cc(0, 7, 0)
    synth.noteon(0, 60, 1)
    self._flush(2)
    synth.noteoff(0, 60)
    synth.all_sounds_off(0)
    synth.system_reset()
    self._flush(32, until_silent=True)

  def _flush(self, blocks: int, until_silent: bool = False):
    """Renders and drops `blocks` blocks; with until_silent, more until the output is silent.

    all_sounds_off and system_reset let the voices sounding finish their release
    (up to seconds), so a part would begin with the previous one's tail.
    """
    junk = np.zeros(blocks * _BLOCK, np.float32)
    for _ in range(2000 if until_silent else 1):
      self._write(self._synth.synth, junk.size, junk.ctypes.data, 0, 1, junk.ctypes.data, 0, 1)
      if not until_silent or (not np.any(junk) and self._synth.get_active_voice_count() == 0):
        return
      junk[:] = 0

  def close(self):
    self._synth.delete()

  def __enter__(self):
    return self

  def __exit__(self, *exc):
    self.close()

  def preset_name(self, soundfont: str, bank: int, preset: int) -> str:
    if soundfont in self._kits:
      return sample_kits.KITS[soundfont]
    return self._synth.sfpreset_name(self._ids[soundfont], bank, preset) or ''

  def render(self, voice: Voice, num_samples: int) -> np.ndarray:
    """float32 [num_samples]: the voice's notes, dry and mono, from a silent synth."""
    if voice.soundfont in self._kits:
      return self._kits[voice.soundfont].render(voice.notes, num_samples)
    synth, chan = self._synth, 0
    self._reset()
    if synth.program_select(chan, self._ids[voice.soundfont], voice.bank, voice.preset) != 0:
      raise RenderError(f'No preset {voice.bank}:{voice.preset} in {voice.soundfont}.')
    for cc, value in ((7, 100), (10, 64), (11, 127), (91, 0), (93, 0)):  # vol, pan, expr, sends
      synth.cc(chan, cc, value)
    # FluidSynth computes 64-sample blocks and applies events at block starts; a
    # write of any other length leaves samples buffered for the next render. So
    # events fall on block starts (1.45 ms grid) and every write is whole blocks.
    blk = _BLOCK
    total = -(-num_samples // blk) * blk
    events = []
    for start, dur, key, vel in voice.notes:
      on = int(round(start * self.sample_rate / blk)) * blk
      off = int(round((start + dur) * self.sample_rate / blk)) * blk
      if 0 <= on < num_samples and 0 <= key < 128:
        events.append((on, 1, int(key), int(np.clip(vel, 1, 127))))
        events.append((max(off, on + blk), 0, int(key), 0))
    events.sort()  # at one instant, note-offs (0) before note-ons (1)
    left = np.zeros(total, np.float32)
    right = np.zeros(total, np.float32)
    pos = 0
    for t, kind, key, vel in events + [(total, -1, 0, 0)]:
      t = min(t, total)
      while pos < t:
        block = min(t - pos, 1 << 16)
        self._write(synth.synth, block, left.ctypes.data, pos, 1, right.ctypes.data, pos, 1)
        pos += block
      if kind == 1:
        synth.noteon(chan, key, vel)
      elif kind == 0:
        synth.noteoff(chan, key)
    return 0.5 * (left[:num_samples] + right[:num_samples])
