"""Bad inputs and damaged checkpoints, through every command: a clear refusal, nothing lost or partial.

Tables of cases, each run as a user runs it (the mix, export and evaluate CLIs,
training's resume, the audio reader), asserting the exit status, that the
message names the file or the step and what is wrong, and that nothing partial
was written (nor anything deleted). Then property-based fuzzing (hypothesis) of
WAV/FLAC bytes and of checkpoint files: only clean errors or correct output.
The bigger fuzz runs are marked slow.
"""

import glob
import io
import json
import os
import pathlib
import re
import shutil
import struct as struct_lib
import subprocess
import sys
import tracemalloc

from flax import struct
import hypothesis
from hypothesis import strategies as st
import jax
import numpy as np
import pytest
import soundfile as sf

from alm_jax import audio_io
from alm_jax import checkpoints
from alm_jax import evaluate
from alm_jax import export
from alm_jax import mix
from alm_jax import models
from alm_jax import restore
from checkpoint_fixtures import TinyModel, parse_flags, save_checkpoint, write_song

SR = 44100
STEPS = (1, 2, 3)  # saved steps; step s holds the fixture's params × s
# Cases run, counted for the report at the end of the module (pytest -s shows it).
CASES = {'table': 0, 'fuzz': 0}


@pytest.fixture(scope='module')
def tiny():
  """A tiny ALM-MR whose steps 1, 2, 3 are saved in one workdir (params scaled by the step)."""
  return TinyModel('mr')


@pytest.fixture(scope='module')
def good_workdir(tiny, tmp_path_factory):
  workdir = tmp_path_factory.mktemp('ckpt') / 'run'
  for s in STEPS:
    save_checkpoint(workdir, tiny.config, jax.tree.map(lambda x, s=s: x * s, tiny.params), step=s)
  return workdir


@pytest.fixture(scope='module')
def song(tmp_path_factory):
  """A valid two-channel song folder (1.5 s)."""
  return write_song(tmp_path_factory.mktemp('songs') / 'song', 1.5, SR)


def _copy(workdir, tmp_path) -> pathlib.Path:
  target = tmp_path / 'run'
  shutil.copytree(workdir, target)
  return target


def _step(workdir, step=3) -> pathlib.Path:
  return workdir / 'checkpoints' / str(step)


def _data_files(step_dir: pathlib.Path, item='params'):
  return [pathlib.Path(p) for p in glob.glob(str(step_dir / item / '**' / 'd' / '*'), recursive=True)]


def _truncate_arrays(step_dir):
  for f in _data_files(step_dir):
    os.truncate(f, f.stat().st_size // 2)


def _garbage_arrays(step_dir):
  rng = np.random.default_rng(1)
  for f in _data_files(step_dir):
    f.write_bytes(rng.bytes(f.stat().st_size))


def _flip_array_values(step_dir):
  """One byte of raw float data changed: TensorStore reads it fine, only the checksum tells."""
  rng = np.random.default_rng(2)
  for f in _data_files(step_dir):
    data = bytearray(f.read_bytes())
    data[len(data) // 2] ^= int(rng.integers(1, 256))
    f.write_bytes(bytes(data))


def _edit_checksum(step_dir):
  path = step_dir / checkpoints.CHECKSUMS / 'metadata'
  sums = json.loads(path.read_text())
  key = sorted(sums['params'])[0]
  sums['params'][key] = '0' * 16
  path.write_text(json.dumps(sums))


def _edit_config(workdir, text):
  (workdir / 'config.json').write_text(text)


def _config_without_key(workdir, key, value):
  saved = json.loads((workdir / 'config.json').read_text())
  saved['model'][key] = value
  (workdir / 'config.json').write_text(json.dumps(saved))


# (case, damage(workdir), what the message must say). Step 3 is damaged; 1 and 2 are intact.
STEP_DAMAGE = [
    ('array files truncated', lambda w: _truncate_arrays(_step(w)), r'cannot be read'),
    ('array files garbage', lambda w: _garbage_arrays(_step(w)), r'cannot be read'),
    ('array values altered', lambda w: _flip_array_values(_step(w)),
     r'(differ from the checksums|cannot be read)'),
    ('checksum altered', lambda w: _edit_checksum(_step(w)), r'differ from the checksums'),
    ('manifest deleted', lambda w: (_step(w) / 'params' / 'manifest.ocdbt').unlink(),
     r'params/manifest\.ocdbt .* is missing'),
    ('params item deleted', lambda w: shutil.rmtree(_step(w) / 'params'),
     r'params item \(params/\) is missing'),
    ('metadata truncated', lambda w: os.truncate(_step(w) / 'params' / '_METADATA', 100),
     r'params/_METADATA is truncated'),
    ('metadata empty', lambda w: (_step(w) / 'params' / '_METADATA').write_text(''),
     r'params/_METADATA is truncated, empty'),
    ('checksums deleted item', lambda w: (_step(w) / 'checksums' / 'metadata').write_text('{}'),
     r'checksums/metadata holds no checksums of params'),
]
CONFIG_DAMAGE = [
    ('config.json corrupt', lambda w: _edit_config(w, '{"model": {"name": '), r'config\.json is damaged'),
    ('config.json empty', lambda w: _edit_config(w, ''), r'config\.json is damaged'),
    ('config.json not an object', lambda w: _edit_config(w, '[1, 2]'), r'config\.json is damaged'),
    ('config.json without model', lambda w: _edit_config(w, '{"seed": 0}'),
     r'config\.json is damaged \(no model section\)'),
    ('config.json invalid value', lambda w: _config_without_key(w, 'f2_ms', 0),
     r'config\.json is damaged \(config\.model\.f2_ms = 0: must be a finite number > 0'),
]


def _mix_cli(workdir, song, out, capsys):
  fv = parse_flags(mix, f'--checkpoint={workdir}', f'--input={song}', f'--output={out}')
  return mix.run(fv), capsys.readouterr().err


def _export_cli(workdir, song, out, capsys):
  del song
  return export.run(parse_flags(export, f'--checkpoint={workdir}', f'--output={out}')), \
      capsys.readouterr().err


def _evaluate_cli(workdir, song, out, capsys):
  del song
  fv = parse_flags(evaluate, f'--checkpoints=alm={workdir}', f'--output={out}')
  return evaluate.run(fv), capsys.readouterr().err


COMMANDS = {'mix': _mix_cli, 'export': _export_cli, 'evaluate': _evaluate_cli}


def _tree_files(path: pathlib.Path):
  return sorted(str(p.relative_to(path)) for p in path.rglob('*'))


# Every case through the mix CLI; export and evaluate (the same restore) on one case of each kind.
_ONE_OF_EACH = ('array values altered', 'metadata empty', 'params item deleted', 'config.json corrupt')
COMMAND_CASES = [('mix',) + c for c in STEP_DAMAGE + CONFIG_DAMAGE] + [
    (command,) + c for command in ('export', 'evaluate')
    for c in STEP_DAMAGE + CONFIG_DAMAGE if c[0] in _ONE_OF_EACH]


@pytest.mark.parametrize('command,case,damage,says', COMMAND_CASES,
                         ids=[f'{c[0]}-{c[1]}' for c in COMMAND_CASES])
def test_damaged_checkpoint_is_refused_by_every_command(command, case, damage, says, good_workdir,
                                                        song, tmp_path, capsys):
  CASES['table'] += 1
  workdir = _copy(good_workdir, tmp_path)
  damage(workdir)
  before = _tree_files(workdir)
  out = tmp_path / 'out'
  status, err = COMMANDS[command](workdir, song, out, capsys)
  assert status == 2, (case, err)
  assert 'Traceback' not in err and len(err.strip().splitlines()) <= 3, err
  assert re.search(says, err), (case, err)
  if case.startswith('config.json'):
    assert str(workdir / 'config.json') in err
  else:
    assert f'{_step(workdir)} is damaged' in err
    # mix/export/evaluate say which steps are intact and how to pick one.
    assert f'Intact steps: 2, 1; pick one with --checkpoint={_step(workdir, 2)}' in err
  assert not out.exists() or not any(out.iterdir())  # nothing written
  assert _tree_files(workdir) == before  # nothing moved or deleted


@struct.dataclass
class _State:
  """The three fields `checkpoints.restore_state` fills (a TrainState without its statics)."""
  step: jax.Array
  params: dict
  opt_state: dict


def _abstract_state(tiny):
  device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
  abstract = _State(step=jax.ShapeDtypeStruct((), np.int32),
                    params=models.abstract_params(tiny.config),
                    opt_state={'count': jax.ShapeDtypeStruct((), np.int32)})
  return abstract, jax.tree.map(lambda _: device, abstract)


def _resume(workdir, tiny):
  """What training's resume restores (alm_jax.train uses the same call)."""
  abstract, sharding = _abstract_state(tiny)
  manager = checkpoints.open_manager(workdir, tiny.config)
  try:
    return checkpoints.restore_latest(manager, workdir, abstract, sharding)
  finally:
    manager.close()


def _max_diff(a, b):
  return max(float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize('case,damage,says', STEP_DAMAGE, ids=[c[0] for c in STEP_DAMAGE])
def test_training_resumes_from_the_newest_intact_step(case, damage, says, tiny, good_workdir,
                                                      tmp_path, caplog):
  CASES['table'] += 1
  workdir = _copy(good_workdir, tmp_path)
  damage(workdir)
  damaged_files = _tree_files(_step(workdir))
  with caplog.at_level('WARNING'):
    state = _resume(workdir, tiny)
  assert int(state.step) == 2
  assert _max_diff(state.params, jax.tree.map(lambda x: 2 * x, tiny.params)) == 0.0
  moved = workdir / checkpoints.DAMAGED_SUBDIR / '3'
  assert not _step(workdir).exists() and _tree_files(moved) == damaged_files  # kept, not deleted
  assert re.search(f'{_step(workdir)} is damaged: .*{says}', caplog.text), (case, caplog.text)
  assert f'Moved it to {moved}' in caplog.text
  assert 'Resuming from step 2' in caplog.text


def test_training_refuses_when_no_step_is_intact_and_starts_afresh_next(tiny, good_workdir,
                                                                       tmp_path):
  CASES['table'] += 1
  workdir = _copy(good_workdir, tmp_path)
  for s in STEPS:
    (_step(workdir, s) / 'params' / '_METADATA').write_text('')
  with pytest.raises(checkpoints.CheckpointError, match=r'No intact checkpoint .* moved aside'):
    _resume(workdir, tiny)
  assert sorted(os.listdir(workdir / checkpoints.DAMAGED_SUBDIR)) == ['1', '2', '3']
  assert _resume(workdir, tiny) is None  # the next run starts from a fresh initialisation


@pytest.mark.parametrize('case,damage,says', CONFIG_DAMAGE, ids=[c[0] for c in CONFIG_DAMAGE])
def test_training_refuses_a_damaged_config_json(case, damage, says, tiny, good_workdir, tmp_path):
  CASES['table'] += 1
  workdir = _copy(good_workdir, tmp_path)
  damage(workdir)
  before = (workdir / 'config.json').read_bytes()
  with pytest.raises(checkpoints.CheckpointError, match=says) as e:
    checkpoints.open_manager(workdir, tiny.config)
  assert 'mv ' in str(e.value)  # the fix
  assert (workdir / 'config.json').read_bytes() == before  # not overwritten


# ---------------------------------------------------------------------------
# Audio inputs through the mix CLI
# ---------------------------------------------------------------------------


def _wav_bytes(audio, subtype='PCM_16', fmt='WAV', rate=SR) -> bytes:
  buf = io.BytesIO()
  sf.write(buf, np.asarray(audio, np.float32).T, rate, subtype=subtype, format=fmt)
  return buf.getvalue()


def _noise(seconds=1.5, channels=1, seed=0, level=0.1):
  return (level * np.random.default_rng(seed).standard_normal((channels, int(seconds * SR))))


def _write(folder, name, data: bytes):
  folder.mkdir(parents=True, exist_ok=True)
  (folder / name).write_bytes(data)


def _with_value(value, at=1000):
  x = _noise()
  x[0, at] = value
  return _wav_bytes(x, 'FLOAT')


def _random_data():
  data = _wav_bytes(_noise())
  return data[:44] + np.random.default_rng(3).bytes(len(data) - 44)


def _truncated(fmt='WAV', subtype='PCM_16'):
  data = _wav_bytes(_noise(), subtype, fmt)
  return data[:len(data) // 2]


GOOD = _wav_bytes(_noise(seed=9))
# (case, {file name: bytes} of one song folder or 'many' songs, message regex naming the file)
AUDIO_CASES = [
    ('truncated wav', {'ok.wav': GOOD, 'bad.wav': _truncated()}, r'bad\.wav is truncated: .*--pad_short'),
    ('truncated float wav', {'ok.wav': GOOD, 'bad.wav': _truncated(subtype='FLOAT')},
     r'bad\.wav is truncated'),
    ('truncated flac', {'ok.wav': GOOD, 'bad.flac': _truncated('FLAC')},
     r'bad\.flac (is truncated|.*lost sync)'),
    ('random data', {'ok.wav': GOOD, 'bad.wav': _random_data()}, r'bad\.wav looks like random data'),
    ('1e20 sample', {'ok.wav': GOOD, 'bad.wav': _with_value(1e20)},
     r'bad\.wav holds a sample of 1e\+20 .* at 0\.023 s'),
    ('-5e3 sample', {'ok.wav': GOOD, 'bad.wav': _with_value(-5e3)}, r'bad\.wav holds a sample of -5e\+03'),
    ('nan sample', {'ok.wav': GOOD, 'bad.wav': _with_value(np.nan)}, r'bad\.wav holds NaN or Inf'),
    ('inf sample', {'ok.wav': GOOD, 'bad.wav': _with_value(np.inf)}, r'bad\.wav holds NaN or Inf'),
    ('garbage file', {'ok.wav': GOOD, 'bad.wav': b'RIFF not really a wave file'}, r'bad\.wav'),
    ('zero-byte file', {'ok.wav': GOOD, 'bad.wav': b''}, r'bad\.wav'),
    ('empty wav', {'ok.wav': GOOD, 'bad.wav': _wav_bytes(np.zeros((1, 0)))},
     r'bad\.wav (holds no samples)'),
    ('mixed rates', {'ok.wav': GOOD, 'bad.wav': _wav_bytes(_noise(), rate=48000)},
     r'different sample rates.*bad\.wav: 48000 Hz'),
    ('six channels', {'ok.wav': GOOD, 'bad.wav': _wav_bytes(_noise(channels=6))},
     r'bad\.wav has 6 channels'),
    ('too many files', {f'ch{i}.wav': GOOD for i in range(9)}, r'9 files but the model mixes at most 8'),
]


@pytest.mark.parametrize('case,files,says', AUDIO_CASES, ids=[c[0] for c in AUDIO_CASES])
def test_bad_audio_is_refused_naming_the_file(case, files, says, good_workdir, tmp_path, capsys):
  CASES['table'] += 1
  folder = tmp_path / 'in' / 'song'
  for name, data in files.items():
    _write(folder, name, data)
  out = tmp_path / 'out'
  status, err = _mix_cli(good_workdir, folder, out, capsys)
  assert status == 2, (case, err)
  assert 'Traceback' not in err and re.search(says, err), (case, err)  # names the file
  assert not out.exists() or _tree_files(out) == []  # no song folder, no .tmp-* left


def test_input_layout_errors(good_workdir, song, tmp_path, capsys):
  """Missing or empty inputs, files mixed with folders, colliding song names."""
  empty = tmp_path / 'empty'
  empty.mkdir()
  twins = tmp_path / 'twins'
  for parent in ('a', 'b'):
    _write(twins / parent / 'same', 'x.wav', GOOD)
  cases = [
      ([str(tmp_path / 'nowhere')], r'do not exist: .*nowhere'),
      ([str(empty)], r'No audio files in .*empty'),
      ([str(song / 'a.wav'), str(song)], r'either audio files .* or folders'),
      ([str(twins / 'a'), str(twins / 'b')], r"Several songs are named \['same'\]"),
  ]
  for inputs, says in cases:
    CASES['table'] += 1
    out = tmp_path / 'out'
    fv = parse_flags(mix, f'--checkpoint={good_workdir}', f'--output={out}',
                     *[f'--input={p}' for p in inputs])
    assert mix.run(fv) == 2
    err = capsys.readouterr().err
    assert re.search(says, err), (inputs, err)
    assert not out.exists() or _tree_files(out) == []


def test_pad_short_reads_a_truncated_file_padded_with_silence(tmp_path, caplog):
  CASES['table'] += 1
  x = _noise()
  (tmp_path / 't.wav').write_bytes(_wav_bytes(x)[:44 + 2 * 10000])
  with pytest.raises(audio_io.TruncatedAudioError, match=r't\.wav is truncated: its header '
                     r'declares 66150 samples .* only 10000'):
    audio_io.read_audio(tmp_path / 't.wav')
  with caplog.at_level('WARNING'):
    audio, _ = audio_io.read_audio(tmp_path / 't.wav', pad_short=True)
  assert audio.shape == (1, 66150) and np.all(audio[0, 10000:] == 0)
  np.testing.assert_allclose(audio[0, :10000], x[0, :10000], atol=1 / 32767 + 1e-6)
  assert '--pad_short' in caplog.text
  assert audio_io.check_file(tmp_path / 't.wav', pad_short=True) == (SR, 66150, 1)


def _lying_wav(rate=SR, frames=1000, data_size=None) -> bytes:
  """A 16-bit mono WAV whose header declares `rate` and `data_size` bytes of data (None: the truth)."""
  data = (np.sin(np.arange(frames) * 0.05) * 3000).astype('<i2').tobytes()
  fmt = struct_lib.pack('<HHIIHH', 1, 1, rate, (rate * 2) & 0xFFFFFFFF, 2, 16)
  size = len(data) if data_size is None else data_size
  return (b'RIFF' + struct_lib.pack('<I', 36 + len(data)) + b'WAVE' + b'fmt ' +
          struct_lib.pack('<I', 16) + fmt + b'data' + struct_lib.pack('<I', size) + data)


LYING_HEADERS = [
    ('1 Hz', _lying_wav(rate=1), False, r'bad\.wav declares a sample rate of 1 Hz: .*Re-export it'),
    ('2^31-1 Hz', _lying_wav(rate=2**31 - 1), False, r'bad\.wav declares a sample rate of 2147483647 Hz'),
    ('huge length', _lying_wav(frames=SR, data_size=0xFFFFFFF0), False,
     r'bad\.wav is truncated: its header declares 2147483640 samples .*--pad_short'),
    ('huge length, --pad_short', _lying_wav(frames=SR, data_size=0xFFFFFFF0), True,
     r'bad\.wav is truncated beyond padding: .*Less than 10% .*re-copy or re-export it'),
]


@pytest.mark.parametrize('case,data,pad_short,says', LYING_HEADERS, ids=[c[0] for c in LYING_HEADERS])
def test_headers_that_lie_are_refused_before_allocating(case, data, pad_short, says, good_workdir,
                                                        tmp_path, capsys):
  """Issue 29 item 7: absurd rates and declared lengths, one line, nothing allocated for them."""
  CASES['table'] += 1
  folder = tmp_path / 'in' / 'song'
  _write(folder, 'ok.wav', GOOD)
  _write(folder, 'bad.wav', data)
  tracemalloc.start()
  try:
    with pytest.raises(audio_io.AudioFileError, match=says):
      audio_io.read_audio(folder / 'bad.wav', pad_short=pad_short)
    peak = tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()
  assert peak < 50e6, (case, peak)  # the file's own samples, not the header's claim
  out = tmp_path / 'out'
  fv = parse_flags(mix, f'--checkpoint={good_workdir}', f'--input={folder}', f'--output={out}',
                   *(['--pad_short'] if pad_short else []))
  assert mix.run(fv) == 2
  err = capsys.readouterr().err
  assert 'Traceback' not in err and re.search(says, err), (case, err)
  assert not out.exists() or _tree_files(out) == []


def test_pad_short_still_pads_a_copy_cut_short_by_less_than_a_minute(tmp_path):
  """A file holding under a tenth of its length is padded when less than a minute is missing."""
  (tmp_path / 't.wav').write_bytes(_lying_wav(frames=1000, data_size=2 * 20 * SR))
  audio, _ = audio_io.read_audio(tmp_path / 't.wav', pad_short=True)
  assert audio.shape == (1, 20 * SR) and not audio[0, 1000:].any()


def test_streaming_mixer_refuses_integer_blocks(tiny):
  """Issue 29 item 10: int16 blocks were mixed at x32767; float ones are taken as they are."""
  from alm_jax.inference import streaming  # pylint: disable=g-import-not-at-top
  CASES['table'] += 1
  mixer = streaming.StreamingMixer(models.load(tiny.config, tiny.params), channels=2)
  for dtype in (np.int16, np.int32, np.uint8, bool):
    with pytest.raises(TypeError, match=f'float blocks .*got {np.dtype(dtype)}.*astype'):
      mixer.process(np.zeros((2, 441), dtype))
  assert mixer.process(np.zeros((2, 441), np.float64)).shape == (441,)


# ---------------------------------------------------------------------------
# Config values, through the training command
# ---------------------------------------------------------------------------

CONFIG_CASES = [
    ({'train': {'batch_size': -1}}, r'config\.train\.batch_size = -1: must be an integer >= 1'),
    ({'train': {'batch_size': 0}}, r'config\.train\.batch_size = 0: must be an integer >= 1'),
    ({'model': {'max_channels': 0}}, r'config\.model\.max_channels = 0: must be an integer >= 1'),
    ({'model': {'f2_ms': 0.0}}, r'config\.model\.f2_ms = 0\.0: must be a finite number > 0'),
    ({'train': {'num_epochs': 0}}, r'config\.train\.num_epochs = 0: must be an integer >= 1'),
    ({'model': {'f1_stride': 0}}, r'config\.model\.f1_stride = 0: must be an integer >= 1'),
    ({'model': {'d_model': 0}}, r'config\.model\.d_model = 0'),
    ({'model': {'sample_rate': -44100}}, r'config\.model\.sample_rate = -44100'),
    ({'train': {'learning_rate': float('nan')}}, r'config\.train\.learning_rate = nan: must be a '
     r'finite number > 0'),
    ({'data': {'segment_seconds': 0.5}}, r'config\.data\.segment_seconds = 0\.5 is shorter than '
     r'one F1 frame'),
    ({'model': {'f2_ms': 2000.0}}, r'f2_ms = 2000\.0 is longer than config\.model\.f1_ms'),
    ({'train': {'steps_per_epoch': 0}}, r'config\.train\.steps_per_epoch = 0: valid are -1'),
    ({'loss': {'spread_weight': 1.0}}, r'config\.loss\.spread_weight = 1\.0 trains the pan '
     r"layout's spread, and config\.model\.register\.pan_layout is off"),
    ({'train': {'compute_dtype': 'float8'}}, r"compute_dtype = 'float8': valid are float32"),
    ({'model': {'encoder': {'dropout': 1.0}}}, r'dropout = 1\.0: must be a finite number >= 0 '
     r'and < 1'),
    # Issue 29 item 10: refused up front, saying how much memory it needs (was minutes of grinding).
    ({'train': {'batch_size': 1000000}}, r'config\.train\.batch_size = 1000000 needs at least '
     r'[\d,.]+ GB for one batch.s audio alone .* at most \d+ fits'),
]


@pytest.mark.parametrize('updates,says', CONFIG_CASES, ids=[str(c[0]) for c in CONFIG_CASES])
def test_bad_config_values_are_refused_by_name_before_any_work(updates, says, tmp_path):
  from absl import flags  # pylint: disable=g-import-not-at-top
  from alm_jax import main  # pylint: disable=g-import-not-at-top
  from conftest import REPO  # pylint: disable=g-import-not-at-top
  CASES['table'] += 1
  workdir = tmp_path / 'run'
  flags.FLAGS.unparse_flags()
  try:
    flags.FLAGS(['alm_jax.main', f'--config={REPO / "configs" / "quickstart.py"}',
                 f'--workdir={workdir}'])
    flags.FLAGS.config.update(updates)
    with pytest.raises(SystemExit, match=says) as e:
      main.main(['alm_jax.main'])
  finally:
    flags.FLAGS.unparse_flags()
  assert 'Fix them in the config file' in str(e.value)
  assert not workdir.exists()  # refused before any work


def test_a_misspelled_config_key_is_one_line_with_did_you_mean(tmp_path):
  """Issue 29 item 9: `--config.train.epochs=0` was an AttributeError traceback."""
  from conftest import REPO  # pylint: disable=g-import-not-at-top
  CASES['table'] += 1
  proc = subprocess.run(
      [sys.executable, '-m', 'alm_jax.main', '--config=configs/quickstart.py',
       f'--workdir={tmp_path / "w"}', '--config.train.epochs=0'],
      cwd=str(REPO), capture_output=True, text=True, timeout=300, check=False)
  assert proc.returncode != 0
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: --config.train.epochs: '), proc.stderr
  assert 'did you mean num_epochs' in lines[0]
  assert not (tmp_path / 'w').exists()
  from alm_jax import config_checks  # pylint: disable=g-import-not-at-top
  config = str(REPO / 'configs' / 'quickstart.py')
  assert 'did you mean train' in config_checks.override_problem(
      [f'--config={config}', '--config.trian.batch_size=2'])
  assert 'is a value' in config_checks.override_problem(
      ['--config', config, '--config.train.batch_size.x=2'])
  assert config_checks.override_problem([f'--config={config}', '--config.train.batch_size=2']) is None


def _main_refuses(workdir, says, monkeypatch=None):
  from absl import flags  # pylint: disable=g-import-not-at-top
  from alm_jax import main  # pylint: disable=g-import-not-at-top
  from conftest import REPO  # pylint: disable=g-import-not-at-top
  flags.FLAGS.unparse_flags()
  try:
    flags.FLAGS(['alm_jax.main', f'--config={REPO / "configs" / "quickstart.py"}',
                 f'--workdir={workdir}'])
    with pytest.raises(SystemExit, match=says) as e:
      main.main(['alm_jax.main'])
  finally:
    flags.FLAGS.unparse_flags()
  message = str(e.value)
  assert message.startswith('error: ') and '\n' not in message
  return message


@pytest.mark.parametrize('where', ['under a file', 'in /proc', 'read-only folder'])
def test_a_workdir_that_cannot_be_written_is_one_line(where, tmp_path):
  """Issue 29 item 8: `main --workdir` under a file or in /proc was a traceback."""
  CASES['table'] += 1
  if where == 'under a file':
    (tmp_path / 'file').write_text('x')
    workdir, says = tmp_path / 'file' / 'run', r'--workdir .*run lies under .*file, which is a file'
  elif where == 'in /proc':
    workdir, says = pathlib.Path('/proc/alm_jax_test_run'), r'--workdir /proc/alm_jax_test_run cannot be written'
  else:
    ro = tmp_path / 'ro'
    ro.mkdir()
    ro.chmod(0o555)
    workdir, says = ro / 'run', r'--workdir .*ro/run'
  try:
    if where == 'read-only folder' and os.access(tmp_path / 'ro', os.W_OK):
      if os.geteuid() == 0:
        pytest.skip('root writes into read-only folders')
    _main_refuses(workdir, says)
  finally:
    if where == 'read-only folder':
      (tmp_path / 'ro').chmod(0o755)
  assert not workdir.exists()


def test_a_full_disk_during_training_is_one_line(tmp_path, monkeypatch):
  """Issue 29 item 8: a full disk printed hundreds of tracebacks and no project message."""
  import errno  # pylint: disable=g-import-not-at-top
  from alm_jax import main  # pylint: disable=g-import-not-at-top
  from alm_jax import train  # pylint: disable=g-import-not-at-top
  CASES['table'] += 1
  workdir = tmp_path / 'run'

  def full(config, workdir_arg):
    del config
    try:  # as the checkpoint library reports it: its own error raised from the OSError
      raise OSError(errno.ENOSPC, 'No space left on device', f'{workdir_arg}/checkpoints/7/params')
    except OSError as e:
      raise RuntimeError('Checkpoint save failed') from e

  monkeypatch.setattr(main, 'prepare_data_once', lambda config, workdir: None)
  monkeypatch.setattr(train, 'train_and_evaluate', full)
  # Named by --workdir, not by the checkpoint library's file inside it.
  message = _main_refuses(workdir, f'no space left on the disk holding {re.escape(str(workdir))} ')
  assert 'GB free now' in message and 'free space there' in message and 'rerun' in message
  # Any other error is not turned into this message.
  monkeypatch.setattr(train, 'train_and_evaluate', lambda c, w: (_ for _ in ()).throw(
      RuntimeError('something else')))
  from absl import flags  # pylint: disable=g-import-not-at-top
  from conftest import REPO  # pylint: disable=g-import-not-at-top
  flags.FLAGS.unparse_flags()
  try:
    flags.FLAGS(['alm_jax.main', f'--config={REPO / "configs" / "quickstart.py"}',
                 f'--workdir={workdir}'])
    with pytest.raises(RuntimeError, match='something else'):
      main.main(['alm_jax.main'])
  finally:
    flags.FLAGS.unparse_flags()


@pytest.mark.slow
def test_a_real_full_disk_during_training_is_one_line_and_the_rerun_trusts_nothing_partial(
    tmp_path, tmp_path_factory):
  """Issue 29 item 8 on a real 200 KiB tmpfs: the first checkpoint does not fit.

  One `error:` line and no traceback (the checkpoint library's threads logged
  one per array); after the disk is grown, the same command trains to the end
  and the half-written step was not taken for a checkpoint.
  """
  from conftest import REPO  # pylint: disable=g-import-not-at-top
  from tiny_training import shared_data_dirs  # pylint: disable=g-import-not-at-top
  CASES['table'] += 1
  disk = tmp_path / 'disk'
  disk.mkdir()
  if subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=200k', 'tmpfs', str(disk)],
                    capture_output=True, check=False).returncode != 0:
    pytest.skip('cannot mount a tmpfs here (needs root)')
  data_dir, bank_dir = shared_data_dirs(tmp_path_factory)
  workdir = disk / 'run'
  cmd = [sys.executable, '-m', 'alm_jax.main', '--config=configs/quickstart.py',
         f'--workdir={workdir}', '--config.data.name=synthetic_live/tiny',
         f'--config.data.data_dir={data_dir}', f'--config.data.bleed.cache_dir={bank_dir}',
         '--config.data.bleed.bank_size=4', '--config.data.bleed.rir_seconds=0.02',
         '--config.data.bleed.max_order=2', '--config.data.bleed.room_max=(6.0,6.0,3.0)',
         '--config.model.max_channels=6', '--config.data.segment_seconds=2.0',
         '--config.data.eval_segment_seconds=2.0', '--config.train.batch_size=2',
         '--config.train.steps_per_epoch=1', '--config.train.num_epochs=2',
         '--config.train.checkpoint_every_steps=1', '--config.train.eval_every_steps=100']
  try:
    first = subprocess.run(cmd, cwd=str(REPO), capture_output=True, text=True, timeout=900,
                           check=False)
    assert first.returncode != 0
    assert 'Traceback' not in first.stderr, first.stderr[-3000:]
    errors = [line for line in first.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1, first.stderr[-3000:]
    assert errors[0].startswith(f'error: no space left on the disk holding {workdir} (')
    assert not (workdir / 'checkpoints' / '1').exists()  # only the library's temporary, if any
    subprocess.run(['mount', '-o', 'remount,size=64m', str(disk)], check=True)
    again = subprocess.run(cmd, cwd=str(REPO), capture_output=True, text=True, timeout=900,
                           check=False)
    assert again.returncode == 0, again.stderr[-3000:]
    assert (workdir / 'checkpoints' / '2').is_dir()
    assert not list((workdir / 'checkpoints').glob('*tmp*'))
  finally:
    subprocess.run(['umount', str(disk)], check=False)


# ---------------------------------------------------------------------------
# Property-based fuzzing
# ---------------------------------------------------------------------------

_FUZZ_SOURCES = {
    'pcm16': _wav_bytes(_noise(0.2)),
    'float': _wav_bytes(_noise(0.2), 'FLOAT'),
    'stereo24': _wav_bytes(_noise(0.2, 2), 'PCM_24'),
    'flac': _wav_bytes(_noise(0.2), 'PCM_16', 'FLAC'),
}


@st.composite
def _damaged_audio(draw, header_only: bool):
  kind = draw(st.sampled_from(sorted(_FUZZ_SOURCES)))
  data = bytearray(_FUZZ_SOURCES[kind])
  limit = 64 if header_only else len(data)
  for _ in range(draw(st.integers(0, 4))):
    i = draw(st.integers(0, min(limit, len(data)) - 1))
    data[i] ^= draw(st.integers(1, 255))
  if draw(st.booleans()):
    data = data[:draw(st.integers(0, len(data)))]
  return kind, bytes(data)


def _read_cleanly(tmp_path, kind, data):
  """Reads the bytes as a file: an AudioFileError, or audio every later stage accepts."""
  CASES['fuzz'] += 1
  path = tmp_path / ('f.flac' if kind == 'flac' else 'f.wav')
  path.write_bytes(data)
  try:
    audio, rate = audio_io.read_audio(path, None)
    rate2, frames, channels = audio_io.check_file(path)
  except audio_io.AudioFileError as e:
    assert str(path) in str(e)
    return
  assert audio.dtype == np.float32 and audio.ndim == 2 and audio.shape[1] > 0
  assert (rate2, frames, channels) == (rate, audio.shape[1], audio.shape[0])
  assert np.all(np.isfinite(audio)) and np.max(np.abs(audio)) <= audio_io.MAX_ABS_SAMPLE


_FAST = hypothesis.settings(max_examples=40, deadline=None, database=None,
                            suppress_health_check=list(hypothesis.HealthCheck))
_SLOW = hypothesis.settings(_FAST, max_examples=1000)


@_FAST
@hypothesis.given(case=_damaged_audio(header_only=True))
def test_fuzz_audio_headers(tmp_path_factory, case):
  _read_cleanly(tmp_path_factory.mktemp('fuzz'), *case)


@pytest.mark.slow
@_SLOW
@hypothesis.given(case=_damaged_audio(header_only=False))
def test_fuzz_audio_files_slow(tmp_path_factory, case):
  _read_cleanly(tmp_path_factory.mktemp('fuzz'), *case)


@st.composite
def _checkpoint_damage(draw, files):
  rel = draw(st.sampled_from(files))
  truncate = draw(st.booleans())
  flips = draw(st.lists(st.tuples(st.floats(0, 1, exclude_max=True), st.integers(1, 255)),
                        min_size=0 if truncate else 1, max_size=3))
  cut = draw(st.floats(0, 1, exclude_max=True)) if truncate else None
  return rel, cut, flips


def _fuzz_checkpoint(good_workdir, tiny, root, damage):
  """Damages one file of step 3: restore_params gives a clean error or exactly the saved params."""
  CASES['fuzz'] += 1
  rel, cut, flips = damage
  workdir = root / 'run'
  if workdir.exists():
    shutil.rmtree(workdir)
  shutil.copytree(good_workdir, workdir)
  path = workdir / rel
  data = bytearray(path.read_bytes())
  for at, xor in flips:
    if data:
      data[int(at * len(data))] ^= xor
  if cut is not None:
    data = data[:int(cut * len(data))]
  path.write_bytes(bytes(data))
  try:
    _, params, step = restore.restore_params(workdir)
  except checkpoints.CheckpointError as e:
    assert 'checkpoints/3' in str(e) or 'config.json' in str(e), str(e)
    return
  assert step == 3 and _max_diff(params, jax.tree.map(lambda x: 3 * x, tiny.params)) == 0.0


def _step_files(good_workdir):
  return sorted(str(p.relative_to(good_workdir)) for p in _step(good_workdir).rglob('*')
                if p.is_file()) + ['config.json']


def test_fuzz_checkpoint_files(good_workdir, tiny, tmp_path):
  """Random truncations and byte flips of step 3's files (and config.json)."""
  @hypothesis.settings(_FAST, max_examples=12)
  @hypothesis.given(damage=_checkpoint_damage(_step_files(good_workdir)))
  def run(damage):
    _fuzz_checkpoint(good_workdir, tiny, tmp_path, damage)

  run()


@pytest.mark.slow
def test_fuzz_checkpoint_files_slow(good_workdir, tiny, tmp_path):
  @hypothesis.settings(_FAST, max_examples=300)
  @hypothesis.given(damage=_checkpoint_damage(_step_files(good_workdir)))
  def run(damage):
    _fuzz_checkpoint(good_workdir, tiny, tmp_path, damage)

  run()


def test_zz_report_case_counts(capsys):
  """Prints how many cases this run tried (last in the module; visible with -s)."""
  with capsys.disabled():
    print(f'\n[test_bad_inputs] table cases: {CASES["table"]}, fuzz examples: {CASES["fuzz"]}')
