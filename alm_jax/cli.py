"""What every alm_jax command line shares: a quiet console by default, and `--help` of its own flags.

Each entry point (`alm_jax.main`, `mix`, `export`, `evaluate`, `live`) starts
through `run` (or calls `quiet_console` first thing in its main). By default
the console shows alm_jax's own lines (INFO and above, as plain text), its
progress bars, and other code's warnings and errors; the checkpoint library's INFO chatter,
dataset deprecations, ONNX converter warnings and TensorFlow's C++ start-up
banners are dropped. `--verbosity=0` (or `-v 0`, or any value) brings every
library's lines back. `--help` prints the command's docstring and its own
flags, `--checkpoint` first, and exits 0 (`--helpfull`: every flag).
"""

import contextlib
import importlib.abc
import importlib.util
import logging as std_logging
import os
import re
import sys
import tempfile
import textwrap
from typing import Callable

from absl import app
from absl import flags
from absl import logging

# Libraries whose INFO and WARNING lines (checkpoint-library internals, dataset
# deprecations, ONNX converter notes) would bury the command's own output; their
# errors still show.
QUIET_LIBRARIES = ('orbax', 'tensorflow_datasets', 'etils', 'jax2onnx', 'onnx_ir', 'onnxscript')

# TensorFlow's C++ INFO lines (`I0000 00:00:... port.cc:153] oneDNN custom
# operations are on ...`) and absl's note before them: printed while TF is
# imported, before TF_CPP_MIN_LOG_LEVEL is honoured, so they are filtered from
# the file descriptor.
_CPP_INFO = re.compile(rb'^(I\d{4} [\d:.]+ +\d+ [^\]]+\] |'
                       rb'WARNING: All log messages before absl::InitializeLog\(\) is called)')
_BANNER_MODULES = ('tensorflow',)
HELP_ARGS = ('-h', '--help', '-?', '--helpshort')


class ConsoleFilter(std_logging.Filter):
  """Default console: alm_jax's lines, other code's warnings and errors, the noisy ones' errors."""

  def filter(self, record):
    path = record.pathname.replace(os.sep, '/')
    if '/alm_jax/' in path:
      return True
    if any(f'/{name}/' in path for name in QUIET_LIBRARIES):
      return record.levelno >= std_logging.ERROR
    return record.levelno >= std_logging.WARNING


class ConsoleFormatter(std_logging.Formatter):
  """A command's own lines as plain text; warnings and errors prefixed `WARNING:` / `ERROR:`.

  (Upper case: a command's final one-line failure is `error: ...`, printed, not logged.)
  """

  def format(self, record):
    text = super().format(record)
    if record.levelno >= std_logging.WARNING:
      return f'{record.levelname}: {text}'
    return text


@contextlib.contextmanager
def filtered_stderr(drop: re.Pattern = _CPP_INFO):
  """Within the block, lines written to file descriptor 2 that match `drop` are dropped.

  The rest is written back to stderr, in order, when the block ends. For C++
  libraries that print at import, where Python's logging cannot reach.
  """
  sys.stderr.flush()
  saved = os.dup(2)
  with tempfile.TemporaryFile() as captured:
    os.dup2(captured.fileno(), 2)
    try:
      yield
    finally:
      sys.stderr.flush()
      os.dup2(saved, 2)
      os.close(saved)
      captured.seek(0)
      kept = [line for line in captured.read().splitlines(keepends=True) if not drop.match(line)]
      if kept:
        os.write(2, b''.join(kept))


class _QuietImporter(importlib.abc.MetaPathFinder):
  """Imports the top-level modules `names` inside `filtered_stderr` (first import only)."""

  def __init__(self, names):
    self._names = set(names)

  def find_spec(self, fullname, path, target=None):
    del path, target
    if fullname not in self._names:
      return None
    self._names.discard(fullname)
    spec = importlib.util.find_spec(fullname)  # the ordinary finders: this one skips the name now
    if spec is None or spec.loader is None or not hasattr(spec.loader, 'exec_module'):
      return spec
    exec_module = spec.loader.exec_module

    def quiet_exec(module):
      with filtered_stderr():
        exec_module(module)

    spec.loader.exec_module = quiet_exec
    return spec


def verbosity_chosen(flag_values=flags.FLAGS, argv=None) -> bool:
  """True if the user gave --verbosity (-v) on the command line."""
  try:
    return flag_values['verbosity'].present > 0
  except (KeyError, flags.UnparsedFlagAccessError):
    argv = sys.argv[1:] if argv is None else argv
    return any(re.match(r'^--?(v|verbosity)(=|$)', a) for a in argv)


def quiet_console(flag_values=flags.FLAGS) -> bool:
  """Keeps library chatter off the console unless the user chose a --verbosity (-v); True if so.

  Call it first thing in a command's main (after flag parsing), before
  TensorFlow is imported. Shown: alm_jax's own lines, progress bars, every
  warning and error of other code; `--verbosity=0` (or -v 0, 1, ...) shows
  everything again.
  """
  if verbosity_chosen(flag_values):
    return False
  os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '1')  # TF's C++ INFO lines after it has started
  if not any(isinstance(f, _QuietImporter) for f in sys.meta_path):
    missing = [m for m in _BANNER_MODULES if m not in sys.modules]
    if missing:
      sys.meta_path.insert(0, _QuietImporter(missing))
  handler = logging.get_absl_handler()
  if not any(isinstance(f, ConsoleFilter) for f in handler.filters):
    handler.addFilter(ConsoleFilter())
    handler.setFormatter(ConsoleFormatter('%(message)s'))
  return True


def own_flags(flag_values, names) -> list:
  """The Flag objects named `names` (in order), `--checkpoint` first where there is one."""
  seen, ordered = set(), []
  for name in (['checkpoint'] if 'checkpoint' in names else []) + list(names):
    flag = flag_values[name]
    if id(flag) not in seen:
      seen.add(id(flag))
      ordered.append(flag)
  return ordered


def help_text(doc: str, flag_list, program: str) -> str:
  """`program`'s usage: the module docstring, then each flag with its help and default."""
  lines = [(doc or '').strip() or f'usage: {program} [flags]', '', 'flags:']
  for flag in flag_list:
    names = f'--{flag.name}' + (f' (-{flag.short_name})' if flag.short_name else '')
    if flag.boolean:
      names = f'--[no]{flag.name}'
    lines.append(f'  {names}:')
    text = ' '.join((flag.help or '').split())
    default = flag.default_as_str
    if default:
      text += f' (default: {default})'
    lines += textwrap.wrap(text, width=96, initial_indent='    ', subsequent_indent='    ')
  lines += ['', '--helpfull: every flag, including the libraries\'; --verbosity=0: their log '
            'lines too.']
  return '\n'.join(lines) + '\n'


def run(main: Callable, define_flags: Callable | None = None, *, doc: str | None = None,
        flag_values=flags.FLAGS, argv=None):
  """Defines the flags, answers --help, quiets the console and runs `main(argv)` under absl.

  Args:
    main: the command's main(argv) -> exit status.
    define_flags: define_flags(flag_values) of the command, or None when its
      flags are defined at import (then its own flags are those of its
      `__main__` module, and --checkpoint).
    doc: the text --help starts with (default: the __main__ module's docstring).
    flag_values: where the flags live.
    argv: the command line (default sys.argv).
  """
  argv = list(sys.argv if argv is None else argv)
  before = set(flag_values)
  if define_flags is not None:
    define_flags(flag_values)
  names = [n for n in flag_values if n not in before]
  main_module = flag_values.flags_by_module_dict().get(argv[0], [])
  names += [f.name for f in main_module if f.name not in names]
  if 'checkpoint' in flag_values and 'checkpoint' not in names:
    names.insert(0, 'checkpoint')
  args = argv[1:argv.index('--')] if '--' in argv else argv[1:]
  if any(a in HELP_ARGS for a in args):
    if doc is None:
      doc = getattr(sys.modules.get('__main__'), '__doc__', None)
    program = 'python -m ' + (getattr(sys.modules.get('__main__'), '__spec__', None).name
                              .removesuffix('.__main__')
                              if getattr(sys.modules.get('__main__'), '__spec__', None)
                              else os.path.basename(argv[0]))
    sys.stdout.write(help_text(doc, own_flags(flag_values, names), program))
    sys.exit(0)

  def quiet_main(args):
    quiet_console(flag_values)
    return main(args)

  app.run(quiet_main, argv=argv)
