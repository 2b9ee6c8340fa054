"""Tests for alm_jax.data.sample_kits: GM keys by instrument name, velocity layers, hi-hat choke."""

import os

import numpy as np
import pytest
import soundfile

from alm_jax.data import rendered_synth as synth
from alm_jax.data import sample_kits

SR = 8000
_INSTRUMENTS = (  # name, [(file, min, max, gain, amplitude)]
    ('Kick', [('kick_soft.wav', 0.0, 0.5, 1.0, 0.2), ('kick_hard.wav', 0.5, 1.0, 1.0, 0.9)]),
    ('Snare Rock', [('snare.wav', 0.0, 1.0, 2.0, 0.3)]),
    ('Closed HH', [('hat.wav', 0.0, 1.0, 1.0, 0.5)]),
    ('Open HH', [('hat_open.wav', 0.0, 1.0, 1.0, 0.5)]),
    ('Crash', [('crash.wav', 0.0, 1.0, 1.0, 0.5)]),
    ('Kick Stomp FX', [('stomp.wav', 0.0, 1.0, 1.0, 0.5)]),  # not a tom
)


def _write_kit(root, instruments=_INSTRUMENTS, sample_rate=SR, namespace=''):
  os.makedirs(root, exist_ok=True)
  xml = [f'<drumkit_info{namespace}><name>t</name><instrumentList>']
  for name, layers in instruments:
    xml.append(f'<instrument><name>{name}</name><volume>1</volume>')
    for fname, lo, hi, gain, amp in layers:
      soundfile.write(os.path.join(root, fname), np.full((sample_rate // 10, 2), amp, np.float32),
                      sample_rate, subtype='FLOAT')
      xml.append(f'<layer><filename>{fname}</filename><min>{lo}</min><max>{hi}</max>'
                 f'<gain>{gain}</gain></layer>')
    xml.append('</instrument>')
  xml.append('</instrumentList></drumkit_info>')
  with open(os.path.join(root, 'drumkit.xml'), 'w', encoding='utf-8') as f:
    f.write(''.join(xml))


@pytest.fixture
def kit_dir(tmp_path, monkeypatch):
  monkeypatch.setattr(sample_kits, 'HYDROGEN', str(tmp_path))
  monkeypatch.setattr(sample_kits, 'KITS', {'t_kit': 'T'})
  return tmp_path / 'T'


@pytest.mark.parametrize('namespace', ['', ' xmlns="http://www.hydrogen-music.org/drumkit"'])
def test_gm_keys_are_named_from_the_instruments(kit_dir, namespace):
  _write_kit(kit_dir, namespace=namespace)
  kit = sample_kits.SampleKit.load('t_kit', SR)
  assert kit.instrument(36) == kit.instrument(35) == 'kick'
  assert kit.instrument(38) == kit.instrument(40) == kit.instrument(37) == 'snare rock'
  assert kit.instrument(42) == kit.instrument(44) == 'closed hh'
  assert kit.instrument(46) == 'open hh'
  assert kit.instrument(49) == kit.instrument(51) == 'crash'
  assert kit.instrument(45) is None  # 'stomp' is no tom: the fill is silent, not a kick


def test_velocity_picks_the_layer_and_scales_it(kit_dir):
  _write_kit(kit_dir)
  kit = sample_kits.SampleKit.load('t_kit', SR)
  soft = kit.render([(0.0, 0.1, 36, 127 * 0.25)], SR // 5)
  hard = kit.render([(0.0, 0.1, 36, 127)], SR // 5)
  snare = kit.render([(0.05, 0.1, 38, 127)], SR // 5)
  np.testing.assert_allclose(soft[:SR // 10], 0.2 * 0.25, rtol=1e-5)
  np.testing.assert_allclose(hard[:SR // 10], 0.9, rtol=1e-5)
  assert not hard[SR // 10:].any()  # a sample plays its length, whatever the note's
  start = int(0.05 * SR)
  assert not snare[:start].any()
  np.testing.assert_allclose(snare[start:start + SR // 10], 0.3 * 2.0, rtol=1e-5)
  assert not kit.render([(0.0, 0.1, 60, 100)], SR // 5).any()  # a key the kit lacks


def test_a_hi_hat_chokes_the_hi_hat_still_ringing(kit_dir):
  _write_kit(kit_dir)
  kit = sample_kits.SampleKit.load('t_kit', SR)
  y = kit.render([(0.0, 0.1, 46, 127), (0.05, 0.1, 42, 127)], SR // 5)
  at = int(0.05 * SR)
  np.testing.assert_allclose(y[:at], 0.5, rtol=1e-5)
  fade = int(0.005 * SR)
  np.testing.assert_allclose(y[at + fade:at + SR // 10], 0.5, rtol=1e-5)  # open cut, closed on
  assert not y[at + SR // 10 + 1:].any()
  both = kit.render([(0.0, 0.1, 36, 127), (0.05, 0.1, 38, 127)], SR // 5)
  assert both[at + fade] == pytest.approx(0.9 + 0.6)  # a kick is not choked by a snare


def test_samples_are_resampled_and_the_old_format_reads(kit_dir):
  os.makedirs(kit_dir)
  for name in ('bd', 'sn', 'hh'):
    soundfile.write(str(kit_dir / f'{name}.flac'), np.full(SR // 2, 0.5, np.float32), SR // 2)
  with open(kit_dir / 'drumkit.xml', 'w', encoding='utf-8') as f:
    f.write('<drumkit_info><instrumentList>'
            + ''.join(f'<instrument><filename>{n}.flac</filename><name>{m}</name></instrument>'
                      for n, m in (('bd', 'Kick'), ('sn', 'Snare'), ('hh', 'Hat Closed')))
            + '<instrument><filename>hh.flac</filename><name>Tom Hi</name></instrument>'
            + '</instrumentList></drumkit_info>')
  kit = sample_kits.SampleKit.load('t_kit', SR)
  assert kit.keys[36][2][0].audio.size == SR  # one second at 4 kHz, read at 8 kHz
  assert kit.instrument(41) == kit.instrument(48) == 'tom hi'  # the only tom plays every tom


def test_bad_kits_are_refused_naming_the_fix(kit_dir):
  with pytest.raises(sample_kits.KitError, match='apt-get install -y hydrogen-drumkits'):
    sample_kits.SampleKit.load('t_kit', SR)
  _write_kit(kit_dir, _INSTRUMENTS[1:-1])
  with pytest.raises(sample_kits.KitError, match=r'\[36\].*drop it'):
    sample_kits.SampleKit.load('t_kit', SR)
  _write_kit(kit_dir)
  with open(kit_dir / 'snare.wav', 'wb') as f:
    f.write(b'not a wav')
  with pytest.raises(sample_kits.KitError, match='snare.wav.*reinstall hydrogen-drumkits'):
    sample_kits.SampleKit.load('t_kit', SR)
  with open(kit_dir / 'drumkit.xml', 'w', encoding='utf-8') as f:
    f.write('<drumkit_info><instrument>')
  with pytest.raises(sample_kits.KitError, match='not readable XML'):
    sample_kits.SampleKit.load('t_kit', SR)


def test_the_renderer_plays_a_sample_kit_like_a_soundfont(kit_dir):
  try:
    synth.check_installed([])
  except synth.RenderError as e:
    pytest.skip(str(e))
  _write_kit(kit_dir)
  with synth.Renderer(['t_kit'], SR) as renderer:
    y = renderer.render(synth.Voice('t_kit', 0, 0, ((0.0, 0.1, 36, 127),)), SR // 5)
    assert renderer.preset_name('t_kit', 0, 0) == 'T'
  np.testing.assert_allclose(y[:SR // 10], 0.9, rtol=1e-5)
  with pytest.raises(synth.RenderError, match='no soundfont or sample kit'):
    synth.check_installed(['no_such_kit'])


@pytest.mark.parametrize('name', sorted(sample_kits.KITS))
def test_every_shipped_kit_loads_with_a_kick_snare_and_hats(name):
  if not os.path.isdir(sample_kits.folder(name)):
    pytest.skip(f'{sample_kits.PACKAGE} not installed (tools/setup.sh --test installs it)')
  kit = sample_kits.SampleKit.load(name, 44100)
  y = kit.render([(0.0, 0.1, k, 100) for k in (36, 38, 42)], 44100)
  assert all(kit.instrument(k) for k in (36, 38, 42)) and np.abs(y).max() > 1e-3
