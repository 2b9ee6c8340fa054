"""The suite on a machine without the optional parts: every test collects, and skips rather than errors.

A child pytest runs with a `sitecustomize` that hides the optional Python packages (the ONNX
extra, torch, librosa, playwright, pyfluidsynth; JACK-Client fails as it does without libjack,
with OSError) and a PATH holding only the Python interpreter (no jackd, chromium, fluidsynth).
"""

import os
import pathlib
import re
import subprocess
import sys
import textwrap

import pytest

REPO = pathlib.Path(__file__).resolve().parents[1]

# Optional Python packages -> how their absence shows (the exception a bare machine raises).
HIDDEN = {
    'onnx': 'ImportError', 'onnxruntime': 'ImportError', 'onnx_ir': 'ImportError',
    'jax2onnx': 'ImportError', 'torch': 'ImportError', 'torchvggish': 'ImportError',
    'librosa': 'ImportError', 'playwright': 'ImportError',
    'fluidsynth': 'ImportError',  # pyfluidsynth without libfluidsynth
    'jack': 'OSError',  # JACK-Client without libjack: "JACK library not found"
}

SITECUSTOMIZE = textwrap.dedent('''
    import importlib.abc
    import os
    import sys

    HIDDEN = {hidden!r}

    class _Hide(importlib.abc.MetaPathFinder):
      def find_spec(self, name, path=None, target=None):
        error = HIDDEN.get(name.split('.')[0])
        if error == 'OSError':
          raise OSError(f'{{name}}: library not found (hidden by tests/test_collection.py)')
        if error:
          raise ModuleNotFoundError(f'No module named {{name!r}} (hidden by tests/test_collection.py)',
                                    name=name)
        return None

    sys.meta_path.insert(0, _Hide())
    # The soundfonts: rendered_live's table points at files that do not exist.
    _soundfonts = os.environ.get('ALM_TEST_HIDE_SOUNDFONTS')
    if _soundfonts:
      import dataclasses
      from alm_jax.data import rendered_synth
      for _k, _sf in list(rendered_synth.SOUNDFONTS.items()):
        rendered_synth.SOUNDFONTS[_k] = dataclasses.replace(
            _sf, path=os.path.join(_soundfonts, os.path.basename(_sf.path)))
''')


def _bare_env(tmp_path, hide_soundfonts: bool = False) -> dict:
  """Environment of a child Python that sees none of the optional parts."""
  site = tmp_path / 'site'
  site.mkdir()
  (site / 'sitecustomize.py').write_text(SITECUSTOMIZE.format(hidden=HIDDEN))
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  (bin_dir / 'python').symlink_to(sys.executable)
  env = dict(os.environ)
  env['PYTHONPATH'] = os.pathsep.join([str(site), str(REPO)] + (
      [env['PYTHONPATH']] if env.get('PYTHONPATH') else []))
  env['PATH'] = str(bin_dir)
  env['JAX_PLATFORMS'] = 'cpu'
  if hide_soundfonts:
    env['ALM_TEST_HIDE_SOUNDFONTS'] = str(tmp_path / 'no_soundfonts')
  return env


def _pytest(env, *args, timeout=600):
  return subprocess.run([sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider',
                         '-o', 'addopts=', *args], cwd=REPO, env=env, capture_output=True,
                        text=True, timeout=timeout, check=False)


def test_the_blocker_hides_the_optional_parts(tmp_path):
  """The child really lacks them: otherwise the next test would prove nothing."""
  code = textwrap.dedent('''
      import shutil
      for name, error in %r.items():
        try:
          __import__(name)
        except (ImportError, OSError) as e:
          assert type(e).__name__ in ('ModuleNotFoundError', error), (name, e)
        else:
          raise SystemExit(f'{name} was importable')
      for tool in ('jackd', 'chromium', 'fluidsynth', 'gcc'):
        assert shutil.which(tool) is None, tool
      print('hidden')
  ''') % HIDDEN
  out = subprocess.run([sys.executable, '-c', code], env=_bare_env(tmp_path), cwd=REPO,
                       capture_output=True, text=True, timeout=120, check=False)
  assert out.returncode == 0 and 'hidden' in out.stdout, out.stdout + out.stderr


def test_every_test_collects_without_the_optional_parts(tmp_path):
  out = _pytest(_bare_env(tmp_path), '--collect-only', '-m', 'slow or not slow', 'tests')
  report = out.stdout + out.stderr
  # The summary line, wherever plugins' warnings put it: "N tests collected[, M errors] in T s".
  summary = re.findall(r'^\d+ tests? collected.*$', report, re.M)
  assert out.returncode == 0 and summary and 'error' not in summary[-1], report[-6000:]


def test_tests_of_missing_parts_skip_naming_the_install(tmp_path):
  """The ONNX extra's module and a rendered_live test, in one child run without them."""
  out = _pytest(_bare_env(tmp_path, hide_soundfonts=True), '-rs', '-n', '0',
                'tests/test_onnx_export.py', 'tests/test_rendered.py::test_no_bach_anywhere[tiny]')
  report = out.stdout + out.stderr
  assert out.returncode == 0 and '2 skipped' in report and 'passed' not in report, report[-4000:]
  assert 'pip install -e ".[onnx]"' in report, report[-4000:]  # each reason names its command
  assert 'apt-get install' in report and 'timgm6mb-soundfont' in report, report[-4000:]
