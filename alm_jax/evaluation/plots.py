"""Gain plots and the bleed-robustness figure, rendered off-screen (matplotlib's Agg backend) so they work headless."""

import os

import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np


def plot_gains(gains, frame_seconds: float, channel_names, path, *, scale: str = 'db',
               floor_db: float = -60.0, title: str | None = None, reference=None):
  """Plots every channel's gain over time and saves the figure.

  Args:
    gains: [channels, frames] gain applied to each F2 frame (linear, >= 0).
    frame_seconds: duration of one frame; frame t is drawn from t * frame_seconds.
    channel_names: one legend label per channel (instrument or file name).
    path: where to write the image (format from the extension, e.g. .png).
    scale: 'db' (20 log10 gain, floored at `floor_db` so muted channels stay
      on the plot; channels do not hide under each other as on a linear axis)
      or 'linear' (the gains as applied), or 'pan': `gains` are pans in [-1, 1]
      (a stereo mixer's placement, -1 left, +1 right).
    floor_db: lowest value drawn in 'db' mode.
    title: optional figure title.
    reference: optional [channels] values in the units of `gains` (e.g. the designed
      pans of a stereo-image plot), each drawn dashed in its channel's colour; NaN: none.
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
  elif scale == 'pan':
    values = gains
    ylabel = 'pan (-1 left, +1 right)'
  else:
    raise ValueError(f"scale must be 'linear', 'db' or 'pan', got {scale!r}.")
  if reference is not None:
    reference = np.asarray(reference, np.float64)
    if reference.shape != gains.shape[:1]:
      raise ValueError(f'reference must be [channels] = [{gains.shape[0]}], got shape '
                       f'{reference.shape}.')
    if scale == 'db':
      reference = np.maximum(20.0 * np.log10(np.maximum(reference, 1e-30)), floor_db)
  # Each gain holds for a whole frame: draw steps, which is what was applied.
  t = np.arange(gains.shape[1] + 1) * frame_seconds
  fig, ax = plt.subplots(figsize=(10, 4), dpi=100)
  try:
    for c, (name, v) in enumerate(zip(channel_names, values)):
      drawn = ax.stairs(v, t, label=str(name), linewidth=1.0, baseline=None)  # no edges to 0 (dB)
      if reference is not None and np.isfinite(reference[c]):
        ax.hlines(reference[c], 0.0, t[-1], colors=[drawn.get_edgecolor()], linestyles='dashed',
                  linewidth=1.0, alpha=0.8)
    ax.set_xlabel('time (s)')
    ax.set_ylabel(ylabel)
    ax.set_xlim(0.0, t[-1] if t[-1] > 0 else 1.0)
    if scale == 'pan':
      ax.set_ylim(-1.05, 1.05)
    ax.grid(True, alpha=0.3)
    # Outside the axes, right of them: inside, it hid the top curves.
    ax.legend(loc='upper left', bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0, fontsize='small',
              ncol=max(1, -(-len(channel_names) // 16)))
    if title:
      ax.set_title(title)
    fig.tight_layout()
    fig.savefig(os.fspath(path), bbox_inches='tight')  # the figure grows to hold the legend
  finally:
    plt.close(fig)


def plot_bleed_robustness(path, table, systems, metrics, labels, counts, title: str):
  """One panel per metric: its mean per bleed-severity bin, one line per system.

  Args:
    path: where to write the image.
    table: {(system, bin, metric): (mean, count)} (`report.bleed_table`).
    systems: the system names, in legend order.
    metrics: (name, heading) per panel (at most 6).
    labels: the bins' labels; counts: segments per bin.
    title: the figure title.
  """
  fig, axes = plt.subplots(2, 3, figsize=(15, 8), dpi=90)
  x = np.arange(len(labels))
  ticks = [f'{lab}\n(n={n})' for lab, n in zip(labels, counts)]
  try:
    for ax, (metric, heading) in zip(axes.flat, metrics):
      drawn = False
      for system in systems:
        y = np.array([table[(system, b, metric)][0] for b in range(len(labels))])
        ok = np.isfinite(y)  # empty bins are skipped, the line joins the others
        if ok.any():
          ax.plot(x[ok], y[ok], marker='o', label=system)
          drawn = True
      if not drawn:
        ax.text(0.5, 0.5, 'not available', ha='center', va='center', transform=ax.transAxes)
      ax.set_title(heading)
      ax.set_xticks(x, ticks, fontsize='small')
      ax.set_xlabel('bleed severity (bleed / direct energy)')
      ax.grid(True, alpha=0.3)
    axes.flat[0].legend(fontsize='small')
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(os.fspath(path))
  finally:
    plt.close(fig)
