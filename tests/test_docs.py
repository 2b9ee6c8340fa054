"""The docs' Python examples run as written, on a checkpoint restored as a user restores it.

docs/streaming.md's ```python blocks are executed in order in one namespace
that holds only `checkpoint` (a tiny ALM-MR training workdir written by
`checkpoint_fixtures.save_checkpoint`) and `audio_blocks`; they restore it
themselves with `restore.restore_params`, so a change of any entry
point's calling convention breaks this test before it breaks a user.
"""

import pathlib
import re

import numpy as np
import pytest

from alm_jax import models
from alm_jax import restore
from alm_jax.inference import streaming
from checkpoint_fixtures import TinyModel, save_checkpoint

DOCS = pathlib.Path(__file__).resolve().parent.parent / 'docs'
FENCE = re.compile(r'^```python\n(.*?)^```', re.S | re.M)


def python_blocks(name: str) -> list[str]:
  """The ```python fenced blocks of docs/<name>, in order."""
  return FENCE.findall((DOCS / name).read_text(encoding='utf-8'))


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
  tiny = TinyModel('mr')
  path = tmp_path_factory.mktemp('alm_mr')
  save_checkpoint(path, tiny.config, tiny.params)
  return path


def test_streaming_examples_run_as_written(workdir):
  blocks = python_blocks('streaming.md')
  assert len(blocks) >= 2, 'docs/streaming.md lost its examples (```python blocks)'
  rng = np.random.default_rng(0)
  # One block size (one compile), over two F2 frames (2205 samples each) so gains get predicted.
  audio_blocks = [(0.1 * rng.standard_normal((6, 1500))).astype(np.float32) for _ in range(4)]
  namespace = {'checkpoint': str(workdir), 'audio_blocks': audio_blocks}
  exec(compile(blocks[0], 'docs/streaming.md[0]', 'exec'), namespace)  # pylint: disable=exec-used

  mixer = namespace['mixer']
  assert isinstance(mixer, streaming.StreamingMixer)
  host_out, host_gains = np.array(namespace['out']), np.array(namespace['gains'])
  assert host_out.shape == (1500,) and np.isfinite(host_out).all() and np.abs(host_out).max() > 0
  assert host_gains.shape == (1, 6)
  np.testing.assert_array_equal(namespace['faults'], 0)
  # Two F2 frames completed: the gains are predictions, no longer the initial gain.
  assert np.abs(host_gains - namespace['config'].model.initial_gain).max() > 1e-6

  for i, block in enumerate(blocks[1:], start=1):
    exec(compile(block, f'docs/streaming.md[{i}]', 'exec'), namespace)  # pylint: disable=exec-used
  # The pure step over the same blocks from a fresh state: the same last block and gains.
  np.testing.assert_allclose(np.asarray(namespace['out'])[0], host_out, rtol=1e-6, atol=1e-7)
  np.testing.assert_allclose(np.asarray(namespace['gains']), host_gains, rtol=1e-6, atol=1e-7)
  assert not np.asarray(namespace['faults']).any()


def test_the_documented_convention_is_enforced(workdir):
  """The docs say every entry point takes the unwrapped tree and refuses {'params': tree}."""
  text = (DOCS / 'streaming.md').read_text(encoding='utf-8')
  assert 'unwrapped' in text and "{'params': tree}" in text
  config, params, _ = restore.restore_params(workdir)
  assert set(params) != {'params'}  # restore_params gives the tree itself
  with pytest.raises(TypeError, match='unwrapped'):
    streaming.StreamingMixer(models.load(config, {'params': params}), batch=1, channels=6)
