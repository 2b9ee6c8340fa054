"""Tests for the blind listening test: alm_jax/evaluation/listening_test.py and listening_results.py.

The page is also driven in real headless Chromium (Debian's `chromium`, through
Playwright): rate, download the answers, aggregate them with the CLI.
"""

import json
import math
import os

from absl import flags
import numpy as np
import pytest
import soundfile as sf

from alm_jax import evaluate
from alm_jax.evaluation import listening_page
from alm_jax.evaluation import listening_results
from alm_jax.evaluation import listening_test
from test_evaluation_listening_page import check_page

RATE = 44100
SYSTEMS = ('ALM-MR', 'DMC-OG', 'RAW')
CHROMIUM = '/usr/bin/chromium'


def write_test(tmp_path, mode='mushra', trials=2):
  """An evaluation folder with `trials` segments mixed by SYSTEMS, and its listening test."""
  rng = np.random.default_rng(0)
  material = []
  for t in range(trials):
    target = (0.1 * rng.standard_normal(RATE // 2)).astype(np.float32)
    mixes = {}
    for name in SYSTEMS:
      rel = f'audio/seg{t}/{name}.wav'
      os.makedirs(tmp_path / f'audio/seg{t}', exist_ok=True)
      listening_page.write_wav(tmp_path / rel, target + 0.01 * len(mixes) * target, RATE)
      mixes[name] = rel
    material.append(listening_test.TrialAudio(f'song{t} segment 0 (0:00.0–0:00.5)', target, mixes))
  paths = listening_test.write(str(tmp_path), material, RATE, mode=mode, seed=3)
  with open(paths['key'], encoding='utf-8') as f:
    return paths, json.load(f), material


def answer(key, listener, score_of, mode='mushra'):
  """An answer file's content: each item scored (or ranked by) score_of(system)."""
  trials = []
  for t in key['trials']:
    scores = {letter: score_of(name) for letter, name in t['items'].items()}
    if mode == 'ranking':
      order = sorted(scores, key=lambda k: -scores[k])
      scores = {letter: order.index(letter) + 1 for letter in scores}
    trials.append({'id': t['id'], 'ratings': scores})
  return {'test_id': key['test_id'], 'mode': mode, 'listener': listener, 'trials': trials}


SCORES = {'TARGET': 100, 'ALM-MR': 80, 'DMC-OG': 60, 'RAW': 40, 'ANCHOR': 20}


def test_page_is_blind_with_hidden_reference_and_anchor(tmp_path):
  paths, key, material = write_test(tmp_path, trials=3)
  check_page(paths['page'])  # well formed, every link live and relative
  folder = os.path.dirname(paths['page'])
  assert os.path.dirname(paths['key']) == str(tmp_path)  # the key is not handed out
  with open(paths['page'], encoding='utf-8') as f:
    page = f.read()
  names = [os.path.join(d, n) for d, _, files in os.walk(folder) for n in files]
  for system in SYSTEMS + ('TARGET', 'ANCHOR', 'song0'):
    assert system not in page and not any(system in n for n in names), system
  orders = []
  for t, m in zip(key['trials'], material):
    assert sorted(t['items'].values()) == sorted(SYSTEMS + ('TARGET', 'ANCHOR'))
    assert sorted(t['items']) == list('ABCDE')
    orders.append([t['items'][k] for k in 'ABCDE'])
    letter = {v: k for k, v in t['items'].items()}
    hidden, _ = sf.read(os.path.join(folder, 'audio', t['id'], f'{letter["TARGET"]}.wav'))
    np.testing.assert_allclose(hidden, m.target, atol=1.0 / 32768)
    anchor, _ = sf.read(os.path.join(folder, 'audio', t['id'], f'{letter["ANCHOR"]}.wav'))
    spectrum = np.abs(np.fft.rfft(anchor)) ** 2
    high = np.fft.rfftfreq(anchor.size, 1 / RATE) > 5000
    assert spectrum[high].sum() < 1e-3 * spectrum.sum()  # low-passed at 3.5 kHz
  assert len({tuple(o) for o in orders}) > 1  # drawn per trial
  _, key2, _ = write_test(tmp_path / 'again', trials=3)
  assert key2['trials'] == key['trials']  # reproducible from the seed
  with pytest.raises(ValueError, match='reserved'):
    listening_test.write(str(tmp_path), [listening_test.TrialAudio('x', material[0].target,
                                                                   {'ANCHOR': 'a.wav'})], RATE)


@pytest.mark.parametrize('mode', listening_test.MODES)
def test_aggregates_answers_with_confidence_intervals(tmp_path, mode):
  _, key, _ = write_test(tmp_path, mode)
  answers = tmp_path / 'answers'
  answers.mkdir()
  for i in range(3):
    jitter = {'TARGET': 0, 'ALM-MR': 2 * i, 'DMC-OG': -3 * i, 'RAW': i, 'ANCHOR': 0}
    content = answer(key, f'L{i}', lambda s: SCORES[s] + jitter[s], mode)
    (answers / f'l{i}.json').write_text(json.dumps(content))
  # A listener who does not find the hidden reference (BS.1534-3 post-screening).
  careless = answer(key, 'careless', lambda s: 100 - SCORES[s], mode)
  (answers / 'careless.json').write_text(json.dumps(careless))
  written = listening_results.write(str(tmp_path), str(answers))
  rows = written['rows']
  assert [r['system'].split(' ')[0] for r in rows] == ['TARGET', 'ALM-MR', 'DMC-OG', 'RAW',
                                                        'ANCHOR']
  with open(written['table'], encoding='utf-8') as f:
    table = f.read()
  if mode == 'mushra':
    assert 'Left out by post-screening: careless' in table
    alm = rows[1]
    assert alm['n'] == 3 * len(key['trials']) and alm['mean'] == pytest.approx(82.0)
    scores = np.repeat([80.0, 82.0, 84.0], len(key['trials']))
    half = 2.5706 * scores.std(ddof=1) / math.sqrt(scores.size)  # t(0.975, 5)
    assert alm['ci95'] == pytest.approx(half, rel=1e-3)
    assert rows[0]['ci95'] == 0.0  # every listener rated the hidden reference 100
  else:
    # The careless listener's reversed ranks count: TARGET has mean rank (3 * 1 + 5) / 4.
    assert rows[0]['mean'] == pytest.approx(2.0) and rows[0]['n'] == 4 * len(key['trials'])
  assert '| 1 | TARGET (hidden reference) |' in table


def test_refuses_answers_of_another_test(tmp_path):
  _, key, _ = write_test(tmp_path, 'ranking')
  answers = tmp_path / 'answers'
  answers.mkdir()
  good = answer(key, 'L', lambda s: SCORES[s], 'ranking')
  (answers / 'a.json').write_text(json.dumps({**good, 'test_id': 'other'}))
  with pytest.raises(listening_results.ListeningResultsError, match='a.json.*other'):
    listening_results.write(str(tmp_path), str(answers))
  bad = json.loads(json.dumps(good))
  bad['trials'][0]['ratings']['A'] = bad['trials'][0]['ratings']['B']
  (answers / 'a.json').write_text(json.dumps(bad))
  with pytest.raises(listening_results.ListeningResultsError, match='each of 1..5 once'):
    listening_results.write(str(tmp_path), str(answers))
  empty = tmp_path / 'empty'
  empty.mkdir()
  with pytest.raises(listening_results.ListeningResultsError, match='no .json'):
    listening_results.write(str(tmp_path), str(empty))
  with pytest.raises(listening_results.ListeningResultsError, match='listening_test_key'):
    listening_results.write(str(empty), str(answers))


def run_cli(*args):
  fv = flags.FlagValues()
  evaluate.define_flags(fv)
  fv(['evaluate'] + list(args))
  return evaluate.run(fv)


def _browser():
  """Playwright's sync API and Debian's Chromium, or a skip saying which is missing."""
  if not os.path.exists(CHROMIUM):
    pytest.skip(f'{CHROMIUM} is absent (apt-get install chromium)')
  playwright = pytest.importorskip('playwright.sync_api', reason='pip install -e ".[test]"')
  return playwright.sync_playwright


def test_in_headless_chromium(tmp_path):
  """For each mode: load the page from disk, refuse an incomplete answer, rate, download,
  aggregate with the CLI (one browser for both)."""
  sync_playwright = _browser()
  with sync_playwright() as p:
    browser = p.chromium.launch(executable_path=CHROMIUM, args=[
        '--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
        '--disable-component-update', '--disable-sync', '--no-first-run'])
    try:
      for mode in listening_test.MODES:
        _rate_in_browser(browser, tmp_path / mode, mode)
    finally:
      browser.close()


def _rate_in_browser(browser, folder, mode):
  folder.mkdir()
  paths, key, _ = write_test(folder, mode)
  answers = folder / 'answers'
  answers.mkdir()
  page = browser.new_page(accept_downloads=True)
  errors = []
  page.on('pageerror', lambda e: errors.append(str(e)))
  page.goto('file://' + os.path.abspath(paths['page']))
  page.click('#download')
  assert 'Not yet' in page.inner_text('#status')  # nothing rated, no name
  page.fill('#listener', 'Ana B')
  for t in key['trials']:
    for letter, name in t['items'].items():
      control = page.locator(f'[data-trial="{t["id"]}"][data-item="{letter}"]')
      if mode == 'mushra':
        control.fill(str(SCORES[name]))
      else:
        control.select_option(str(sorted(SCORES, key=lambda s: -SCORES[s]).index(name) + 1))
  with page.expect_download() as download:
    page.click('#download')
  name = f'listening_Ana_B_{key["test_id"]}.json'
  assert download.value.suggested_filename == name
  download.value.save_as(answers / name)
  assert page.inner_text('#status') == '' and not errors, errors
  page.close()
  saved = json.loads((answers / name).read_text())
  assert saved['listener'] == 'Ana B' and saved['mode'] == mode
  assert run_cli(f'--listening_results={answers}', f'--output={folder}') == 0
  with open(folder / 'listening_results.csv', encoding='utf-8') as f:
    table = f.read()
  expected = [80.0, 60.0, 40.0] if mode == 'mushra' else [2.0, 3.0, 4.0]
  for system, mean in zip(('ALM-MR', 'DMC-OG', 'RAW'), expected):
    assert f',{system},{len(key["trials"])},{mean:g},' in table, table
