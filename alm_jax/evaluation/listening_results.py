"""Aggregates a blind listening test's JSON answers into a ranking table with confidence intervals.

The answers (one file per listener, downloaded from listening_test/index.html)
are matched to the key the test was written with (listening_test_key.json, by
its test id) and mapped from letters back to systems. MUSHRA answers are
post-screened as ITU-R BS.1534-3 recommends (a listener who rates the hidden
reference below 90 in more than 15 % of the trials is left out); each system's
score is the mean over the remaining (listener, trial) ratings with a 95 %
Student-t interval. Ranking answers give each system's mean rank (1 = best).
"""

import csv
import glob
import json
import math
import os
from typing import Sequence

import numpy as np
from scipy import stats

from alm_jax.evaluation import listening_test

SCREEN_REFERENCE_BELOW = 90.0
SCREEN_TRIAL_FRACTION = 0.15
RESULT_FILES = ('listening_results.md', 'listening_results.csv')


class ListeningResultsError(ValueError):
  """The answers cannot be aggregated as given; the message names the file and the fix."""


def load_key(output: str) -> dict:
  path = os.path.join(output, listening_test.KEY_FILE)
  if not os.path.isfile(path):
    raise ListeningResultsError(f'{path} does not exist: give --output the evaluation folder that '
                                '`evaluate --listening_test` wrote.')
  with open(path, encoding='utf-8') as f:
    return json.load(f)


def load_answers(folder: str, key: dict) -> list[dict]:
  """Every *.json answer file in `folder`, checked against `key`.

  Raises:
    ListeningResultsError: no answers, or a file that is not an answer of this
      test (another test id or mode, unknown trials or letters, a missing or
      out-of-range rating, ranks not a permutation); the message names the file.
  """
  files = sorted(glob.glob(os.path.join(folder, '*.json')))
  if not files:
    raise ListeningResultsError(f'--listening_results={folder} holds no .json answer files.')
  trials = {t['id']: t for t in key['trials']}
  answers = []
  for path in files:
    try:
      with open(path, encoding='utf-8') as f:
        answer = json.load(f)
      if answer.get('test_id') != key['test_id'] or answer.get('mode') != key['mode']:
        raise ValueError(f'it answers test {answer.get("test_id")!r} ({answer.get("mode")}), not '
                         f'{key["test_id"]!r} ({key["mode"]}) of this evaluation')
      given = {t['id']: t['ratings'] for t in answer['trials']}
      if set(given) != set(trials):
        raise ValueError(f'its trials {sorted(given)} are not the test\'s {sorted(trials)}')
      for tid, ratings in given.items():
        _check_ratings(ratings, trials[tid]['items'], key['mode'], tid)
    except (ValueError, KeyError, TypeError) as e:
      raise ListeningResultsError(f'{path} is not a valid answer file of this test: {e}.') from e
    answers.append(answer)
  return answers


def _check_ratings(ratings, items, mode, tid):
  if set(ratings) != set(items):
    raise ValueError(f'trial {tid} rates {sorted(ratings)}, the test has {sorted(items)}')
  values = [float(v) for v in ratings.values()]
  if mode == 'mushra' and not all(0.0 <= v <= 100.0 for v in values):
    raise ValueError(f'trial {tid} has scores outside 0..100')
  if mode == 'ranking' and sorted(values) != list(range(1, len(items) + 1)):
    raise ValueError(f'trial {tid} ranks {values}, not each of 1..{len(items)} once')


def screened_out(answers: Sequence[dict], key: dict) -> list[str]:
  """Listeners left out by the BS.1534-3 post-screening (MUSHRA only)."""
  if key['mode'] != 'mushra':
    return []
  out = []
  for answer in answers:
    low = 0
    for t in key['trials']:
      letter = next(k for k, v in t['items'].items() if v == listening_test.HIDDEN_REFERENCE)
      ratings = next(a['ratings'] for a in answer['trials'] if a['id'] == t['id'])
      low += float(ratings[letter]) < SCREEN_REFERENCE_BELOW
    if low > SCREEN_TRIAL_FRACTION * len(key['trials']):
      out.append(answer['listener'])
  return out


def aggregate(answers: Sequence[dict], key: dict, excluded: Sequence[str] = ()) -> list[dict]:
  """One row per system: n, mean, 95 % CI half-width, best first (highest score / lowest rank)."""
  values = {}
  trials = {t['id']: t['items'] for t in key['trials']}
  for answer in answers:
    if answer['listener'] in excluded:
      continue
    for t in answer['trials']:
      for letter, v in t['ratings'].items():
        values.setdefault(trials[t['id']][letter], []).append(float(v))
  rows = []
  for name, v in values.items():
    v = np.asarray(v)
    half = (float(stats.t.ppf(0.975, v.size - 1) * v.std(ddof=1) / math.sqrt(v.size))
            if v.size > 1 else math.nan)
    rows.append({'system': _label(name, key), 'n': int(v.size), 'mean': float(v.mean()),
                 'ci95': half})
  rows.sort(key=lambda r: -r['mean'] if key['mode'] == 'mushra' else r['mean'])
  return rows


def _label(name: str, key: dict) -> str:
  if name == listening_test.HIDDEN_REFERENCE:
    return f'{name} (hidden reference)'
  if name == listening_test.ANCHOR:
    return key.get('anchor', name)
  return name


def write(output: str, folder: str) -> dict:
  """Aggregates the answers in `folder` for the test in `output`; writes the results there.

  Returns:
    {'table': listening_results.md, 'csv': listening_results.csv, 'rows': the rows}.
  """
  key = load_key(output)
  answers = load_answers(folder, key)
  excluded = screened_out(answers, key)
  if len(excluded) == len(answers):
    excluded = []  # better a table with a warning than none
    screen_note = ('Post-screening would leave out every listener (each rated the hidden '
                   'reference below 90 too often), so nobody was left out: read with care.')
  else:
    screen_note = (f'Left out by post-screening: {", ".join(excluded)}.' if excluded else
                   'Post-screening left out nobody.')
  rows = aggregate(answers, key, excluded)
  what = 'Score (0-100)' if key['mode'] == 'mushra' else 'Mean rank (1 = best)'
  lines = [f'# Listening test {key["test_id"]} ({key["mode"]})', '',
           f'{len(answers) - len(excluded)} listeners ({len(answers)} answer files), '
           f'{len(key["trials"])} trials; mean and 95 % Student-t confidence interval over all '
           '(listener, trial) ratings.', '',
           f'| Rank | System | n | {what} | 95 % CI |', '|---|---|---|---|---|']
  for i, r in enumerate(rows):
    ci = 'n/a' if math.isnan(r['ci95']) else f'± {r["ci95"]:.1f}'
    lines.append(f'| {i + 1} | {r["system"]} | {r["n"]} | {r["mean"]:.1f} | {ci} |')
  lines += ['']
  if key['mode'] == 'mushra':
    lines += [f'{screen_note} (ITU-R BS.1534-3: hidden reference rated below '
              f'{SCREEN_REFERENCE_BELOW:g} in more than {SCREEN_TRIAL_FRACTION:.0%} of the '
              'trials.)', '']
  paths = {'table': os.path.join(output, RESULT_FILES[0]),
           'csv': os.path.join(output, RESULT_FILES[1])}
  with open(paths['table'], 'w', encoding='utf-8') as f:
    f.write('\n'.join(lines))
  with open(paths['csv'], 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f)
    writer.writerow(['rank', 'system', 'n', 'mean', 'ci95'])
    for i, r in enumerate(rows):
      writer.writerow([i + 1, r['system'], r['n'], f'{r["mean"]:.6g}',
                       '' if math.isnan(r['ci95']) else f'{r["ci95"]:.6g}'])
  return {**paths, 'rows': rows}
