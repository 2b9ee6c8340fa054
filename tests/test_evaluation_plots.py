"""Gain plots (alm_jax/evaluation/plots.py; gains.png of alm_jax.mix): images, bad shapes refused."""

import numpy as np
import pytest

from alm_jax.evaluation import plots

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


def test_default_is_a_db_axis_named_by_channel(tmp_path, monkeypatch):
  """gains.png of alm_jax.mix (default arguments): dB, one legend entry per file name."""
  made = []
  subplots = plots.plt.subplots
  monkeypatch.setattr(plots.plt, 'subplots',
                      lambda *a, **k: made.append(subplots(*a, **k)) or made[-1])
  gains = np.full((2, 10), 0.5)
  gains[1] = 0.01
  plots.plot_gains(gains, 0.05, ['kick.wav', 'bass'], tmp_path / 'gains.png')
  ax = made[0][1]
  assert ax.get_ylabel() == 'gain (dB)'
  assert [t.get_text() for t in ax.get_legend().get_texts()] == ['kick.wav', 'bass']
  low, high = ax.get_ylim()
  assert low < -40 < -6 < high < 0  # -6 dB and -40 dB both drawn, not squashed at 0


def test_stereo_image_draws_the_designed_pans(tmp_path, monkeypatch):
  """scale='pan' with a reference: one dashed line per channel with a known pan, in its colour."""
  made = []
  subplots = plots.plt.subplots
  monkeypatch.setattr(plots.plt, 'subplots',
                      lambda *a, **k: made.append(subplots(*a, **k)) or made[-1])
  pans = np.stack([np.linspace(-1, 0, 10), np.zeros(10), np.full(10, 0.5)])
  plots.plot_gains(pans, 0.05, ['a', 'b', 'c'], tmp_path / 'pans.png', scale='pan',
                   reference=[-0.4, np.nan, 0.5])
  ax = made[0][1]
  assert ax.get_ylim() == (-1.05, 1.05) and ax.get_ylabel().startswith('pan')
  dashed = [c for c in ax.collections if c.get_linestyle()[0][1] is not None]
  assert [c.get_segments()[0][0][1] for c in dashed] == [-0.4, 0.5]
  colours = [tuple(c.get_edgecolor())[:3] for c in ax.patches]
  assert tuple(dashed[1].get_color()[0])[:3] == colours[2]  # channel c's colour
  with pytest.raises(ValueError, match='reference'):
    plots.plot_gains(pans, 0.05, ['a', 'b', 'c'], tmp_path / 'x.png', scale='pan',
                     reference=[0.0, 0.0])
