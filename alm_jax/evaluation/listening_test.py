"""A blind listening test as a static page: neutral letters, MUSHRA sliders or a ranking, JSON answers.

`write` turns an evaluation's mixes into DIR/listening_test/ (index.html and
the audio under neutral names, so nothing on the page or in its links names a
system) and DIR/listening_test_key.json (which letter is which system, kept
outside the folder handed to listeners). Every trial presents its systems, the
hidden reference (the target mix) and an anchor (the target low-passed at
3.5 kHz, ITU-R BS.1534-3) in a random order drawn from the seed. Listeners
rate each item 0-100 (MUSHRA) or rank them, and download their answers as
JSON, which `listening_results` aggregates (docs/evaluation.md).
"""

import dataclasses
import hashlib
import html
import json
import os
import shutil
import string
from typing import Sequence

import numpy as np
from scipy import signal as sps

from alm_jax.evaluation import listening_page

MODES = ('mushra', 'ranking')
HIDDEN_REFERENCE = 'TARGET'
ANCHOR = 'ANCHOR'
ANCHOR_CUTOFF_HZ = 3500.0
FOLDER = 'listening_test'
KEY_FILE = 'listening_test_key.json'

_STYLE = """
body { font-family: system-ui, sans-serif; margin: 1.5em; color: #222; max-width: 62em; }
section.trial { border: 1px solid #ccc; padding: 0.6em 1em; margin: 1em 0; }
table { border-collapse: collapse; }
td { padding: 0.25em 0.6em; vertical-align: middle; }
td.letter { font-weight: bold; font-size: 1.2em; }
input[type=range] { width: 18em; }
audio { width: 300px; }
#status { color: #a00; }
"""

_SCRIPT = """
const cfg = JSON.parse(document.getElementById('test-config').textContent);
const touched = new Set();
for (const el of document.querySelectorAll('input[type=range]')) {
  const shown = el.parentElement.querySelector('output');
  el.addEventListener('input', () => {
    shown.textContent = el.value;
    touched.add(el.dataset.trial + '/' + el.dataset.item);
  });
}
function collect() {
  const problems = [];
  const listener = document.getElementById('listener').value.trim();
  if (!listener) problems.push('enter your name or initials');
  const trials = cfg.trials.map((t) => {
    const ratings = {};
    for (const item of t.items) {
      const el = document.querySelector(`[data-trial="${t.id}"][data-item="${item}"]`);
      if (cfg.mode === 'mushra' && !touched.has(t.id + '/' + item)) {
        problems.push(`${t.title}: rate ${item}`);
      }
      if (cfg.mode === 'ranking' && el.value === '') problems.push(`${t.title}: rank ${item}`);
      ratings[item] = Number(el.value);
    }
    if (cfg.mode === 'ranking' && new Set(Object.values(ratings)).size !== t.items.length) {
      problems.push(`${t.title}: give each rank once`);
    }
    return {id: t.id, ratings: ratings};
  });
  return {problems: problems, answers: {test_id: cfg.test_id, mode: cfg.mode, listener: listener,
                                        submitted: new Date().toISOString(), trials: trials}};
}
document.getElementById('download').addEventListener('click', () => {
  const result = collect();
  const status = document.getElementById('status');
  if (result.problems.length) {
    status.textContent = 'Not yet: ' + result.problems.slice(0, 4).join('; ') +
        (result.problems.length > 4 ? ` (and ${result.problems.length - 4} more)` : '') + '.';
    return;
  }
  status.textContent = '';
  const blob = new Blob([JSON.stringify(result.answers, null, 1)], {type: 'application/json'});
  const link = document.createElement('a');
  link.href = URL.createObjectURL(blob);
  const who = result.answers.listener.replace(/[^A-Za-z0-9_-]+/g, '_');
  link.download = `listening_${who}_${cfg.test_id}.json`;
  document.body.appendChild(link);
  link.click();
  link.remove();
});
"""

_INSTRUCTIONS = {
    'mushra': ('Each trial has a reference (the target mix) and several versions under letters in '
               'a random order; one of them is the reference itself, hidden. Listen to each and '
               'rate how close it is to the reference: 0-20 bad, 20-40 poor, 40-60 fair, 60-80 '
               'good, 80-100 excellent (100: indistinguishable; rate the hidden reference 100). '
               'Move every slider.'),
    'ranking': ('Each trial has a reference (the target mix) and several versions under letters in '
                'a random order; one of them is the reference itself, hidden. Rank the versions '
                'from 1 (closest to the reference) to the last (furthest), each rank once.'),
}


@dataclasses.dataclass(frozen=True)
class TrialAudio:
  """One segment's material for a trial.

  Attributes:
    title: e.g. the song and the segment's span (shown only as "Trial n"; kept in the key).
    target: float [samples], the target mix (the reference and the anchor are made from it).
    mixes: {system name: wav path relative to the evaluation folder}.
  """
  title: str
  target: np.ndarray
  mixes: dict


def low_pass_anchor(target, rate: int) -> np.ndarray:
  """The BS.1534-3 low anchor: the reference low-passed at 3.5 kHz (zero phase), float32."""
  sos = sps.butter(8, ANCHOR_CUTOFF_HZ, fs=rate, output='sos')
  return sps.sosfiltfilt(sos, np.asarray(target, np.float64)).astype(np.float32)


def write(output: str, trials: Sequence[TrialAudio], rate: int, *, mode: str = 'mushra',
          seed: int = 0, title: str = 'Listening test') -> dict:
  """Writes the blind test for `trials` into `output` (module docstring).

  Returns:
    {'page': path of listening_test/index.html, 'key': path of the key}.
  Raises:
    ValueError: an unknown mode, no trials, or a system named like the hidden
      reference or the anchor.
  """
  if mode not in MODES:
    raise ValueError(f'--listening_test_mode must be one of {MODES}, got {mode!r}.')
  if not trials:
    raise ValueError('A listening test needs at least one segment.')
  for t in trials:
    clash = {HIDDEN_REFERENCE, ANCHOR} & set(t.mixes)
    if clash:
      raise ValueError(f'System names {sorted(clash)} are reserved by the listening test (hidden '
                       'reference and anchor); rename those checkpoints.')
  rng = np.random.default_rng([int(seed), 0x115])
  folder = os.path.join(output, FOLDER)
  shutil.rmtree(folder, ignore_errors=True)
  key_trials, page_trials = [], []
  for i, t in enumerate(trials):
    trial_id = f't{i + 1:02d}'
    audio_dir = os.path.join(folder, 'audio', trial_id)
    os.makedirs(audio_dir)
    names = list(t.mixes) + [HIDDEN_REFERENCE, ANCHOR]
    order = [names[j] for j in rng.permutation(len(names))]
    letters = list(string.ascii_uppercase[:len(order)])
    listening_page.write_wav(os.path.join(audio_dir, 'reference.wav'), t.target, rate)
    for letter, name in zip(letters, order):
      path = os.path.join(audio_dir, f'{letter}.wav')
      if name == HIDDEN_REFERENCE:
        listening_page.write_wav(path, t.target, rate)
      elif name == ANCHOR:
        listening_page.write_wav(path, low_pass_anchor(t.target, rate), rate)
      else:
        shutil.copyfile(os.path.join(output, t.mixes[name]), path)
    key_trials.append({'id': trial_id, 'segment': t.title, 'items': dict(zip(letters, order))})
    page_trials.append({'id': trial_id, 'title': f'Trial {i + 1}', 'items': letters})
  test_id = hashlib.sha1(json.dumps(key_trials, sort_keys=True).encode()).hexdigest()[:12]
  key = {'test_id': test_id, 'mode': mode, 'seed': int(seed), 'trials': key_trials,
         'hidden_reference': HIDDEN_REFERENCE, 'anchor': f'{ANCHOR} ({ANCHOR_CUTOFF_HZ:g} Hz low-pass)'}
  key_path = os.path.join(output, KEY_FILE)
  with open(key_path, 'w', encoding='utf-8') as f:
    json.dump(key, f, indent=1)
  page = render(title, {'test_id': test_id, 'mode': mode, 'trials': page_trials})
  page_path = listening_page.write(os.path.join(folder, 'index.html'), page)
  return {'page': page_path, 'key': key_path}


def render(title: str, config: dict) -> str:
  """The page (HTML5, no external resources) for config {'test_id', 'mode', 'trials'}."""
  esc = html.escape
  mode = config['mode']
  out = ['<!DOCTYPE html>', '<html lang="en">', '<head>', '<meta charset="utf-8">',
         f'<title>{esc(title)}</title>', f'<style>{_STYLE}</style>', '</head>', '<body>',
         f'<h1>{esc(title)}</h1>', f'<p>{esc(_INSTRUCTIONS[mode])}</p>',
         '<p><label>Your name or initials: <input id="listener" type="text" '
         'autocomplete="off"></label></p>']
  for t in config['trials']:
    tid = esc(t['id'], quote=True)
    out += [f'<section class="trial" id="{tid}">', f'<h2>{esc(t["title"])}</h2>',
            f'<p>Reference: <audio controls preload="none" src="audio/{tid}/reference.wav">'
            '</audio></p>', '<table>']
    for item in t['items']:
      attrs = f'data-trial="{tid}" data-item="{esc(item, quote=True)}"'
      if mode == 'mushra':
        control = (f'<input type="range" min="0" max="100" step="1" value="50" {attrs} '
                   f'aria-label="score of {esc(item, quote=True)}"> <output>50</output>')
      else:
        options = ''.join(f'<option value="{r}">{r}</option>'
                          for r in range(1, len(t['items']) + 1))
        control = (f'<select {attrs} aria-label="rank of {esc(item, quote=True)}">'
                   f'<option value="">rank</option>{options}</select>')
      out.append(f'<tr><td class="letter">{esc(item)}</td><td><audio controls preload="none" '
                 f'src="audio/{tid}/{esc(item, quote=True)}.wav"></audio></td>'
                 f'<td>{control}</td></tr>')
    out += ['</table>', '</section>']
  config_json = json.dumps(config).replace('</', '<\\/')
  out += ['<p><button id="download" type="button">Download answers (JSON)</button></p>',
          '<p id="status"></p>',
          f'<script type="application/json" id="test-config">{config_json}</script>',
          f'<script>{_SCRIPT}</script>', '</body>', '</html>', '']
  return '\n'.join(out)
