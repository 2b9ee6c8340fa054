"""End-to-end tests of `python -m alm_jax.evaluate` (alm_jax/evaluate.py, alm_jax/evaluation/) on
the tiny synthetic dataset, and the agreement of its metrics with training validation's."""

import csv
import json
import math
import os
import runpy
import shutil

from absl import flags
import jax
import numpy as np
import pytest
import soundfile as sf

from alm_jax import evaluate
from alm_jax import frames
from alm_jax import losses
from alm_jax import metrics
from alm_jax import train
from alm_jax import validation
from alm_jax.data import bleed
from alm_jax.data import common
from alm_jax.data import pipeline
from alm_jax.evaluation import examples
from alm_jax.evaluation import run
from alm_jax.evaluation import systems
from alm_jax.inference import offline
from alm_jax.models import build_model
from checkpoint_fixtures import random_params
from checkpoint_fixtures import save_checkpoint
from conftest import load_config
from conftest import shrink_model
from test_evaluation_listening_page import check_page

SEG = 2.0  # evaluation segment, s: > one F1 frame and the loss's largest FFT
# One worker runs this module: its tiny dataset build and training run once, not once per worker.
pytestmark = pytest.mark.xdist_group('evaluate')


# ---- end to end ----------------------------------------------------------------------


@pytest.fixture(scope='module')
def dirs(tmp_path_factory):
  return {k: str(tmp_path_factory.mktemp(k)) for k in ('tfds', 'rir', 'work', 'out')}


def tiny_config(dirs):
  """A tiny ALM-MR on synthetic_live/tiny (2 test songs), trained on 2 s segments."""
  c = shrink_model(load_config('quickstart'))
  c.data.name = 'synthetic_live/tiny'
  c.data.data_dir = dirs['tfds']
  c.data.bleed.cache_dir = dirs['rir']
  c.data.bleed.bank_size = 2
  c.data.bleed.rir_seconds = 0.02
  c.data.bleed.max_order = 2
  c.data.bleed.room_max = (6.0, 6.0, 3.0)
  c.data.segment_seconds = c.data.eval_segment_seconds = SEG
  c.data.prefetch = 0
  c.train.batch_size = 2
  c.train.num_epochs = 1
  c.train.steps_per_epoch = 1
  c.train.log_every_steps = c.train.eval_every_steps = c.train.checkpoint_every_steps = 1
  return c


def run_cli(*args):
  fv = flags.FlagValues()
  evaluate.define_flags(fv)
  fv(['evaluate'] + list(args))
  return evaluate.run(fv, argv=['evaluate.py'] + list(args))


NOTES = 'IDEAL leads the balance: it is told the answer.\n'


@pytest.fixture(scope='module')
def evaluated(dirs):
  """One training step, then the CLI on the test split with that checkpoint and RAW."""
  workdir = os.path.join(dirs['work'], 'alm')
  # threefry's kernels take ~10 s of CPU to compile for the initialisation; which generator
  # drew the weights does not matter here.
  previous = jax.config.jax_default_prng_impl
  jax.config.update('jax_default_prng_impl', 'rbg')
  try:
    train.train_and_evaluate(tiny_config(dirs), workdir)
  finally:
    jax.config.update('jax_default_prng_impl', previous)
  out = os.path.join(dirs['out'], 'eval')
  notes = os.path.join(dirs['out'], 'notes.md')
  with open(notes, 'w', encoding='utf-8') as f:
    f.write(NOTES)
  # RAW is expected above IDEAL, which IDEAL's balance error of 0 must refute.
  assert run_cli(f'--checkpoints=ALM-MR={workdir}', '--split=test', f'--output={out}',
                 '--listening_test', '--expected_ranking=RAW,IDEAL',
                 f'--results_doc={dirs["out"]}/docs/results.md', f'--notes={notes}') == 0
  return workdir, out


def read_csv(path):
  with open(path, newline='', encoding='utf-8') as f:
    return list(csv.DictReader(f))


def test_writes_every_output(evaluated, dirs):
  _, out = evaluated
  for name in run.OUTPUT_FILES + ('listening_test/index.html', 'listening_test_key.json'):
    assert os.path.getsize(os.path.join(out, name)) > 0, name
  rows = read_csv(os.path.join(out, 'metrics.csv'))
  songs = pipeline.load_songs(tiny_config(dirs), 'test')
  assert len(songs) == 2 and len(rows) == len(songs) * 3  # songs x (RAW, IDEAL, ALM-MR)
  assert sorted({r['system'] for r in rows}) == ['ALM-MR', 'IDEAL', 'RAW']
  assert {r['song_id'] for r in rows} == {s.song_id for s in songs}
  lengths = {s.song_id: s.num_samples / common.SAMPLE_RATE for s in songs}
  for r in rows:
    for m in metrics.MIX_METRICS:
      assert math.isfinite(float(r[m])), (m, r)  # balance too: synthetic_live knows its levels
    assert 0 <= float(r['start_seconds']) <= lengths[r['song_id']] - SEG + 1e-4
    assert -30 <= float(r['bleed_severity_db']) <= -6
    assert float(r['seconds']) == pytest.approx(SEG)
    assert float(r['clipping_fraction']) >= 0 and float(r['mr_stft']) > 0
  raw = [r for r in rows if r['system'] == 'RAW']
  alm = [r for r in rows if r['system'] == 'ALM-MR']
  ideal = [r for r in rows if r['system'] == 'IDEAL']
  assert all(float(r['gain_change_db_per_s']) == 0 for r in raw + ideal)  # constant gains
  # With bleed IDEAL is not the target, but its balance is the target's.
  assert all(abs(float(r['balance_error_db'])) < 1e-4 for r in ideal)
  assert all(float(r['balance_error_db']) > 0.1 for r in raw)
  assert all(r['step'] == '1' for r in alm)
  # Both systems heard the same segment: same severity per song.
  assert {r['song_id']: r['bleed_severity_db'] for r in raw} == \
      {r['song_id']: r['bleed_severity_db'] for r in alm}
  with open(os.path.join(out, 'summary.md'), encoding='utf-8') as f:
    summary = f.read()
  table = [line for line in summary.splitlines() if line.startswith('| RAW') or
           line.startswith('| ALM-MR')]
  assert len(table) == 8  # the main table, the bleed table, the role table and the stereo table
  assert ' ± ' in table[0]
  # Balance by role: synthetic_live's roles, each system's mean signed error per role.
  assert '## Balance by role' in summary and '| kick (n=' in summary


def test_listening_page_is_well_formed(evaluated):
  _, out = evaluated
  parser = check_page(os.path.join(out, 'index.html'))
  rows = read_csv(os.path.join(out, 'metrics.csv'))
  # One player per segment for TARGET, RAW, IDEAL and the checkpoint; one gain plot per system.
  segments = len({(r['song_id'], r['segment']) for r in rows})
  assert parser.tags.count('audio') == segments * 4 and len(rows) == segments * 3
  assert parser.tags.count('img') == len(rows)
  with open(os.path.join(out, 'index.html'), encoding='utf-8') as f:
    page = f.read()
  for r in rows:
    assert r['audio'] in parser.links and r['gain_plot'] in parser.links
    # Segments are labelled with where they lie in the song.
    assert f"segment {r['segment']}: {examples.clock(float(r['start_seconds']))}–" in page
  import soundfile as sf  # pylint: disable=g-import-not-at-top
  info = sf.info(os.path.join(out, rows[0]['audio']))
  assert info.samplerate == common.SAMPLE_RATE and info.frames == int(SEG * common.SAMPLE_RATE)


def test_refuses_to_overwrite_and_names_bad_checkpoints(evaluated, dirs, capsys):
  workdir, out = evaluated
  assert run_cli(f'--checkpoints=ALM-MR={workdir}', f'--output={out}') == 2
  assert 'overwrite' in capsys.readouterr().err
  # A config that does not match the saved parameters.
  bad = os.path.join(dirs['work'], 'mismatch')
  shutil.copytree(workdir, bad)
  with open(os.path.join(bad, 'config.json')) as f:
    saved = json.load(f)
  saved['model']['d_model'] = 24
  with open(os.path.join(bad, 'config.json'), 'w') as f:
    json.dump(saved, f)
  with pytest.raises(systems.CheckpointError, match='BAD=' + bad):
    systems.load_system('BAD', bad)
  assert run_cli(f'--checkpoints=BAD={bad}', f'--output={out}_bad') == 2
  assert f'BAD={bad}' in capsys.readouterr().err
  with pytest.raises(systems.CheckpointError, match='NONE='):
    systems.load_system('NONE', os.path.join(dirs['work'], 'nothing_here'))
  # An output that is a file, or lies under one: one line, before any checkpoint is read.
  a_file = os.path.join(dirs['out'], 'a_file')
  with open(a_file, 'w') as f:
    f.write('not a folder')
  for output, says in ((a_file, 'is a file'), (os.path.join(a_file, 'eval'), 'which is a file')):
    assert run_cli('--checkpoints=NONE=/no/such/workdir', f'--output={output}') == 2
    err = capsys.readouterr().err
    assert says in err and 'NONE' not in err, err


def test_ranking_and_results_doc(evaluated, dirs):
  """summary.md checks --expected_ranking; --results_doc repeats it under the command line that
  generated it, then --notes."""
  _, out = evaluated
  with open(os.path.join(out, 'summary.md'), encoding='utf-8') as f:
    summary = f.read()
  assert '## Expected ranking' in summary and 'Expected, best first: RAW > IDEAL.' in summary
  lines = {}
  for line in summary.splitlines():  # the first row per metric: the main ranking table's
    lines.setdefault(line.split(' | ')[0][2:], line)
  assert lines['Balance error (dB)'].endswith('not reproduced: IDEAL above RAW |')
  assert lines['Gain change (dB/s)'].endswith('not reproduced: RAW ties with IDEAL |')  # both 0
  # Per non-empty bleed bin too (no segment is without bleed here).
  bins = {f'{r["severity_bin"]} (n={r["segments"]})'
          for r in read_csv(os.path.join(out, 'bleed_robustness.csv')) if int(r['segments'])}
  assert {line.split(' | ')[1] for line in summary.splitlines()
          if line.startswith('| MR-STFT distance | -')} == bins
  with open(os.path.join(dirs['out'], 'docs', 'results.md'), encoding='utf-8') as f:
    doc = f.read().splitlines()
  assert doc[0].startswith(f'_Generated by `python -m alm_jax.evaluate --checkpoints=ALM-MR=')
  assert (f"--expected_ranking=RAW,IDEAL --results_doc={dirs['out']}/docs/results.md "
          f"--notes={dirs['out']}/notes.md`") in doc[0] and 'do not edit' in doc[0]
  assert doc[2:-4] == summary.rstrip('\n').splitlines()
  assert doc[-4:] == ['', '## Notes', '', NOTES.strip()]


def test_expected_ranking_and_notes_are_checked_before_any_work(dirs, capsys):
  out = os.path.join(dirs['out'], 'refused')
  assert run_cli('--expected_ranking=RAW,NOPE', f'--output={out}') == 2
  err = capsys.readouterr().err
  assert 'unknown: NOPE' in err and 'evaluated: RAW, IDEAL' in err
  assert run_cli('--notes=/no/such/notes.md', f'--output={out}') == 2
  assert '--results_doc' in capsys.readouterr().err
  assert run_cli('--notes=/no/such/notes.md', '--results_doc=r.md', f'--output={out}') == 2
  assert '--notes /no/such/notes.md: cannot read it' in capsys.readouterr().err
  for ranking, match in ((['RAW', 'RAW'], 'each once'), (['RAW'], 'two or more')):
    with pytest.raises(systems.EvaluationError, match=match):
      run.evaluate([], tiny_config(dirs), 'test', out, expected_ranking=ranking)
  with pytest.raises(systems.EvaluationError, match='is a folder'):
    run.evaluate([], tiny_config(dirs), 'test', out, results_doc=dirs['out'])
  assert not os.path.exists(out)


def test_ideal_is_left_out_where_the_gains_are_unknown(dirs, monkeypatch):
  """On data without mixing gains (MedleyDB) IDEAL is skipped, said in summary.md, and a ranking
  naming it is refused before any mixing."""
  audio = (0.1 * np.random.default_rng(0).standard_normal((2, int(SEG * common.SAMPLE_RATE)))
           ).astype(np.float32)
  example = examples.Example('song', 0, audio, audio.sum(0), bleed.BLEED_OFF_DB, ['1: a', '2: b'],
                             None)
  monkeypatch.setattr(run.examples_lib, 'load_examples', lambda *a, **k: [example])
  out = os.path.join(dirs['out'], 'no_gains')
  with pytest.raises(systems.EvaluationError, match='Leave IDEAL out'):
    run.evaluate([], tiny_config(dirs), 'test', out, expected_ranking=['IDEAL', 'RAW'])
  assert not os.path.exists(os.path.join(out, 'audio'))  # nothing mixed
  paths = run.evaluate([], tiny_config(dirs), 'test', out, overwrite=True, progress=False)
  assert [r['system'] for r in paths['rows']] == ['RAW']
  with open(paths['summary'], encoding='utf-8') as f:
    assert 'IDEAL (the ideal input gains) is not evaluated: 1 of 1 segments' in f.read()
  # A refused run deletes no earlier results, even with --overwrite.
  with pytest.raises(systems.EvaluationError, match='Leave IDEAL out'):
    run.evaluate([], tiny_config(dirs), 'test', out, overwrite=True, expected_ranking=['IDEAL', 'RAW'])
  assert os.path.exists(paths['summary']) and os.path.exists(paths['metrics'])


def test_forces_zero_latency(evaluated, dirs):
  workdir, _ = evaluated
  noncausal = os.path.join(dirs['work'], 'noncausal')
  shutil.copytree(workdir, noncausal)
  with open(os.path.join(noncausal, 'config.json')) as f:
    saved = json.load(f)
  saved['model']['zero_latency'] = False
  with open(os.path.join(noncausal, 'config.json'), 'w') as f:
    json.dump(saved, f)
  system = systems.load_system('NC', noncausal)
  assert system.kind == 'causal' and system.config.model.zero_latency
  assert 'forced' in system.note


def evaluate_whole_songs(dirs, systems_, name):
  """Whole songs without bleed, with a ranking listening test: checks the lengths, the
  severities, that every metric is defined (synthetic_live knows its balance) and the test."""
  c = tiny_config(dirs)
  c.data.bleed.enabled = False
  paths = run.evaluate(systems_, c, 'test', os.path.join(dirs['out'], name), segment_seconds=0,
                       progress=False, listening_test='ranking')
  rows = read_csv(paths['metrics'])
  songs = {s.song_id: s for s in pipeline.load_songs(c, 'test')}
  assert len(rows) == (2 + len(systems_)) * len(songs)  # RAW and IDEAL, then the systems
  check_page(paths['listening_test'])
  with open(paths['listening_key'], encoding='utf-8') as f:
    key = json.load(f)
  assert key['mode'] == 'ranking' and len(key['trials']) == len(songs)
  names = sorted(['ANCHOR', 'IDEAL', 'RAW', 'TARGET'] + [s.name for s in systems_])
  assert all(sorted(t['items'].values()) == names for t in key['trials'])
  for r in rows:
    assert round(float(r['seconds']) * common.SAMPLE_RATE) == songs[r['song_id']].num_samples
    assert float(r['bleed_severity_db']) == bleed.BLEED_OFF_DB
    for m in metrics.MIX_METRICS:
      assert math.isfinite(float(r[m])), (m, r)
  return paths, rows


def test_whole_songs_without_bleed(dirs):
  """The references only: lengths are the songs', the balance still known, IDEAL is the target."""
  paths, rows = evaluate_whole_songs(dirs, [], 'whole')
  check_page(paths['index'])
  with open(paths['summary'], encoding='utf-8') as f:
    summary = f.read()
  assert 'no bleed' in summary and '**IDEAL**: oracle' in summary
  ideal = [r for r in rows if r['system'] == 'IDEAL']
  assert len(ideal) == len(rows) // 2
  raw = {r['song_id']: r for r in rows if r['system'] == 'RAW'}
  for r in ideal:  # the target up to its int16 storage
    assert abs(float(r['balance_error_db'])) < 1e-4 and float(r['si_sdr_db']) > 60, r
    assert abs(float(r['loudness_diff_lu'])) < 0.01, r
    assert float(r['mr_stft']) < 0.02 * float(raw[r['song_id']]['mr_stft']), r


def test_target_gains_rebuild_the_target(dirs):
  """The batches' metadata names each shuffled channel and its level: sum of g * input = target."""
  c = examples.eval_data_config(tiny_config(dirs), 'test', segment_seconds=1.0, segments_per_song=2)
  c.data.bleed.enabled = False
  exs = examples.load_examples(c, 'test')
  assert any(ex.segment == 1 for ex in exs)
  starts = [(ex.song_id, round(ex.start_seconds)) for ex in exs]
  assert len(set(starts)) == len(starts)  # each window of a song starts elsewhere
  songs = {s.song_id: s for s in pipeline.load_songs(c, 'test')}
  ideal = systems.ideal_system(c)
  for ex in exs:
    instruments = sorted(name.split(': ', 1)[1] for name in ex.channel_names)
    assert instruments == sorted(songs[ex.song_id].instruments)
    # 1 s windows start on whole seconds.
    assert ex.start_seconds == pytest.approx(round(ex.start_seconds), abs=1e-5)
    assert ex.target_gains is not None
    rebuilt = ex.target_gains @ ex.audio.astype(np.float64)
    np.testing.assert_allclose(rebuilt, ex.target, atol=2e-3 * np.abs(ex.target).max())
    # IDEAL mixes exactly that, through the System interface the evaluation uses.
    mix, gains = ideal.mix(ex.audio, np.ones(len(ex.audio), bool), target_gains=ex.target_gains)
    np.testing.assert_allclose(mix, rebuilt, rtol=1e-4, atol=1e-5 * np.abs(ex.target).max())
    assert metrics.balance_error_db(gains, ex.target_gains) < 1e-5


def test_training_validation_reports_the_evaluation_metrics(evaluated):
  """The first test segment through validation.eval_step + example_metrics (what TensorBoard shows)
  gives the numbers of evaluate's metrics.csv for that checkpoint and segment."""
  workdir, out = evaluated
  system = systems.load_system('ALM-MR', workdir)
  cfg = examples.eval_data_config(system.config, 'test')
  batch = pipeline.make_eval_batches(cfg, 'test')[0]
  model = build_model(system.config)
  spec = losses.MRSTFTSpec.from_config(system.config.loss)
  step = jax.jit(lambda p, b: validation.eval_step(p, b, model, spec))
  device = step(system.params, {k: batch[k] for k in ('audio', 'channel_mask', 'target')})
  host = jax.device_get(device)
  reported = validation.example_metrics(host, batch, system.config)
  assert sorted(reported) == sorted(set(metrics.MIX_METRICS) - {'mr_stft'})
  row = next(r for r in read_csv(os.path.join(out, 'metrics.csv'))
             if r['system'] == 'ALM-MR' and r['song_id'] == batch['song_id'][0]
             and r['segment'] == '0')
  assert float(row['mr_stft']) == pytest.approx(float(host['loss'][0]), rel=1e-4)
  for name, values in reported.items():
    assert math.isfinite(values[0]), name
    assert float(row[name]) == pytest.approx(float(values[0]), rel=1e-4, abs=1e-6), name


def designed_pan_means(config) -> dict:
  """song id -> mean |designed pan| over its channels (the pipeline's songs, any channel order)."""
  return {s.song_id: float(np.mean(np.abs(s.pans))) for s in pipeline.load_songs(config, 'test')}


def stereo_section(summary: str) -> dict:
  """summary.md's "Stereo" table: system -> its cells."""
  section = summary.split('## Stereo\n', 1)[1]
  table = section[section.index('| System | Pans | n |'):].split('\n\n', 1)[0].splitlines()[2:]
  return {cells[0][2:]: cells[1:] for cells in (line.split(' | ') for line in table)}


def test_a_mono_mixer_is_centre_panned(evaluated, dirs):
  """synthetic_live has a designed placement: every mono system (RAW, IDEAL, the mono ALM-MR) is
  scored at the centre, pan error = mean |designed pan|, and summary.md has the Stereo section."""
  _, out = evaluated
  means = designed_pan_means(tiny_config(dirs))
  assert max(means.values()) > 0.05  # songs with channels off the centre: the check can fail
  rows = read_csv(os.path.join(out, 'metrics.csv'))
  for r in rows:
    assert float(r['pan_error']) == pytest.approx(means[r['song_id']], abs=1e-6), r
    assert math.isfinite(float(r['mr_stft_mid'])) and r['pan_plot'] == r['stereo_audio'] == ''
  sides = {r['song_id']: set() for r in rows}
  for r in rows:  # a centred mix has no side: every mono system has the same side error
    sides[r['song_id']].add(r['mr_stft_side'])
  assert all(len(v) == 1 for v in sides.values())
  with open(os.path.join(out, 'summary.md'), encoding='utf-8') as f:
    summary = f.read()
  table = stereo_section(summary)
  assert sorted(table) == ['ALM-MR', 'IDEAL', 'RAW'] and all(c[0] == 'centre' for c in table.values())
  assert 'No evaluated system pans' in summary and '- Pan error:' in summary
  assert not os.path.exists(os.path.join(out, 'pans'))  # no stereo-image plot of a mono mixer


def test_a_stereo_mixer_gets_the_stereo_section(dirs):
  """A mixer with pans (found by its capabilities): its stereo mix is scored against the designed
  placement, its pans plotted per segment, its stereo mix on the listening page; paired figures."""
  config = tiny_config(dirs)
  config.model.outputs = ('gain', 'pan')
  model = build_model(config)
  params = random_params(model, frames.FrameSpec.from_config(config.model))
  params['pan_mlp'] = jax.tree.map(lambda x: 2.0 * x, params['pan_mlp'])  # pans off the centre
  workdir = os.path.join(dirs['work'], 'stereo')
  save_checkpoint(workdir, config, params)
  panner = systems.load_system('PANNER', workdir)
  assert panner.stereo and not systems.raw_system(config).stereo  # RAW: centred, whatever config
  c = tiny_config(dirs)
  c.data.bleed.enabled = False
  paths = run.evaluate([panner], c, 'test', os.path.join(dirs['out'], 'stereo'), progress=False)
  out = os.path.dirname(paths['metrics'])
  rows = read_csv(paths['metrics'])
  means = designed_pan_means(c)
  exs = {e.song_id: e for e in paths['examples']}
  panned = [r for r in rows if r['system'] == 'PANNER']
  assert len(panned) == len(exs) == 2
  for r in panned:
    ex = exs[r['song_id']]
    stereo_mix, _ = sf.read(os.path.join(out, r['stereo_audio']))
    assert stereo_mix.shape == (ex.audio.shape[1], 2)
    assert np.abs(stereo_mix[:, 0] - stereo_mix[:, 1]).max() > 1e-3  # not centred
    # Its pan error is its own pans' against the designed placement, not the centre's.
    out_ = panner.mix_stereo(ex.audio, np.ones(len(ex.audio), bool),
                             chunk_seconds=min(offline.DEFAULT_CHUNK_SECONDS, SEG))
    want = np.mean(np.abs(out_['pans'].mean(-1) - ex.ideal_pans))
    assert float(r['pan_error']) == pytest.approx(want, rel=1e-5)
    assert abs(float(r['pan_error']) - means[r['song_id']]) > 1e-3
    assert os.path.getsize(os.path.join(out, r['pan_plot'])) > 0
  by = {(r['system'], r['song_id']): r for r in rows}
  for song in exs:  # centred, RAW and IDEAL share the side error (none); IDEAL's mid is closer
    raw, ideal, own = by['RAW', song], by['IDEAL', song], by['PANNER', song]
    assert raw['mr_stft_side'] == ideal['mr_stft_side'] != own['mr_stft_side']
    assert float(ideal['mr_stft_mid']) < 0.5 * float(raw['mr_stft_mid'])
  with open(paths['summary'], encoding='utf-8') as f:
    summary = f.read()
  table = stereo_section(summary)
  assert table['PANNER'][0] == 'its own' and table['RAW'][0] == 'centre'
  assert '| PANNER | RAW | ' in summary and '| PANNER | IDEAL | ' in summary
  assert 'No evaluated system pans' not in summary
  parser = check_page(paths['index'])
  assert all(r['pan_plot'] in parser.links and r['stereo_audio'] in parser.links for r in panned)
  # tools/stereo_results.py, a caller of the same functions, reports the same figures.
  tool = runpy.run_path(os.path.join(os.path.dirname(__file__), '..', 'tools', 'stereo_results.py'))
  again = tool['measure_all']([panner], paths['examples'], examples.eval_data_config(c, 'test'))
  for r, mine in zip(panned, again):
    for m in metrics.STEREO_METRICS + ('mr_stft', 'balance_error_db'):
      assert float(r[m]) == pytest.approx(mine[m], rel=1e-6), m
  assert parser.tags.count('audio') == len(exs) * 5  # TARGET, TARGET (stereo), RAW, IDEAL, PANNER


@pytest.mark.slow
def test_console_automixer_from_its_config_file(dirs):
  """A parameter-free mixer is evaluated from its config file, like a checkpoint."""
  dugan = systems.load_system('DUGAN', os.path.join(os.path.dirname(__file__), '..', 'configs',
                                                    'dugan.py'))
  assert dugan.kind == 'causal' and dugan.step is None and not dugan.note
  _, rows = evaluate_whole_songs(dirs, [dugan], 'dugan')
  assert all(r['step'] == '' for r in rows)
  assert any(float(r['gain_change_db_per_s']) > 0 for r in rows if r['system'] == 'DUGAN')
