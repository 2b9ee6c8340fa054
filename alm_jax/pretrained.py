"""Pretrained mixers shipped inside the package: `--checkpoint=pretrained:NAME` anywhere.

A pretrained mixer is a training workdir cut down to what inference reads
(config.json and one step's `params` and `checksums`, no optimiser state),
kept under alm_jax/pretrained/NAME/ with a `card.json` (what it is, its step,
the command that trained it). `alm_jax.restore` resolves the name, so `mix`,
`export`, `evaluate`, `live` and the benchmarks take it like any workdir, with
the same integrity checks. `ship` makes one from a workdir;
docs/pretrained.md is the model card.

    python -m alm_jax.pretrained                       # list them
    python -m alm_jax.pretrained --ship=/tmp/run --name=alm_mr --description="..."
"""

import datetime
import json
import pathlib
import shutil

from absl import app
from absl import flags

from alm_jax import checkpoints
from alm_jax import models
from alm_jax import outputs

PREFIX = 'pretrained:'
CARD = 'card.json'
ROOT = pathlib.Path(__file__).resolve().parent / 'pretrained'
# What a shipped step keeps of a checkpoint step directory (orbax's item folders and metadata).
_KEPT = ('params', 'checksums', '_CHECKPOINT_METADATA')


def is_name(path) -> bool:
  """Whether a --checkpoint value names a shipped mixer ('pretrained:NAME')."""
  return isinstance(path, str) and path.startswith(PREFIX)


def available(root: pathlib.Path | None = None) -> dict[str, dict]:
  """{name: card} of every shipped mixer (a folder with a card and a config.json)."""
  root = ROOT if root is None else root
  out = {}
  if root.is_dir():
    for d in sorted(root.iterdir()):
      if (d / CARD).is_file() and (d / 'config.json').is_file():
        out[d.name] = json.loads((d / CARD).read_text())
  return out


def listing(root: pathlib.Path | None = None) -> str:
  """One line per shipped mixer: 'pretrained:NAME  description (step S)'."""
  root = ROOT if root is None else root
  found = available(root)
  if not found:
    return '(no pretrained mixer is installed with this package)'
  return '\n'.join(f'{PREFIX}{name}  {card["description"]} (step {card["step"]})'
                   for name, card in found.items())


def workdir(path, root: pathlib.Path | None = None) -> pathlib.Path:
  """The shipped workdir of 'pretrained:NAME'.

  Raises:
    FileNotFoundError: no such name; the message lists those installed.
  """
  root = ROOT if root is None else root
  name = path[len(PREFIX):]
  found = available(root)
  if name not in found:
    names = ', '.join(PREFIX + n for n in found) or 'none'
    raise FileNotFoundError(f'No pretrained mixer {path!r} in {root} (installed: {names}); '
                            'list them with `python -m alm_jax.pretrained`.')
  return root / name


def ship(source, name: str, description: str, *, step: int | None = None,
         command: str = '', root: pathlib.Path | None = None) -> pathlib.Path:
  """Copies one step of the training workdir `source` into the package as `name`.

  The step (default: the newest) is first restored with every integrity check,
  so a damaged checkpoint is never shipped. An existing shipped `name` is
  replaced only once the new copy is complete.
  """
  root = ROOT if root is None else root
  source = pathlib.Path(source)
  where = source if step is None else source / checkpoints.CHECKPOINT_SUBDIR / str(step)
  workdir, _ = checkpoints.locate(where)
  checkpoints.require_checkpoint_dir(where, workdir)
  _, step = checkpoints.load_params_from_path(
      where, models.abstract_params(checkpoints.load_config(workdir)))
  step_dir = source / checkpoints.CHECKPOINT_SUBDIR / str(step)
  final = root / name
  with outputs.folder_written_aside(final, replace=True) as staging:
    target_step = staging / checkpoints.CHECKPOINT_SUBDIR / str(step)
    target_step.mkdir(parents=True)
    for item in _KEPT:
      src = step_dir / item
      if src.is_dir():
        shutil.copytree(src, target_step / item)
      elif src.exists():
        shutil.copy2(src, target_step / item)
    shutil.copy2(source / checkpoints.CONFIG_FILE, staging / checkpoints.CONFIG_FILE)
    card = {'description': description, 'step': int(step), 'command': command,
            'shipped': datetime.date.today().isoformat()}
    (staging / CARD).write_text(json.dumps(card, indent=2) + '\n')
  return final


# ---- command line ------------------------------------------------------------


def define_flags(flag_values):
  """The CLI's flags on `flag_values` (defined only when run as a program: restore imports this)."""
  kw = dict(flag_values=flag_values)
  flags.DEFINE_string('ship', None, 'Training workdir to ship into the package.', **kw)
  flags.DEFINE_string('name', None, 'Name of the shipped mixer (pretrained:NAME).', **kw)
  flags.DEFINE_string('description', '', 'One line: what the mixer is.', **kw)
  flags.DEFINE_integer('step', None, 'Step to ship (default: the newest).', **kw)
  flags.DEFINE_string('command', '', 'The command that trained it (for the card).', **kw)


def run(f) -> int:
  """Lists the shipped mixers, or ships --ship as --name; returns the exit status."""
  if f.ship is None:
    print(listing())
    return 0
  if not f.name or not f.description:
    print('error: --ship needs --name and --description.')
    return 2
  try:
    print(ship(f.ship, f.name, f.description, step=f.step, command=f.command))
  except FileNotFoundError as e:
    print(f'error: {e}')
    return 1
  return 0


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  raise SystemExit(run(flags.FLAGS))


if __name__ == '__main__':
  define_flags(flags.FLAGS)
  app.run(main)
