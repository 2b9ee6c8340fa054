"""A designed stereo placement by role for the datasets with a designed balance.

`designed_pans(song_id, instruments, tracks)` gives each channel of a `rendered_live` or
`synthetic_live` song its pan (constant-power law, `alm_jax.stereo`): kick, snare,
bass, the whole kit and the lead or top voice at the centre; hats to the audience's
right; comping parts, pads and inner voices off the centre on alternate sides in
order of register (the lowest to the left). Sides follow what can be heard, so a
mixer can learn them; only the widths vary per song. It is a pure function of the
song id, the channels' roles (the instrument label's part before ':') and their
clean tracks, so the built datasets need no new feature and no rebuild. The
placement, its per-song variation and its sources: docs/data.md ("Stereo placement").
"""

import hashlib

import numpy as np

# role -> (lowest, highest) |pan| of that role's channels; 0: the centre. Roles of rendered_live
# (rendered.ROLE_LEVELS_DB) and of synthetic_live's parts.
ROLE_WIDTH = {
    # The centre: what carries the song's weight and its message (the guides' "centre four").
    'lead': (0.0, 0.0), 'melody': (0.0, 0.0), 'kick': (0.0, 0.0), 'snare': (0.0, 0.0),
    'bass': (0.0, 0.0), 'bass_voice': (0.0, 0.0), 'drums': (0.0, 0.0), 'snare_hihat': (0.0, 0.0),
    'overheads': (0.0, 0.0),  # one mono channel for the kit's toms and cymbals: the kit's centre
    # Off the centre: supporting parts, spread so they leave the centre to the above.
    'hats': (0.25, 0.5), 'hihat': (0.25, 0.5),
    'comp': (0.3, 0.7), 'keys': (0.3, 0.7), 'guitar': (0.3, 0.7),
    'pad': (0.2, 0.6),
    'inner': (0.3, 0.7),
}
# Roles spread to both sides: ordered by register, the lowest goes left and the next ones
# alternate, so two comping parts (or inner voices) sit left and right rather than together.
_SPREAD = ('comp', 'keys', 'guitar', 'pad', 'inner')
HATS_SIDE = 1.0  # cymbals to the audience's right (a right-handed kit seen from the front)


def role_of(instrument: str) -> str:
  """'comp:Electric Piano 1' -> 'comp' (rendered_live), 'kick' -> 'kick' (synthetic_live)."""
  return instrument.split(':', 1)[0]


def known(instruments) -> bool:
  """Whether every channel's role has a designed place (a song of a designed-balance dataset)."""
  return all(role_of(i) in ROLE_WIDTH for i in instruments)


def register(track: np.ndarray, frame: int = 4096, max_frames: int = 32) -> float:
  """A track's register: the power-weighted mean log2 frequency bin over its loudest frames.

  track: [samples] (any scale). Up to `max_frames` evenly spaced frames of `frame` samples, the
  louder half of them, Hann-windowed; bins 1 .. frame / 4 (up to a quarter of the sample rate).
  """
  x = np.asarray(track, np.float32)
  if x.shape[-1] < frame:
    x = np.pad(x, (0, frame - x.shape[-1]))
  starts = np.linspace(0, x.shape[-1] - frame, min(max_frames, x.shape[-1] // frame) or 1)
  frames = np.stack([x[int(s):int(s) + frame] for s in starts]) * np.hanning(frame)
  power = np.abs(np.fft.rfft(frames, axis=-1)[:, 1:frame // 4]) ** 2  # [k, bins]
  loud = power.sum(-1) >= np.median(power.sum(-1))
  spectrum = power[loud].sum(0)
  if not spectrum.sum() > 0:
    return 0.0
  return float(np.sum(np.log2(np.arange(1, frame // 4)) * spectrum) / spectrum.sum())


def designed_pans(song_id: str, instruments, tracks) -> np.ndarray:
  """float32 [channels] pans in [-1, 1] for a song's channels, in the song's channel order.

  Args:
    song_id: seeds the widths (each off-centre channel's |pan|, uniform in its role's range).
    instruments: [channels] labels 'role:name' (or the role alone).
    tracks: [channels, samples] the clean tracks (any scale): their `register` orders the
      spread parts, lowest to the left, then alternating sides.
  Raises:
    ValueError: a role without a designed place (names it and ROLE_WIDTH), or tracks that
      do not match the instruments.
  """
  roles = [role_of(i) for i in instruments]
  unknown = sorted({r for r in roles if r not in ROLE_WIDTH})
  if unknown:
    raise ValueError(f'Song {song_id}: no designed stereo place for role(s) {unknown}; add them to '
                     'alm_jax/data/placement.py ROLE_WIDTH.')
  if len(tracks) != len(roles):
    raise ValueError(f'Song {song_id}: {len(tracks)} tracks for {len(roles)} instruments.')
  rng = np.random.default_rng(int.from_bytes(
      hashlib.sha256(('placement:' + song_id).encode()).digest()[:8], 'little'))
  widths = [float(rng.uniform(*ROLE_WIDTH[r])) for r in roles]  # a song's draws are fixed
  pans = np.zeros(len(roles), np.float32)
  spread = [c for c, r in enumerate(roles) if r in _SPREAD]
  for k, c in enumerate(sorted(spread, key=lambda c: (register(tracks[c]), c))):
    pans[c] = (-1.0 if k % 2 == 0 else 1.0) * widths[c]
  for c, r in enumerate(roles):
    if r not in _SPREAD and ROLE_WIDTH[r][1] > 0:
      pans[c] = HATS_SIDE * widths[c]
  return pans
