"""A designed stereo placement by role for the datasets with a designed balance.

`designed_pans(song_id, instruments)` gives each channel of a `rendered_live` or
`synthetic_live` song its pan (constant-power law, `alm_jax.stereo`): kick, snare,
bass, the whole kit and the lead or top voice at the centre; hats, comping parts,
pads and inner voices off the centre, with per-song sides and widths. It is a pure
function of the song id and the channels' roles (the role is the instrument label's
part before ':'), so the built datasets need no new feature and no rebuild. The
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
    # Off the centre: supporting parts, spread so they leave the centre to the above.
    'hats': (0.25, 0.5), 'hihat': (0.25, 0.5),
    'comp': (0.3, 0.7), 'keys': (0.3, 0.7), 'guitar': (0.3, 0.7),
    'pad': (0.2, 0.6),
    'inner': (0.3, 0.7),
}
# Roles that share the sides: the k-th channel of these roles in a song alternates sides, so
# two comping parts (or inner voices) sit left and right rather than together.
_SPREAD = ('comp', 'keys', 'guitar', 'pad', 'inner')


def role_of(instrument: str) -> str:
  """'comp:Electric Piano 1' -> 'comp' (rendered_live), 'kick' -> 'kick' (synthetic_live)."""
  return instrument.split(':', 1)[0]


def known(instruments) -> bool:
  """Whether every channel's role has a designed place (a song of a designed-balance dataset)."""
  return all(role_of(i) in ROLE_WIDTH for i in instruments)


def _song_rng(song_id: str) -> np.random.Generator:
  digest = hashlib.sha256(('placement:' + song_id).encode()).digest()
  return np.random.default_rng(int.from_bytes(digest[:8], 'little'))


def designed_pans(song_id: str, instruments) -> np.ndarray:
  """float32 [channels] pans in [-1, 1] for a song's channels, in the song's channel order.

  Per song (seeded by its id only): the side of the first spread part (the
  others alternate from it), the hats' side (the drummer's or the audience's
  view), and each off-centre channel's width, uniform in its role's range.

  Raises:
    ValueError: a role without a designed place (names it and ROLE_WIDTH).
  """
  roles = [role_of(i) for i in instruments]
  unknown = sorted({r for r in roles if r not in ROLE_WIDTH})
  if unknown:
    raise ValueError(f'Song {song_id}: no designed stereo place for role(s) {unknown}; add them to '
                     'alm_jax/data/placement.py ROLE_WIDTH.')
  rng = _song_rng(song_id)
  spread_side = 1.0 if rng.random() < 0.5 else -1.0
  hats_side = 1.0 if rng.random() < 0.5 else -1.0
  pans = np.zeros(len(roles), np.float32)
  k = 0
  for c, role in enumerate(roles):
    lo, hi = ROLE_WIDTH[role]
    width = float(rng.uniform(lo, hi))  # drawn for every channel: a song's draws are fixed
    if hi == 0.0:
      continue
    if role in _SPREAD:
      side = spread_side * (1.0 if k % 2 == 0 else -1.0)
      k += 1
    else:
      side = hats_side
    pans[c] = side * width
  return pans
