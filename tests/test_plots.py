"""Gain plots: written as images, bad shapes refused."""

import numpy as np
import pytest

from alm_jax import plots

PNG = b'\x89PNG\r\n\x1a\n'


@pytest.mark.parametrize('scale', ['linear', 'db'])
def test_plot_gains_writes_an_image(tmp_path, scale):
  gains = np.abs(np.random.default_rng(0).normal(size=(3, 40))).astype(np.float32)
  gains[1, 5:9] = 0.0  # muted frames stay drawable in dB (floored)
  path = tmp_path / f'gains_{scale}.png'
  plots.plot_gains(gains, 0.05, ['kick', 'bass', 'vox'], path, scale=scale, title='song')
  assert path.read_bytes()[:8] == PNG


def test_plot_gains_refuses_bad_arguments(tmp_path):
  with pytest.raises(ValueError, match=r'\[channels, frames\]'):
    plots.plot_gains(np.ones(5), 0.05, ['a'], tmp_path / 'x.png')
  with pytest.raises(ValueError, match='2 channel names for 3 channels'):
    plots.plot_gains(np.ones((3, 5)), 0.05, ['a', 'b'], tmp_path / 'x.png')
  with pytest.raises(ValueError, match='scale'):
    plots.plot_gains(np.ones((1, 5)), 0.05, ['a'], tmp_path / 'x.png', scale='log')
  assert not list(tmp_path.iterdir())
