"""Plots of mixer output, rendered off-screen (matplotlib's Agg backend) so they work headless."""

import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np


def plot_gains(gains, frame_seconds: float, channel_names, path, *, scale: str = 'linear',
               floor_db: float = -60.0, title: str | None = None):
  """Plots every channel's gain over time and saves the figure.

  Args:
    gains: [channels, frames] gain applied to each F2 frame (linear, >= 0).
    frame_seconds: duration of one frame; frame t is drawn from t * frame_seconds.
    channel_names: one legend label per channel.
    path: where to write the image (format from the extension, e.g. .png).
    scale: 'linear' (the gains as applied) or 'db' (20 log10 gain, floored at
      `floor_db` so muted channels stay on the plot).
    floor_db: lowest value drawn in 'db' mode.
    title: optional figure title.
  """
  gains = np.asarray(gains, np.float64)
  if gains.ndim != 2:
    raise ValueError(f'gains must be [channels, frames], got shape {gains.shape}.')
  if len(channel_names) != gains.shape[0]:
    raise ValueError(f'{len(channel_names)} channel names for {gains.shape[0]} channels of gains.')
  if scale == 'db':
    values = np.maximum(20.0 * np.log10(np.maximum(gains, 1e-30)), floor_db)
    ylabel = 'gain (dB)'
  elif scale == 'linear':
    values = gains
    ylabel = 'gain (linear)'
  else:
    raise ValueError(f"scale must be 'linear' or 'db', got {scale!r}.")
  # Each gain holds for a whole frame: draw steps, which is what was applied.
  t = np.arange(gains.shape[1] + 1) * frame_seconds
  fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
  try:
    for name, v in zip(channel_names, values):
      ax.stairs(v, t, label=str(name), linewidth=1.0)
    ax.set_xlabel('time (s)')
    ax.set_ylabel(ylabel)
    ax.set_xlim(0.0, t[-1] if t[-1] > 0 else 1.0)
    ax.grid(True, alpha=0.3)
    ax.legend(loc='upper right', fontsize='small', ncol=max(1, len(channel_names) // 8))
    if title:
      ax.set_title(title)
    fig.tight_layout()
    fig.savefig(os.fspath(path))
  finally:
    plt.close(fig)
