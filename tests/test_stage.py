"""Tests for alm_jax/data/stage.py: the stage layouts of `rendered_live/stage` and their bleed."""

import numpy as np
import pytest

from alm_jax.data import bleed
from alm_jax.data import rendered
from alm_jax.data import rendered_music as music
from alm_jax.data import stage

SR = 44100
BAND = ['kick:Standard', 'snare:Standard', 'hats:Standard', 'overheads:Standard', 'bass:Fingered',
        'comp:Clean Guitar', 'comp:Piano', 'lead:Harmonica']
KIT = (0, 1, 2, 3)
ENSEMBLE = ['melody:Violin', 'inner:Violin', 'inner:Viola', 'bass_voice:Cello']
IDS = [f'stage_{s}_{i:03d}' for s in ('train', 'validation', 'test') for i in range(40)]


def test_has_layout_reads_the_song_id():
  assert stage.has_layout('stage_train_000') and stage.has_layout('stage_test_039')
  assert not stage.has_layout('rendered_train_000') and not stage.has_layout('synthetic_0')
  assert stage.layout_of('rendered_test_001', BAND) is None
  assert stage.layout_of('stage_test_001', BAND) is not None
  assert all(c.song_prefix == stage.PREFIX for c in rendered.RenderedLive.BUILDER_CONFIGS
             if c.band)


def test_layout_is_a_pure_function_of_song_id_and_roles():
  a, b = stage.layout('stage_train_007', BAND), stage.layout('stage_train_007', list(BAND))
  for field in ('room', 'sources', 'mics', 'aims'):
    np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
  assert a.rt60 == b.rt60 and a.places == b.places
  assert a.places == ('kick', 'snare', 'hats', 'overheads', 'bass_amp', 'guitar_amp', 'keys',
                      'lead')
  # The preset names do not matter, the roles do; the room is the song's whatever its roles.
  renamed = stage.layout('stage_train_007', [r.split(':')[0] + ':other' for r in BAND])
  np.testing.assert_array_equal(renamed.mics, a.mics)
  ens = stage.layout('stage_train_007', ENSEMBLE)
  np.testing.assert_array_equal(ens.room, a.room)
  other = stage.layout('stage_train_008', BAND)
  assert not np.allclose(other.sources, a.sources)


def test_places_follow_the_roles():
  roles = ['kick', 'snare', 'hats', 'overheads', 'bass', 'comp', 'pad', 'lead']
  assert stage.layout('stage_train_000', roles).places[5:] == ('guitar_amp', 'keys', 'lead')
  assert stage.layout('stage_train_000', ENSEMBLE).places == ('front',) * 4
  # The front line runs from the audience's left to its right in channel order.
  xs = stage.layout('stage_train_000', ENSEMBLE).sources[:, 0]
  assert np.all(np.diff(xs) > 0.3)
  assert stage.layout('stage_train_000', ['drums', 'bass', 'lead']).places == (
      'kit', 'bass_amp', 'lead')


@pytest.mark.parametrize('roles', [BAND, ENSEMBLE, BAND[:4] + BAND[4:5] + BAND[7:],
                                   ['drums', 'bass', 'comp', 'lead'],
                                   ['melody'] + ['inner'] * 6 + ['bass_voice']])
def test_layouts_are_physically_sane(roles):
  for song_id in IDS:
    lay = stage.layout(song_id, roles)
    d = stage.distances(lay)
    g = stage.direct_gains(lay)
    assert np.all(lay.sources > 0) and np.all(lay.sources < lay.room)
    assert np.all(lay.mics > 0) and np.all(lay.mics < lay.room)
    assert np.all(np.argmin(d, axis=1) == np.arange(len(roles)))  # each mic nearest its source
    np.testing.assert_allclose(np.diag(g), 1.0)
    off = ~np.eye(len(roles), dtype=bool)
    assert np.all(g[off] < 1) and np.all(g[off] > 0)
    # Closer is louder: a source's direct sound, pattern aside, falls as 1/distance.
    spread = g / stage.pattern(np.einsum('ik,ijk->ij', lay.aims, (
        lay.sources[None] - lay.mics[:, None]) / d[..., None]))
    np.testing.assert_allclose(spread, np.diag(d)[None, :] / d, rtol=1e-9)
    for j in range(len(roles)):
      order = np.argsort(d[:, j])
      assert np.all(np.diff(spread[order, j]) <= 0)


def test_kit_mics_hear_each_other_more_than_the_lead_mic_does():
  lead = BAND.index('lead:Harmonica')
  for song_id in IDS:
    lay = stage.layout(song_id, BAND)
    d, g = stage.distances(lay), stage.direct_gains(lay)
    kit_d = d[np.ix_(KIT, KIT)][~np.eye(4, dtype=bool)]
    assert kit_d.max() < 1.8 and d[lead, list(KIT)].min() > 1.2  # close together; the lead apart
    for j in KIT:
      others = [i for i in KIT if i != j]
      assert g[others, j].mean() > g[lead, j], (song_id, j)
    h = stage.responses(lay, 4410, SR, max_order=3) if song_id.endswith('_000') else None
    if h is not None:  # with the room's reflections too, in energy
      e = np.sum(np.square(h, dtype=np.float64), axis=-1)
      for j in KIT:
        assert e[[i for i in KIT if i != j], j].mean() > e[lead, j]


def test_responses_put_the_geometry_at_its_delays():
  lay = stage.layout('stage_validation_003', BAND)
  n = int(0.2 * SR)
  gains, delays = stage.direct_gains(lay), stage.direct_delays(lay, SR)
  d = stage.distances(lay)
  np.testing.assert_array_equal(
      delays, np.round((d - np.diag(d)[:, None]) / stage.SPEED_OF_SOUND * SR).astype(int))
  assert np.all(np.diag(delays) == 0) and np.all(delays[~np.eye(8, dtype=bool)] > 0)
  dry = stage.responses(lay, n, SR, reflections=False)
  want = np.zeros_like(dry)
  for i in range(8):
    for j in range(8):
      want[i, j, delays[i, j]] = gains[i, j]
  np.testing.assert_allclose(dry, want, rtol=1e-6)
  wet = stage.responses(lay, n, SR)
  # The room adds reflections after each direct path and leaves the direct taps (nearly) alone.
  for i in range(8):
    for j in range(8):
      t = delays[i, j]
      assert abs(wet[i, j, t] - gains[i, j]) < 0.02 * gains[i, j] + 1e-3
      # Before the sound arrives: at most the sinc tails (40 taps) of pyroomacoustics' early
      # reflections, and the low skirt of its two-way high-pass filter (sosfiltfilt) about
      # -90 dB below the own source (the RIR bank's responses have it too).
      early = wet[i, j, :max(0, t - 40)].astype(np.float64)
      assert np.sum(early ** 2) < 1e-3 * gains[i, j] ** 2 + 1e-8 * early.size
  tail = wet - dry
  e_early = np.sum(tail[..., :n // 2] ** 2)
  assert 0 < np.sum(tail[..., n // 2:] ** 2) < e_early  # a decaying reverberant part
  # A far source reaches a mic mostly as reverberation, its own close source hardly at all.
  e_tail, e_dry = np.sum(tail ** 2, -1), np.sum(dry ** 2, -1)
  assert np.all(np.diag(e_tail) < 0.1 * np.diag(e_dry))
  assert np.mean(e_tail[~np.eye(8, dtype=bool)] / e_dry[~np.eye(8, dtype=bool)]) > np.mean(
      np.diag(e_tail) / np.diag(e_dry))
  cached = stage.song_responses('stage_validation_003', tuple(BAND), n, SR)
  np.testing.assert_allclose(cached, wet, atol=1e-3)
  assert cached.dtype == np.float16 and stage.song_responses('rendered_train_000', tuple(BAND),
                                                             n, SR) is None


def test_severity_scales_the_layouts_bleed():
  h = stage.responses(stage.layout('stage_train_001', BAND), 2048, SR, max_order=2)
  natural = bleed.severity_of(h)
  assert -25 < natural < 0  # kit mics a metre apart: strong bleed, as on a stage
  settings = bleed.Settings(severity_db=(-30.0, -6.0))
  for seed in range(5):
    got = bleed.draw(np.random.default_rng(seed), 8, None, settings, responses=h)
    severity = np.random.default_rng(seed)
    severity.uniform(size=16)  # the levels are drawn first
    offset = severity.uniform(-30.0, -6.0) + 18.0
    assert got.severity_db == pytest.approx(natural + offset, abs=1e-3)
    scale = 10 ** (offset / 20)
    off = ~np.eye(8, dtype=bool)
    np.testing.assert_allclose(got.rirs[off], h[off] * scale, rtol=1e-5, atol=1e-9)
    np.testing.assert_array_equal(got.rirs[~off], h[~off])
  # The levels are those of a bank draw with the same seed: the same numbers are drawn.
  plain = bleed.draw(np.random.default_rng(0), 8, None, bleed.Settings(bleed=False))
  staged = bleed.draw(np.random.default_rng(0), 8, None, settings, responses=h)
  np.testing.assert_array_equal(plain.pre_gain, staged.pre_gain)
  with pytest.raises(ValueError, match='for 3 channels'):
    bleed.draw(np.random.default_rng(0), 3, None, settings, responses=h)


def test_a_bad_layout_names_the_song(monkeypatch):
  kit = dict(stage._KIT)
  kit['overheads'] = (kit['overheads'][0], (1.0, 0.0, 0.0), (0.7, 0.8))  # an overhead at the hats
  monkeypatch.setattr(stage, '_KIT', kit)
  with pytest.raises(ValueError, match='stage_train_000.*overheads'):
    stage.layout('stage_train_000', BAND)


def test_band_arrangements_mike_the_kit_piece_by_piece():
  for style in music.STYLES:
    for channels in (6, 7, 8):
      arr = music.generated_arrangement(style, np.random.default_rng(channels), 8.0, channels,
                                        None, f'band:{style}', band=True)
      roles = [p.role for p in arr.parts]
      assert roles[:5] == ['kick', 'snare', 'hats', 'overheads', 'bass'] and roles[-1] == 'lead'
      assert len(roles) == channels and all(r in rendered.ROLE_LEVELS_DB for r in roles)
      keys = {p.role: {n[2] for n in p.notes} for p in arr.parts[:4]}
      assert keys['kick'] <= set(music.KICK) and keys['snare'] <= set(music.SNARE)
      assert keys['hats'] and keys['hats'] <= set(music.HIHAT)
      assert keys['overheads'] and not keys['overheads'] & set(music.KICK + music.SNARE +
                                                              music.HIHAT)
      assert keys['overheads'] & {41, 43, 45, 47, 48, 50}  # the tom fills
      if channels >= 7:
        assert arr.parts[5].family in music.BAND_GUITARS
      if channels == 8:
        keys = arr.parts[6]  # comping on a keyboard, or holding a pad (a synth or string sound)
        assert (keys.role, keys.family in music.BAND_KEYS + ('pad',)) in (('comp', True),
                                                                           ('pad', True))
        assert (keys.role == 'pad') == (keys.family == 'pad')
  with pytest.raises(ValueError, match='6-8 channels'):
    music.generated_arrangement('rock', np.random.default_rng(0), 8.0, 5, None, 'band', band=True)
