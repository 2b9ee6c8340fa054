"""Offline mixing: chunked == whole-song model call, batching, files written, bad input refused."""

import csv
import functools
import json
import os
import pathlib
import re
import subprocess
import time

import jax
import numpy as np
import pytest
import soundfile as sf

from alm_jax import mix
from alm_jax import models
from alm_jax import outputs
from alm_jax import restore
from alm_jax import songio
from alm_jax import songs as songs_lib
from alm_jax.inference import offline
from alm_jax.models import protocol
from alm_jax.models import dmc
from checkpoint_fixtures import TinyModel, parse_flags, save_checkpoint
from conftest import load_config

SR = 44100
# A chunk length no other test uses, so the batch test sees a fresh compile count.
BATCH_CHUNK_SECONDS = 0.9


def _signal(rng, channels, n):
  """Noise with slow level changes, so gains move between F2 frames."""
  t = np.arange(n) / SR
  env = 0.2 * (1.2 + np.sin(2 * np.pi * rng.uniform(0.3, 1.5, (channels, 1)) * t))
  return (rng.normal(size=(channels, n)) * env).astype(np.float32)


class Setup(TinyModel):
  """A tiny model, its params and its whole-song call."""

  def whole_song(self, audio, mask):
    return jax.tree.map(np.asarray, jax.jit(self.model.apply)({'params': self.params}, audio, mask))


@pytest.fixture(scope='module')
def mr():
  return Setup('mr')


# SR has no history and stride 1; zero_latency=False covers the unshifted gains.
@pytest.mark.parametrize('name,zero_latency,seconds,chunk_seconds', [
    ('mr', True, 2.37, 0.6), ('sr', False, 3.1, 1.0)])
def test_chunked_mix_equals_whole_song_call(name, zero_latency, seconds, chunk_seconds, mr):
  s = mr if name == 'mr' else Setup(name, zero_latency=zero_latency)
  rng = np.random.default_rng(0)
  n = int(seconds * SR)
  audio = np.stack([_signal(rng, 3, n), _signal(rng, 3, n)])
  mask = np.array([[True, True, True], [True, False, True]])
  ref = s.whole_song(audio, mask)
  out = offline.mix_arrays(models.load(s.config, s.params), audio, mask, chunk_seconds=chunk_seconds)
  t = ref['gains'].shape[-1]
  f2 = s.spec.f2
  assert out['mix'].shape == (2, n)  # every input sample is kept
  assert out['gains'].shape == (2, 3, -(-n // f2))
  assert n > offline.get_mixer(models.load(s.config, s.params), chunk_seconds).chunk_samples  # several chunks
  np.testing.assert_allclose(out['gains'][..., :t], ref['gains'], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(out['mix'][:, :t * f2], ref['mix'], rtol=1e-5, atol=1e-6)
  assert np.all(out['gains'][1, 1] == 0.0)  # masked channel
  # The trailing partial frame gets the gain of its frame, like any other.
  tail = out['gains'][..., -1]
  np.testing.assert_allclose(out['mix'][:, t * f2:], np.einsum('bcn,bc->bn', audio[..., t * f2:], tail),
                             rtol=1e-5, atol=1e-6)

  # Causal: a shorter song is a prefix of the longer one's result, and a new
  # length costs no compile. Without zero latency the gain of the trailing
  # partial frame depends on that frame itself, so only whole frames compare.
  mixer = offline.get_mixer(models.load(s.config, s.params), chunk_seconds)
  compiles = mixer.num_compiles
  m = n - 30000
  short = offline.mix_arrays(models.load(s.config, s.params), audio[..., :m], mask, chunk_seconds=chunk_seconds)
  assert mixer.num_compiles == compiles == 1
  same = m if zero_latency else m // f2 * f2
  np.testing.assert_allclose(short['mix'][:, :same], out['mix'][:, :same], rtol=1e-5, atol=1e-6)


def test_a_show_mixed_in_parts_with_the_state_carried_equals_one_call(mr):
  rng = np.random.default_rng(4)
  hop = mr.spec.stride * mr.spec.f2
  audio = _signal(rng, 3, 7 * hop)[None]
  mask = np.ones((1, 3), bool)
  mixer = offline.get_mixer(models.load(mr.config, mr.params), 0.6)
  whole = mixer(mr.params, audio, mask)
  first, state = mixer(mr.params, audio[..., :3 * hop], mask, return_state=True)
  second, _ = mixer(mr.params, audio[..., 3 * hop:], mask, state=state, return_state=True)
  np.testing.assert_allclose(np.concatenate([first['mix'], second['mix']], -1), whole['mix'],
                             rtol=1e-5, atol=1e-6)
  with pytest.raises(ValueError, match='whole F1 hops'):
    mixer(mr.params, audio[..., :hop + 5], mask, return_state=True)


def test_per_segment_dmc_is_refused_up_front():
  with pytest.raises(protocol.UnsupportedModelError, match='per-segment DMC'):
    offline.ChunkedMixer(models.load(load_config('dmc_og'), {}))


def test_mix_arrays_rejects_bad_arrays(mr):
  audio = np.zeros((1, 2, SR), np.float32)
  bad = audio.copy()
  bad[0, 1, 5] = np.nan
  with pytest.raises(ValueError, match='NaN'):
    offline.mix_arrays(models.load(mr.config, mr.params), bad, np.ones((1, 2), bool))
  with pytest.raises(ValueError, match='every channel masked'):
    offline.mix_arrays(models.load(mr.config, mr.params), audio, np.zeros((1, 2), bool))
  with pytest.raises(ValueError, match='more than the 8'):
    offline.mix_arrays(models.load(mr.config, mr.params), np.zeros((1, 9, SR), np.float32), np.ones((1, 9), bool))


# ---------------------------------------------------------------------------
# Songs on disk
# ---------------------------------------------------------------------------


def _write(path, audio, rate=SR):
  path.parent.mkdir(parents=True, exist_ok=True)
  sf.write(path, np.asarray(audio).T, rate, subtype='PCM_24' if path.suffix == '.flac' else 'FLOAT')
  return path


def _read_gains_csv(path):
  with open(path, newline='') as fh:
    rows = list(csv.reader(fh))
  return rows[0], np.array(rows[1:], np.float64)


@pytest.fixture(scope='module')
def songs_dir(tmp_path_factory):
  """Three songs of different lengths, channel counts, rates, a stereo file and a short file."""
  root = tmp_path_factory.mktemp('songs')
  rng = np.random.default_rng(3)
  _write(root / 'alpha' / 'kick.wav', _signal(rng, 1, int(1.2 * SR)))
  _write(root / 'alpha' / 'keys.wav', _signal(rng, 2, int(1.2 * SR)))  # stereo
  _write(root / 'beta' / 'vox.flac', _signal(rng, 1, int(0.8 * 22050))[0], 22050)
  _write(root / 'gamma' / 'a.wav', _signal(rng, 1, 50000))
  _write(root / 'gamma' / 'b.wav', _signal(rng, 1, 47000))  # padded with silence
  _write(root / 'gamma' / 'c.wav', _signal(rng, 1, 50000))
  return root


def _check_song_output(folder: pathlib.Path, song: songio.Song, raw: bool, f2: int = 2205):
  """Checks a song's output folder; returns (audio [c, n], mix [n], gains [c, frames]) as read."""
  assert sorted(p.name for p in folder.iterdir()) == sorted(
      ['mix.wav', 'gains.csv', 'gains.png', songio.MIX_MARKER] + (['raw.wav'] if raw else []))
  audio = songio.load_song(song, SR)
  c, n = audio.shape
  out, rate = sf.read(folder / 'mix.wav', dtype='float32')
  info = sf.info(folder / 'mix.wav')
  assert rate == SR and info.subtype == 'FLOAT' and out.shape == (n,)
  header, table = _read_gains_csv(folder / 'gains.csv')
  assert header == [songio.GAINS_TIME_COLUMN] + [n + songio.GAINS_UNIT_SUFFIX for n in song.channel_names]
  assert table.shape == (-(-n // f2), 1 + c)
  np.testing.assert_allclose(table[:, 0], np.arange(table.shape[0]) * f2 / SR, atol=1e-6)
  # The written mix is the written gains applied to the channels, frame by frame.
  gains = np.repeat(table[:, 1:].T, f2, axis=1)[:, :n]
  np.testing.assert_allclose(out, np.sum(gains * audio, axis=0), rtol=1e-5, atol=1e-5)
  assert (folder / 'gains.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
  if raw:
    np.testing.assert_allclose(sf.read(folder / 'raw.wav', dtype='float32')[0], audio.sum(0),
                               rtol=1e-6, atol=1e-6)
  return audio, out, table[:, 1:].T


def test_mix_songs_batches_compile_once_and_writes_everything(mr, songs_dir, tmp_path):
  songs = songio.discover_songs([str(songs_dir)])
  assert [s.name for s in songs] == ['alpha', 'beta', 'gamma']
  out_dir = tmp_path / 'out'
  mixer = offline.get_mixer(models.load(mr.config, mr.params), BATCH_CHUNK_SECONDS)
  written = songs_lib.mix_songs(models.load(mr.config, mr.params), songs, out_dir, batch_songs=2,
                          chunk_seconds=BATCH_CHUNK_SECONDS, raw=True, progress=False)
  # Two batches of different lengths and channel counts, one compilation.
  assert mixer.num_compiles == 1
  assert written == [out_dir / s.name for s in songs]
  for song in songs:
    _check_song_output(out_dir / song.name, song, raw=True)
  assert songio.load_song(songs[1], SR).shape == (1, int(0.8 * SR))  # 22.05 kHz resampled
  assert not list(out_dir.glob('.tmp-*'))
  # A killed run's leftover is removed by the next run.
  leftover = out_dir / '.tmp-alpha-killed'
  leftover.mkdir()
  os.utime(leftover, (time.time() - 3600,) * 2)
  # A second run refuses to overwrite before any work; with --overwrite it replaces
  # its own earlier output and removes the killed run's leftover.
  with pytest.raises(outputs.OutputError, match='earlier output of alm_jax.mix: pass --overwrite'):
    songs_lib.mix_songs(models.load(mr.config, mr.params), songs, out_dir, batch_songs=2,
                  chunk_seconds=BATCH_CHUNK_SECONDS, progress=False)
  songs_lib.mix_songs(models.load(mr.config, mr.params), songs, out_dir, batch_songs=2, overwrite=True,
                      chunk_seconds=BATCH_CHUNK_SECONDS, progress=False)
  assert not leftover.exists()
  assert sorted(p.name for p in out_dir.iterdir()) == ['alpha', 'beta', 'gamma']


def test_block_by_block_mix_equals_mixing_whole_songs(mr, songs_dir, tmp_path, monkeypatch):
  """Issue 29 item 6: songs read, mixed and written in blocks give today's whole-song result."""
  monkeypatch.setattr(songs_lib, 'BLOCK_SECONDS', 0.5)  # 2 engine pieces: 2-3 blocks per song
  songs = songio.discover_songs([str(songs_dir)])
  out = tmp_path / 'out'
  songs_lib.mix_songs(models.load(mr.config, mr.params), songs, out, batch_songs=2, chunk_seconds=0.3,
                      raw=True, progress=False)
  for song in songs:
    audio = songio.load_song(song, SR)  # the whole song in memory, as mixed before
    ref = offline.mix_arrays(models.load(mr.config, mr.params), audio[None], np.ones((1, len(audio)), bool),
                             chunk_seconds=0.3)
    mixed, _ = sf.read(out / song.name / 'mix.wav', dtype='float32')
    np.testing.assert_allclose(mixed, ref['mix'][0], rtol=1e-5, atol=1e-6)
    _, table = _read_gains_csv(out / song.name / 'gains.csv')
    np.testing.assert_allclose(table[:, 1:].T, ref['gains'][0], rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(sf.read(out / song.name / 'raw.wav', dtype='float32')[0],
                               audio.sum(0), rtol=1e-6, atol=1e-6)


def test_every_format_libsndfile_reads_is_mixed_and_skipped_files_are_named(mr, tmp_path, caplog):
  """Issue 29 item 10: .ogg, .mp3, .aiff channels were silently left out of the mix."""
  rng = np.random.default_rng(8)
  song = tmp_path / 'band'
  song.mkdir()
  formats = {'kick.wav': ('WAV', 'FLOAT'), 'snare.flac': ('FLAC', 'PCM_16'),
             'keys.aiff': ('AIFF', 'PCM_24'), 'vox.ogg': ('OGG', 'VORBIS'),
             'bass.mp3': ('MP3', 'MPEG_LAYER_III'), 'gtr.caf': ('CAF', 'PCM_16')}
  for name, (fmt, subtype) in formats.items():
    sf.write(song / name, 0.3 * _signal(rng, 1, SR)[0], SR, format=fmt, subtype=subtype)
  (song / 'notes.txt').write_text('set list')
  (song / '.DS_Store').write_bytes(b'\0')
  (song / 'takes').mkdir()
  with caplog.at_level('WARNING'):
    songs = songio.discover_songs([str(song)])
  assert [f.name for f in songs[0].files] == sorted(formats)
  assert re.search(r'band: skipped 3 entries that are not audio files libsndfile reads: '
                   r'\.DS_Store, notes\.txt, takes', caplog.text), caplog.text
  out = tmp_path / 'out'
  songs_lib.mix_songs(models.load(mr.config, mr.params), songs, out, progress=False)
  _check_song_output(out / 'band', songs[0], raw=False)
  _, table = _read_gains_csv(out / 'band' / 'gains.csv')
  assert table.shape[1] == 1 + len(formats)  # every channel mixed
  with pytest.raises(songio.InputError, match=r'Not audio files libsndfile reads: .*notes\.txt'):
    songio.discover_songs([str(song / 'kick.wav'), str(song / 'notes.txt')])


def test_bad_inputs_are_refused_naming_the_files(mr, tmp_path):
  rng = np.random.default_rng(5)
  cfg, params = mr.config, mr.params
  out = tmp_path / 'out'

  def run(inputs, **kw):
    songs_lib.mix_songs(models.load(cfg, params), songio.discover_songs([str(p) for p in inputs]), out, progress=False,
                  **kw)

  uneven = tmp_path / 'uneven'
  _write(uneven / 'a.wav', _signal(rng, 1, 30000))
  _write(uneven / 'b.wav', _signal(rng, 1, 20000))
  with pytest.raises(songio.InputError, match=r'(?s)different lengths.*a\.wav: 30000.*b\.wav: 20000'):
    run([uneven], pad_unequal=False)

  rates = tmp_path / 'rates'
  _write(rates / 'a.wav', _signal(rng, 1, 30000), 44100)
  _write(rates / 'b.wav', _signal(rng, 1, 30000), 48000)
  with pytest.raises(songio.InputError, match=r'different sample rates.*a\.wav: 44100 Hz, b\.wav: 48000'):
    run([rates])

  broken = tmp_path / 'broken'
  _write(broken / 'ok.wav', _signal(rng, 1, 30000))
  (broken / 'bad.wav').write_bytes(b'RIFF not really a wave file')
  with pytest.raises(songio.InputError, match='cannot read .*bad.wav'):
    run([broken])

  empty = tmp_path / 'empty'
  empty.mkdir()
  with pytest.raises(songio.InputError, match='No audio files in .*empty'):
    run([empty])
  with pytest.raises(songio.InputError, match='No --input'):
    run([])

  many = tmp_path / 'many'
  for i in range(9):
    _write(many / f'ch{i}.wav', _signal(rng, 1, 1000))
  with pytest.raises(songio.InputError, match=r'9 files but the model mixes at most 8 .*ch0\.wav'):
    run([many])

  surround = tmp_path / 'surround'
  _write(surround / 'six.wav', _signal(rng, 6, 1000))
  with pytest.raises(songio.InputError, match='six.wav has 6 channels'):
    run([surround])

  with pytest.raises(songio.InputError, match='either audio files .* or folders'):
    run([uneven / 'a.wav', rates])
  assert not out.exists() or not any(out.iterdir())  # nothing written


def _tree(path: pathlib.Path):
  return sorted((str(p.relative_to(path)), p.stat().st_size) for p in path.rglob('*'))


def test_mix_never_writes_into_or_replaces_its_inputs(mr, tmp_path, capsys):
  """Issue 29 item 1: --output = the input's parent with --overwrite deleted the channel files."""
  workdir = tmp_path / 'run'
  save_checkpoint(workdir, mr.config, mr.params)
  rng = np.random.default_rng(7)
  band = tmp_path / 'X' / 'band'
  for name in ('kick', 'snare'):
    _write(band / f'{name}.wav', _signal(rng, 1, 20000))
  before = _tree(tmp_path / 'X')
  link = tmp_path / 'link'
  link.symlink_to(tmp_path / 'X')
  files = [str(p) for p in sorted(band.glob('*.wav'))]
  cases = [([str(band)], tmp_path / 'X', 'contains the input'),
           ([str(band)], band, 'is the input'),
           ([str(band)], band / 'mixes', 'lies inside the input'),
           ([str(band)], link, 'contains the input'),  # the same folder through a link
           (files, band, 'contains the input'),
           (files, tmp_path / 'X', 'contains the input'),
           ([str(tmp_path / 'X')], tmp_path / 'X' / 'mixes', 'lies inside the input')]
  for inputs, output, message in cases:
    for extra in ((), ('--overwrite',)):
      fv = parse_flags(mix, f'--checkpoint={workdir}', f'--input={inputs[0]}', f'--output={output}',
                       *extra)
      assert mix.run(fv, inputs[1:]) == 2
      err = capsys.readouterr().err
      assert message in err and 'never writes into its inputs' in err, (inputs, output, err)
      assert len(err.strip().splitlines()) == 1
      assert _tree(tmp_path / 'X') == before
  # The library refuses too, whatever called it.
  with pytest.raises(outputs.OutputError, match='contains the input'):
    songs_lib.mix_songs(models.load(mr.config, mr.params), songio.discover_songs([str(band)]), band.parent,
                        overwrite=True, progress=False)

  # A folder the mixer did not write is never replaced, even with --overwrite.
  out = tmp_path / 'out'
  (out / 'band').mkdir(parents=True)
  (out / 'band' / 'notes.txt').write_text('mine')
  for extra in ((), ('--overwrite',)):
    fv = parse_flags(mix, f'--checkpoint={workdir}', f'--input={band}', f'--output={out}', *extra)
    assert mix.run(fv) == 2
    err = capsys.readouterr().err
    assert 'was not written by alm_jax.mix' in err and 'never replaced' in err
  assert [name for name, _ in _tree(out)] == ['band', 'band/notes.txt']
  assert (out / 'band' / 'notes.txt').read_text() == 'mine'
  # An empty folder holds nothing to lose; an earlier mix is replaced with --overwrite only.
  (out / 'band' / 'notes.txt').unlink()
  fv = parse_flags(mix, f'--checkpoint={workdir}', f'--input={band}', f'--output={out}')
  assert mix.run(fv) == 0
  marker = json.loads((out / 'band' / songio.MIX_MARKER).read_text())
  assert marker['tool'] == 'alm_jax.mix' and marker['inputs'] == files
  assert str(workdir) in marker['checkpoint']
  assert mix.run(fv) == 2
  assert 'pass --overwrite' in capsys.readouterr().err
  fv = parse_flags(mix, f'--checkpoint={workdir}', f'--input={band}', f'--output={out}',
                   '--overwrite')
  assert mix.run(fv) == 0
  assert sorted(p.name for p in out.iterdir()) == ['band']
  assert _tree(tmp_path / 'X') == before
  capsys.readouterr()


def test_a_full_disk_is_one_line_and_leaves_no_song_folder(mr, songs_dir, tmp_path, capsys):
  """A real full disk (a 64 KiB tmpfs): one error line naming --output, no song folder left."""
  small = tmp_path / 'small'
  small.mkdir()
  if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k', 'tmpfs', str(small)],
                    capture_output=True, check=False).returncode != 0:
    pytest.skip('cannot mount a tmpfs here (needs root)')
  try:
    workdir = tmp_path / 'run'
    save_checkpoint(workdir, mr.config, mr.params)
    fv = parse_flags(mix, f'--checkpoint={workdir}', f'--input={songs_dir / "gamma"}',
                     f'--output={small / "out"}', '--raw')
    assert mix.run(fv) == 2
    err = capsys.readouterr().err
    assert 'Traceback' not in err
    errors = [line for line in err.splitlines() if line.startswith('error:')]  # besides tqdm's bar
    assert len(errors) == 1, err
    assert errors[0].startswith(f'error: no space left on the disk holding {small / "out"} ('), err
    assert 'choose another --output' in errors[0]
    assert list((small / 'out').iterdir()) == []  # no song folder, no temporary
  finally:
    subprocess.run(['umount', str(small)], check=False)


def test_failed_write_leaves_no_song_folder(monkeypatch, tmp_path):
  def fail(*args, **kwargs):
    raise OSError('disk full')

  monkeypatch.setattr(songio.plots, 'plot_gains', fail)
  song = songio.Song('s', [pathlib.Path('a.wav')])
  with pytest.raises(OSError, match='disk full'):
    songio.write_song(tmp_path, song, np.zeros(4410, np.float32), np.ones((1, 2), np.float32), None,
                   SR, 2205, overwrite=False)
  assert list(tmp_path.iterdir()) == []


def test_cli_mixes_files_from_a_checkpoint(mr, songs_dir, tmp_path, capsys):
  workdir = tmp_path / 'run'
  save_checkpoint(workdir, mr.config, mr.params)
  # A shell glob: the first file is the flag's value, the others positional.
  files = sorted(str(p) for p in (songs_dir / 'gamma').glob('*.wav'))
  fv = parse_flags(mix, f'--checkpoint={workdir}', f'--input={files[0]}',
                   f'--output={tmp_path / "out"}', '--batch_songs=2',
                   f'--chunk_seconds={BATCH_CHUNK_SECONDS}')
  assert mix.run(fv, files[1:]) == 0
  assert capsys.readouterr().out.strip() == str(tmp_path / 'out' / 'gamma')
  _check_song_output(tmp_path / 'out' / 'gamma', songio.discover_songs(files)[0], raw=False)

  fv = parse_flags(mix, f'--checkpoint={workdir}', f'--input={songs_dir / "gamma"}',
                   f'--output={tmp_path / "out2"}', '--pad_unequal=false')
  assert mix.run(fv) == 2
  assert 'different lengths' in capsys.readouterr().err
  assert not (tmp_path / 'out2' / 'gamma').exists()

  fv = parse_flags(mix, f'--checkpoint={workdir}', f'--input={songs_dir / "gamma"}',
                   f'--output={tmp_path / "out3"}', '--segment_seconds=5')
  assert mix.run(fv) == 2
  assert 'drop --segment_seconds' in capsys.readouterr().err
  assert not (tmp_path / 'out3').exists()


# ---------------------------------------------------------------------------
# Per-segment models (DMC-OG): non-causal, mixed segment by segment
# ---------------------------------------------------------------------------

SEGMENT_FRAMES = 2  # the tiny DMC-OG's segment: 2 F2 frames of 975 ms


@pytest.fixture(scope='module')
def dmc_og(tmp_path_factory):
  """A tiny DMC-OG with 2-frame segments and 4 channels, saved as a checkpoint."""
  s = TinyModel('dmc_og', max_channels=4)
  s.config.data.segment_seconds = 2.0  # rounds down to 2 whole 975 ms frames
  # A larger last layer spreads the gains over the dB range, so the channels' gains differ.
  s.params['post_processor']['dense2']['kernel'] *= 30.0
  s.workdir = tmp_path_factory.mktemp('dmc_og') / 'run'
  save_checkpoint(s.workdir, s.config, s.params)
  return s


def test_cli_mixes_a_per_segment_dmc_segment_by_segment(dmc_og, tmp_path, capsys, caplog,
                                                        monkeypatch):
  monkeypatch.setattr(songs_lib, 'BLOCK_SECONDS', 1.0)  # one segment per block: 3 blocks
  f2 = dmc_og.spec.f2
  rng = np.random.default_rng(11)
  songs = tmp_path / 'songs'
  # Two whole segments, then 1000 samples: the last segment is mostly padding, which the
  # segment mean must leave out (mix_by_segments below pads it the same way).
  n = 2 * SEGMENT_FRAMES * f2 + 1000
  for i, level in enumerate((0.05, 0.3, 1.0)):  # louder white noise reads as garbage
    _write(songs / 'long' / f'ch{i}.wav', _signal(rng, 1, n)[0] * level)
  _write(songs / 'short' / 'st.wav', _signal(rng, 2, 50000))  # stereo, one partial segment
  fv = parse_flags(mix, f'--checkpoint={dmc_og.workdir}', f'--input={songs}',
                   f'--output={tmp_path / "out"}', '--batch_songs=2')
  # The mixer is cached per config, so other tests of this worker may have compiled it already.
  segment_mixer = offline.get_segment_mixer(restore.load_mixer(str(dmc_og.workdir)))
  compiles_before = segment_mixer.num_compiles
  with caplog.at_level('WARNING'):
    assert mix.run(fv) == 0
  assert 'NON-CAUSAL' in caplog.text
  assert capsys.readouterr().out.split() == [str(tmp_path / 'out' / s) for s in ('long', 'short')]
  # Two songs of different lengths and channel counts, three segments: one compilation.
  assert segment_mixer.num_compiles - compiles_before <= 1
  assert segment_mixer.num_compiles >= 1

  long_song, short_song = songio.discover_songs([str(songs)])
  _check_song_output(tmp_path / 'out' / 'short', short_song, raw=False, f2=f2)
  audio, out, gains = _check_song_output(tmp_path / 'out' / 'long', long_song, raw=False, f2=f2)
  # One gain per channel per segment, the last partial segment included.
  assert gains.shape == (3, 5)
  np.testing.assert_array_equal(gains, np.repeat(gains[:, ::SEGMENT_FRAMES], 2, axis=1)[:, :5])
  assert np.ptp(np.log(gains[:, 0])) > 0.1  # the channels get different gains
  # The same as mix_by_segments on the whole song (completed to whole F2 frames).
  padded = np.pad(audio, [(0, 0), (0, 5 * f2 - n)])[None]
  ref = jax.jit(functools.partial(dmc.mix_by_segments, dmc_og.model, segment_frames=SEGMENT_FRAMES))(
      dmc_og.params, padded, np.ones((1, 3), bool))
  np.testing.assert_allclose(out, ref['mix'][0, :n], rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(gains, ref['gains'][0], rtol=1e-5)  # the CSV keeps 7 digits

  # --segment_seconds overrides the training segment: one gain per 975 ms frame here.
  fv = parse_flags(mix, f'--checkpoint={dmc_og.workdir}', f'--input={songs / "long"}',
                   f'--output={tmp_path / "out1"}', '--segment_seconds=1', '--batch_songs=1')
  assert mix.run(fv) == 0
  _, _, gains1 = _check_song_output(tmp_path / 'out1' / 'long', long_song, raw=False, f2=f2)
  assert not np.allclose(gains1[:, 0], gains1[:, 1], rtol=1e-3)
  fv = parse_flags(mix, f'--checkpoint={dmc_og.workdir}', f'--input={songs / "long"}',
                   f'--output={tmp_path / "out2"}', '--segment_seconds=0.5')
  assert mix.run(fv) == 2
  assert 'less than one F1 frame' in capsys.readouterr().err
  assert not (tmp_path / 'out2').exists()


def test_cli_writes_a_stereo_mix_and_the_pans_of_a_mixer_with_pans(songs_dir, tmp_path, capsys):
  """A mixer with pans: mix.wav is stereo (left, right) and pans.csv / pans.png sit beside the gains."""
  from alm_jax import stereo  # pylint: disable=g-import-not-at-top
  tiny = TinyModel('mr', outputs=('gain', 'pan'))
  tiny.params['pan_mlp'] = jax.tree.map(lambda x: 2.0 * x, tiny.params['pan_mlp'])  # off centre
  save_checkpoint(tmp_path / 'run', tiny.config, tiny.params)
  fv = parse_flags(mix, f'--checkpoint={tmp_path / "run"}', f'--input={songs_dir / "alpha"}',
                   f'--output={tmp_path / "out"}', f'--chunk_seconds={BATCH_CHUNK_SECONDS}')
  assert mix.run(fv) == 0
  folder = tmp_path / 'out' / 'alpha'
  assert sorted(p.name for p in folder.iterdir()) == sorted(
      ['mix.wav', 'gains.csv', 'gains.png', 'pans.csv', 'pans.png', songio.MIX_MARKER])
  song = songio.discover_songs([str(songs_dir / 'alpha')])[0]
  audio = songio.load_song(song, SR)
  c, n = audio.shape
  out, rate = sf.read(folder / 'mix.wav', dtype='float32')
  assert rate == SR and out.shape == (n, 2)
  _, gains = _read_gains_csv(folder / 'gains.csv')
  with open(folder / 'pans.csv', encoding='utf-8') as fh:
    rows = list(csv.reader(fh))
  assert rows[0] == [songio.GAINS_TIME_COLUMN] + [f'{name} (pan)' for name in song.channel_names]
  pans = np.array(rows[1:], np.float64)[:, 1:].T
  assert pans.shape == (c, -(-n // 2205)) and np.ptp(pans[:, 1:]) > 0.01
  # The written stereo mix is the written gains and pans on the one pan law, frame by frame.
  left, right = stereo.pan_law(np.repeat(pans, 2205, axis=1)[:, :n])
  g = np.repeat(gains[:, 1:].T, 2205, axis=1)[:, :n]
  np.testing.assert_allclose(out[:, 0], np.sum(g * left * audio, axis=0), rtol=1e-4, atol=1e-5)
  np.testing.assert_allclose(out[:, 1], np.sum(g * right * audio, axis=0), rtol=1e-4, atol=1e-5)
  assert (folder / 'pans.png').read_bytes()[:8] == b'\x89PNG\r\n\x1a\n'
