"""Optional parts of the test machine: import them, or skip naming the command that installs them.

`tools/setup.sh --test` installs every one of them (README, "Quick start").
"""

import importlib

import pytest

SETUP = 'tools/setup.sh --test'


def import_or_skip(module: str, install: str):
  """`module`, or a skip (module level too) saying how to install it.

  Unlike pytest.importorskip, an OSError counts as absent: JACK-Client raises it
  at import when libjack (Debian jackd2) is missing.
  """
  try:
    return importlib.import_module(module)
  except (ImportError, OSError) as e:
    pytest.skip(f'{module} is unavailable ({e}); install it: {install} (or {SETUP})',
                allow_module_level=True)
