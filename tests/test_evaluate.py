"""Tests for alm_jax/evaluate.py and alm_jax/listening_page.py on the tiny synthetic dataset."""

import csv
import html.parser
import json
import math
import os
import shutil
import urllib.parse

from absl import flags
import jax
import numpy as np
import pytest

from alm_jax import evaluate
from alm_jax import listening_page
from alm_jax.data import bleed
from alm_jax.data import common
from alm_jax.data import pipeline
from conftest import load_config
from conftest import shrink_model

SEG = 2.0  # evaluation segment, s: > one F1 frame and the loss's largest FFT


# ---- pure helpers --------------------------------------------------------------------


def test_parse_checkpoints():
  assert evaluate.parse_checkpoints('A=/x, B-2=/y/z') == [('A', '/x'), ('B-2', '/y/z')]
  assert evaluate.parse_checkpoints('') == []
  for bad, match in (('/just/a/path', 'NAME=PATH'), ('A=', 'NAME=PATH'), ('raw=/x', 'reserved'),
                     ('Target=/x', 'reserved'), ('A b=/x,A_b=/y', 'clashes')):
    with pytest.raises(evaluate.EvaluationError, match=match):
      evaluate.parse_checkpoints(bad)


def test_summarize_handles_infinite_and_missing_values():
  assert evaluate.summarize([1.0, 3.0], '{:.2f}') == '2.00 ± 1.00'
  # An identical mix has SI-SDR +inf: it is counted, not averaged into +inf.
  assert evaluate.summarize([1.0, 3.0, math.inf], '{:.2f}') == '2.00 ± 1.00 (1× +inf)'
  assert evaluate.summarize([math.inf, math.inf], '{:.2f}') == '2× +inf'
  assert evaluate.summarize([math.nan, math.nan], '{:.2f}') == 'n/a'
  assert evaluate.summarize([-1.0, math.nan], '{:+.2f}') == '-1.00 ± 0.00 (1× n/a)'


def test_segment_metrics_of_a_perfect_mix():
  rng = np.random.default_rng(0)
  target = (0.1 * rng.standard_normal(44100)).astype(np.float32)
  gains = np.full((3, 20), 0.5)
  row = evaluate.segment_metrics(target, target, gains, 0.05, np.full(3, 2.0), 44100)
  assert row['si_sdr_db'] == math.inf and evaluate._format_value(row['si_sdr_db']) == 'inf'
  assert row['loudness_diff_lu'] == 0 and row['gain_smoothness_db_per_s'] == 0
  assert row['balance_error_db'] == 0 and row['clipping_fraction'] == 0
  assert math.isnan(evaluate.segment_metrics(target, target, gains, 0.05, None, 44100)
                    ['balance_error_db'])
  assert evaluate._format_value(math.nan) == ''


def test_input_target_gains():
  # A track at 2x in the target, reaching the input 6.02 dB up: gain 1; one at 1x, 20 dB down: 10.
  np.testing.assert_allclose(evaluate.input_target_gains([2.0, 1.0], [20 * math.log10(2), -20.0]),
                             [1.0, 10.0])
  assert evaluate.input_target_gains([2.0, math.nan], [0.0, 0.0]) is None  # MedleyDB


def test_segment_span_labels():
  ex = evaluate.Example('s', 1, np.zeros((2, 20 * common.SAMPLE_RATE)), None, -20.0, [], None,
                        start_seconds=59.96)
  assert ex.span == '1:00.0–1:20.0'
  assert evaluate._clock(0.0) == '0:00.0' and evaluate._clock(125.34) == '2:05.3'


def test_severity_bins():
  labels, index = evaluate.severity_bins([-29.0, -7.0, -18.5, bleed.BLEED_OFF_DB], (-30, -6), 4)
  assert labels == ['no bleed', '-30..-24 dB', '-24..-18 dB', '-18..-12 dB', '-12..-6 dB']
  assert index.tolist() == [1, 4, 2, 0]


class StrictHTML(html.parser.HTMLParser):
  """Checks nesting (every non-void element closed in order) and collects links."""
  VOID = {'meta', 'br', 'img', 'link', 'input', 'source', 'hr'}

  def __init__(self):
    super().__init__()
    self.stack, self.links, self.errors, self.tags = [], [], [], []

  def handle_starttag(self, tag, attrs):
    self.tags.append(tag)
    if tag not in self.VOID:
      self.stack.append(tag)
    # As a browser resolves them from disk: percent-decoded paths.
    self.links += [urllib.parse.unquote(v) for k, v in attrs if k in ('src', 'href')]

  def handle_endtag(self, tag):
    if not self.stack or self.stack.pop() != tag:
      self.errors.append(f'unexpected </{tag}>')


def check_page(path):
  """Parses the page; returns its parser after checking it is well formed with live links."""
  with open(path, encoding='utf-8') as f:
    text = f.read()
  assert text.startswith('<!DOCTYPE html>')
  parser = StrictHTML()
  parser.feed(text)
  parser.close()
  assert not parser.errors and not parser.stack, (parser.errors, parser.stack)
  folder = os.path.dirname(path)
  for link in parser.links:
    assert not os.path.isabs(link) and '://' not in link, link
    assert os.path.isfile(os.path.join(folder, link)), f'dead link {link}'
  return parser


def test_listening_page_writes_only_live_relative_links(tmp_path):
  (tmp_path / 'a b').mkdir()
  (tmp_path / 'a b' / 'x.wav').write_bytes(b'RIFF')
  rows = [listening_page.Row('song <1>', ['segment 0'],
                             [listening_page.Cell('a b/x.wav'), None])]
  page = listening_page.render('T & t', ['TARGET', 'RAW'], rows, notes=['it\'s "fine"'])
  path = listening_page.write(tmp_path / 'index.html', page)
  parser = check_page(path)
  assert parser.tags.count('audio') == 1 and 'song &lt;1&gt;' in page
  with pytest.raises(FileNotFoundError, match='missing.wav'):
    listening_page.write(tmp_path / 'other.html', listening_page.render(
        't', ['A'], [listening_page.Row('s', [], [listening_page.Cell('missing.wav')])]))
  with pytest.raises(ValueError, match='relative'):
    listening_page.render('t', ['A'], [listening_page.Row('s', [], [listening_page.Cell('/abs.wav')])])


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
  return evaluate.run(fv)


@pytest.fixture(scope='module')
def evaluated(dirs):
  """One training step, then the CLI on the test split with that checkpoint and RAW."""
  from alm_jax import train  # pylint: disable=g-import-not-at-top
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
  assert run_cli(f'--checkpoints=ALM-MR={workdir}', '--split=test', f'--output={out}') == 0
  return workdir, out


def read_csv(path):
  with open(path, newline='', encoding='utf-8') as f:
    return list(csv.DictReader(f))


def test_writes_every_output(evaluated, dirs):
  _, out = evaluated
  for name in evaluate.OUTPUT_FILES:
    assert os.path.getsize(os.path.join(out, name)) > 0, name
  rows = read_csv(os.path.join(out, 'metrics.csv'))
  songs = pipeline.load_songs(tiny_config(dirs), 'test')
  assert len(songs) == 2 and len(rows) == len(songs) * 2  # songs x (RAW, ALM-MR)
  assert sorted({r['system'] for r in rows}) == ['ALM-MR', 'RAW']
  assert {r['song_id'] for r in rows} == {s.song_id for s in songs}
  lengths = {s.song_id: s.num_samples / common.SAMPLE_RATE for s in songs}
  for r in rows:
    for m, _, _ in evaluate.METRICS:
      assert math.isfinite(float(r[m])), (m, r)  # balance too: synthetic_live knows its levels
    assert 0 <= float(r['start_seconds']) <= lengths[r['song_id']] - SEG + 1e-4
    assert -30 <= float(r['bleed_severity_db']) <= -6
    assert float(r['seconds']) == pytest.approx(SEG)
    assert float(r['clipping_fraction']) >= 0 and float(r['mr_stft']) > 0
  raw = [r for r in rows if r['system'] == 'RAW']
  alm = [r for r in rows if r['system'] == 'ALM-MR']
  assert all(float(r['gain_smoothness_db_per_s']) == 0 for r in raw)  # constant gains
  assert all(r['step'] == '1' for r in alm)
  # Both systems heard the same segment: same severity per song.
  assert {r['song_id']: r['bleed_severity_db'] for r in raw} == \
      {r['song_id']: r['bleed_severity_db'] for r in alm}
  with open(os.path.join(out, 'summary.md'), encoding='utf-8') as f:
    summary = f.read()
  table = [line for line in summary.splitlines() if line.startswith('| RAW') or
           line.startswith('| ALM-MR')]
  assert len(table) == 4  # the main table and the bleed table
  assert ' ± ' in table[0]


def test_listening_page_is_well_formed(evaluated):
  _, out = evaluated
  parser = check_page(os.path.join(out, 'index.html'))
  rows = read_csv(os.path.join(out, 'metrics.csv'))
  # One player per segment for TARGET, RAW and the checkpoint; one gain plot per system.
  assert parser.tags.count('audio') == 3 * len(rows) // 2
  assert parser.tags.count('img') == len(rows)
  with open(os.path.join(out, 'index.html'), encoding='utf-8') as f:
    page = f.read()
  for r in rows:
    assert r['audio'] in parser.links and r['gain_plot'] in parser.links
    # Segments are labelled with where they lie in the song.
    assert f"segment {r['segment']}: {evaluate._clock(float(r['start_seconds']))}–" in page
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
  with pytest.raises(evaluate.CheckpointError, match='BAD=' + bad):
    evaluate.load_system('BAD', bad)
  assert run_cli(f'--checkpoints=BAD={bad}', f'--output={out}_bad') == 2
  assert f'BAD={bad}' in capsys.readouterr().err
  with pytest.raises(evaluate.CheckpointError, match='NONE='):
    evaluate.load_system('NONE', os.path.join(dirs['work'], 'nothing_here'))


def test_forces_zero_latency(evaluated, dirs):
  workdir, _ = evaluated
  noncausal = os.path.join(dirs['work'], 'noncausal')
  shutil.copytree(workdir, noncausal)
  with open(os.path.join(noncausal, 'config.json')) as f:
    saved = json.load(f)
  saved['model']['zero_latency'] = False
  with open(os.path.join(noncausal, 'config.json'), 'w') as f:
    json.dump(saved, f)
  system = evaluate.load_system('NC', noncausal)
  assert system.kind == 'causal' and system.config.model.zero_latency
  assert 'forced' in system.note


def test_whole_songs_without_bleed(dirs):
  """RAW only, whole songs, no bleed: lengths are the songs', the balance still known."""
  c = tiny_config(dirs)
  c.data.bleed.enabled = False
  out = os.path.join(dirs['out'], 'whole')
  paths = evaluate.evaluate([], c, 'test', out, segment_seconds=0, progress=False)
  rows = read_csv(paths['metrics'])
  songs = {s.song_id: s for s in pipeline.load_songs(c, 'test')}
  assert len(rows) == len(songs)
  for r in rows:
    assert round(float(r['seconds']) * common.SAMPLE_RATE) == songs[r['song_id']].num_samples
    assert float(r['bleed_severity_db']) == bleed.BLEED_OFF_DB
    assert math.isfinite(float(r['balance_error_db']))
  check_page(paths['index'])
  with open(paths['summary'], encoding='utf-8') as f:
    assert 'no bleed' in f.read()


def test_target_gains_rebuild_the_target(dirs):
  """The batches' metadata names each shuffled channel and its level: sum of g * input = target."""
  c = evaluate.eval_data_config(tiny_config(dirs), 'test', segment_seconds=1.0, segments_per_song=2)
  c.data.bleed.enabled = False
  examples = evaluate.load_examples(c, 'test')
  assert any(ex.segment == 1 for ex in examples)
  starts = [(ex.song_id, round(ex.start_seconds)) for ex in examples]
  assert len(set(starts)) == len(starts)  # each window of a song starts elsewhere
  songs = {s.song_id: s for s in pipeline.load_songs(c, 'test')}
  for ex in examples:
    instruments = sorted(name.split(': ', 1)[1] for name in ex.channel_names)
    assert instruments == sorted(songs[ex.song_id].instruments)
    # 1 s windows start on whole seconds.
    assert ex.start_seconds == pytest.approx(round(ex.start_seconds), abs=1e-5)
    assert ex.target_gains is not None
    rebuilt = ex.target_gains @ ex.audio.astype(np.float64)
    np.testing.assert_allclose(rebuilt, ex.target, atol=2e-3 * np.abs(ex.target).max())


@pytest.mark.slow
def test_dmc_og_mixes_whole_segments():
  """DMC-OG as published: one gain per channel per training segment, any input length."""
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from alm_jax.models import build_model  # pylint: disable=g-import-not-at-top
  cfg = shrink_model(load_config('dmc_og'))
  cfg.data.segment_seconds = 2.0  # two F2 frames of 975 ms per segment
  model = build_model(cfg)
  f2 = 42998
  c, n = 3, int(2.5 * f2)  # one whole segment, then half a frame
  params = jax.jit(lambda r: model.init(r, jnp.zeros((1, 8, f2)), jnp.ones((1, 8), bool)))(
      jax.random.key(0, impl='rbg'))['params']
  system = evaluate.System('DMC-OG', 'per_segment', cfg, params)
  audio = np.random.default_rng(0).standard_normal((c, n)).astype(np.float32) * 0.1
  example = evaluate.Example('song', 0, audio, audio.sum(0), -20.0, ['a', 'b', 'c'], None)
  mixers = evaluate.Mixers([system], cfg, chunk_seconds=2.0)
  mix, gains = mixers(system, example)
  assert mix.shape == (n,) and gains.shape == (c, 3)
  np.testing.assert_allclose(gains[:, 0], gains[:, 1])  # constant within the segment
  assert np.all(gains[:, 2] != gains[:, 0])  # the next segment has its own gains
  applied = np.repeat(gains, f2, axis=-1)[:, :n]
  np.testing.assert_allclose(mix, (applied * audio).sum(0), rtol=1e-4, atol=1e-5)
  assert mixers.frame_seconds(system) == pytest.approx(f2 / 44100)
