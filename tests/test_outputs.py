"""alm_jax/outputs.py and the export/mix output rules: nothing the user had is ever destroyed."""

import json
import os
import pathlib
import stat
import time

import numpy as np
import pytest

from alm_jax import export
from alm_jax import outputs
from checkpoint_fixtures import TinyModel, parse_flags, save_checkpoint


def test_check_writable_refuses_files_paths_under_files_and_read_only_folders(tmp_path):
  f = tmp_path / 'a_file'
  f.write_text('x')
  with pytest.raises(outputs.OutputError, match='is a file'):
    outputs.check_writable(f)
  with pytest.raises(outputs.OutputError, match='which is a file'):
    outputs.check_writable(f / 'sub' / 'dir')
  ro = tmp_path / 'ro'
  ro.mkdir()
  ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
  try:
    if os.access(ro, os.W_OK):  # root ignores permission bits
      pytest.skip('running as a user who may write any folder')
    with pytest.raises(outputs.OutputError, match='not writable'):
      outputs.check_writable(ro / 'new')
  finally:
    ro.chmod(0o755)
  assert outputs.check_writable(tmp_path / 'new' / 'deeper') == tmp_path / 'new' / 'deeper'


def test_folder_written_aside_has_normal_permissions_and_never_half_replaces(tmp_path):
  final = tmp_path / 'out'
  with outputs.folder_written_aside(final) as tmp:
    (tmp / 'a.txt').write_text('1')
  umask = os.umask(0)
  os.umask(umask)
  assert stat.S_IMODE(final.stat().st_mode) == 0o777 & ~umask
  # A failure inside the block leaves the old folder as it was, and no temporaries.
  with pytest.raises(RuntimeError):
    with outputs.folder_written_aside(final, replace=True) as tmp:
      (tmp / 'b.txt').write_text('2')
      raise RuntimeError('boom')
  assert sorted(p.name for p in tmp_path.iterdir()) == ['out']
  assert (final / 'a.txt').read_text() == '1'
  with pytest.raises(FileExistsError):
    with outputs.folder_written_aside(final):
      pass
  with outputs.folder_written_aside(final, replace=True) as tmp:
    (tmp / 'c.txt').write_text('3')
  assert sorted(p.name for p in final.iterdir()) == ['c.txt']
  assert sorted(p.name for p in tmp_path.iterdir()) == ['out']


def test_stale_temporaries_are_cleaned_but_young_ones_kept(tmp_path):
  old = tmp_path / '.tmp-song-abc'
  old.mkdir()
  (old / 'mix.wav').write_bytes(b'x')
  young = tmp_path / '.tmp-other-def'
  young.mkdir()
  keep = tmp_path / 'song'
  keep.mkdir()
  past = time.time() - 3600
  os.utime(old, (past, past))
  assert outputs.clean_stale_temporaries(tmp_path) == [old]
  assert sorted(p.name for p in tmp_path.iterdir()) == ['.tmp-other-def', 'song']


def test_atomic_write_text(tmp_path):
  p = outputs.atomic_write_text(tmp_path / 'c.json', '{}')
  assert p.read_text() == '{}' and sorted(x.name for x in tmp_path.iterdir()) == ['c.json']


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  root = tmp_path_factory.mktemp('exports')
  tiny = TinyModel('mr')
  save_checkpoint(root / 'run', tiny.config, tiny.params, step=7)
  return root / 'run'


def _listing(path: pathlib.Path):
  return sorted((str(p.relative_to(path)), p.stat().st_size) for p in path.rglob('*'))


def test_export_never_touches_a_workdir_or_foreign_folder(workdir, tmp_path, capsys):
  before = _listing(workdir)
  foreign = tmp_path / 'photos'
  foreign.mkdir()
  (foreign / 'cat.jpg').write_bytes(b'\xff\xd8 not really')
  cases = [(workdir, 'training workdir'), (foreign, 'was not written by alm_jax.export'),
           (workdir / 'checkpoints' / '99', 'inside the checkpoint folder')]
  for output, message in cases:
    for extra in ((), ('--overwrite',)):
      status = export.run(parse_flags(export, f'--checkpoint={workdir}', f'--output={output}',
                                      *extra))
      assert status == 2
      assert message in capsys.readouterr().err
  assert _listing(workdir) == before
  assert _listing(foreign) == [('cat.jpg', 13)]


def test_export_replaces_a_previous_export_only_with_overwrite(workdir, tmp_path, capsys):
  out = tmp_path / 'exported'
  assert export.run(parse_flags(export, f'--checkpoint={workdir}', f'--output={out}')) == 0
  assert (out / export.EXPORT_MARKER).exists() and (out / 'saved_model.pb').exists()
  umask = os.umask(0)
  os.umask(umask)
  assert stat.S_IMODE(out.stat().st_mode) == 0o777 & ~umask
  stamp = (out / export.EXPORT_MARKER).stat().st_mtime_ns
  assert export.run(parse_flags(export, f'--checkpoint={workdir}', f'--output={out}')) == 2
  assert '--overwrite' in capsys.readouterr().err
  assert (out / export.EXPORT_MARKER).stat().st_mtime_ns == stamp
  assert export.run(parse_flags(export, f'--checkpoint={workdir}', f'--output={out}',
                                '--overwrite')) == 0
  assert sorted(p.name for p in tmp_path.iterdir()) == ['exported']  # no temporaries left
  # An output under a file: one line, before any work.
  blocker = tmp_path / 'file'
  blocker.write_text('x')
  assert export.run(parse_flags(export, f'--checkpoint={workdir}',
                                f'--output={blocker / "sub"}')) == 2
  assert 'which is a file' in capsys.readouterr().err
  np.testing.assert_equal(blocker.read_text(), 'x')


def test_check_apart_from_inputs_refuses_equal_containing_and_inside(tmp_path):
  song = tmp_path / 'X' / 'band'
  song.mkdir(parents=True)
  (song / 'kick.wav').write_bytes(b'x')
  (tmp_path / 'link').symlink_to(song)
  for output, relation in [(song, 'is the input'), (tmp_path / 'X', 'contains the input'),
                           (song / 'out', 'lies inside the input'),
                           (tmp_path / 'link', 'is the input'), (tmp_path, 'contains the input')]:
    with pytest.raises(outputs.OutputError, match=relation + '.*never writes into its inputs'):
      outputs.check_apart_from_inputs(output, [song])
  with pytest.raises(outputs.OutputError, match='contains the input .*kick.wav'):
    outputs.check_apart_from_inputs(song, [song / 'kick.wav'])
  outputs.check_apart_from_inputs(tmp_path / 'X' / 'band-out', [song])  # a sibling is fine
  outputs.check_apart_from_inputs(tmp_path / 'X' / 'ban', [song])  # a name prefix is not a parent


def test_a_folder_is_replaced_only_when_empty_or_marked(tmp_path):
  new = tmp_path / 'new'
  assert outputs.check_replaceable(new, 'm.json', overwrite=False) is False
  new.mkdir()
  assert outputs.check_replaceable(new, 'm.json', overwrite=False) is True  # empty
  (new / 'notes.txt').write_text('mine')
  for overwrite in (False, True):
    with pytest.raises(outputs.OutputError, match='holds no m.json.*never replaced, even with'):
      outputs.check_replaceable(new, 'm.json', overwrite=overwrite, tool='tool')
  (tmp_path / 'file').write_text('x')
  with pytest.raises(outputs.OutputError, match='not a folder'):
    outputs.check_replaceable(tmp_path / 'file', 'm.json', overwrite=True)
  ours = tmp_path / 'ours'
  with outputs.folder_written_aside(ours, marker='m.json', description={'tool': 't'}) as tmp:
    (tmp / 'a.txt').write_text('1')
  assert json.loads((ours / 'm.json').read_text()) == {'tool': 't'}
  with pytest.raises(outputs.OutputError, match='pass --overwrite'):
    outputs.check_replaceable(ours, 'm.json', overwrite=False)
  assert outputs.check_replaceable(ours, 'm.json', overwrite=True) is True
  # Enforced again at the rename: a foreign folder that appeared meanwhile is left alone.
  with pytest.raises(outputs.OutputError, match='holds no m.json'):
    with outputs.folder_written_aside(new, replace=True, marker='m.json') as tmp:
      (tmp / 'b.txt').write_text('2')
  assert sorted(p.name for p in new.iterdir()) == ['notes.txt']
  assert not list(tmp_path.glob('.tmp-*')) and not list(tmp_path.glob('.old-*'))


def test_disk_full_is_found_behind_wrappers_and_in_tensorstore_text(tmp_path):
  import errno  # pylint: disable=g-import-not-at-top
  import logging  # pylint: disable=g-import-not-at-top
  try:
    try:
      raise OSError(errno.ENOSPC, 'No space left on device', str(tmp_path / 'a'))
    except OSError as e:
      raise RuntimeError('save failed') from e
  except RuntimeError as wrapped:
    assert outputs.disk_full(wrapped).filename == str(tmp_path / 'a')
  store = ValueError('RESOURCE_EXHAUSTED: Error writing local file "/w/checkpoints/1.tmp/m": '
                     'Failed to write 280 bytes to file 5: No space left on device '
                     "[os_error_code='28']")
  assert outputs.disk_full(store).errno == errno.ENOSPC
  assert outputs.disk_full(store).filename == '/w/checkpoints/1.tmp/m'
  assert outputs.disk_full(ValueError('RESOURCE_EXHAUSTED: out of memory')) is None
  message = outputs.disk_full_message(outputs.disk_full(store), tmp_path / 'run', name_file=False)
  assert message.startswith(f'no space left on the disk holding {tmp_path / "run"} (')
  assert 'GB free now' in message and '--workdir' in message
  # The checkpoint library's threads log one traceback per array: dropped, the first kept.
  log = logging.getLogger('test_disk_full')
  handler = logging.StreamHandler(__import__('io').StringIO())
  log.addHandler(handler)
  disk_log = outputs.DiskFullLogFilter()
  handler.addFilter(disk_log)
  try:
    log.error('writing failed: %s', store)
    log.error('Task exception was never retrieved', exc_info=(ValueError, store, None))
    log.error('an unrelated error')
  finally:
    log.removeHandler(handler)
  assert handler.stream.getvalue() == 'an unrelated error\n'
  assert disk_log.seen.filename == '/w/checkpoints/1.tmp/m'


def test_evaluate_overwrite_never_deletes_results_it_did_not_write(tmp_path):
  """evaluate --overwrite removed audio/, gains/, index.html ... of any --output folder."""
  from alm_jax.evaluation import run  # pylint: disable=g-import-not-at-top
  mine = tmp_path / 'music'
  (mine / 'audio').mkdir(parents=True)
  (mine / 'audio' / 'take1.wav').write_bytes(b'RIFF')
  (mine / 'index.html').write_text('my page')
  for overwrite in (False, True):
    with pytest.raises((outputs.OutputError, FileExistsError),
                       match='never replaced, even with --overwrite' if overwrite else 'overwrite'):
      run.prepare_output(str(mine), overwrite)
  assert (mine / 'audio' / 'take1.wav').exists() and (mine / 'index.html').read_text() == 'my page'
  # Its own results (the marker written with them) are replaced with --overwrite.
  out = tmp_path / 'eval'
  run.prepare_output(str(out), False)
  assert json.loads((out / run.EVALUATE_MARKER).read_text())['tool'] == 'alm_jax.evaluate'
  (out / 'audio').mkdir()
  (out / 'summary.md').write_text('old')
  with pytest.raises(FileExistsError, match='pass --overwrite'):
    run.prepare_output(str(out), False)
  run.prepare_output(str(out), True)
  assert sorted(p.name for p in out.iterdir()) == [run.EVALUATE_MARKER]
