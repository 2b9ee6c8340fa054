"""Input checks shared by every mixer, so bad audio fails loudly instead of mixing wrongly.

`check_shapes` needs only shapes, so it runs at trace time, before compilation.
`check_values` needs concrete arrays; callers holding host data (the mixing
CLI, the input pipeline, `mix_batch`) run it before handing data to jit.
"""

import numpy as np


def check_shapes(audio_shape, mask_shape, min_samples: int, max_channels: int | None = None):
  """Raises ValueError for inputs no mixer can handle.

  Args:
    audio_shape: shape of `audio`, expected [batch, channels, samples].
    mask_shape: shape of `channel_mask`, expected [batch, channels].
    min_samples: the fewest samples the model accepts (one F1 frame).
    max_channels: the most channels allowed, or None for no limit.
  """
  if len(audio_shape) != 3:
    raise ValueError(f'audio must be [batch, channels, samples], got shape {tuple(audio_shape)}.')
  b, c, n = audio_shape
  if tuple(mask_shape) != (b, c):
    raise ValueError(f'channel_mask must be [batch, channels] = {(b, c)}, got {tuple(mask_shape)}.')
  if b == 0:
    raise ValueError('audio has an empty batch.')
  if c == 0:
    raise ValueError('audio has zero channels: give at least one channel to mix.')
  if max_channels is not None and c > max_channels:
    raise ValueError(f'audio has {c} channels, more than the {max_channels} this model allows '
                     '(config.model.max_channels).')
  if n < min_samples:
    raise ValueError(f'audio has {n} samples, shorter than one F1 frame ({min_samples} samples); '
                     'pad it or give a longer recording.')


def check_values(audio, channel_mask):
  """Raises ValueError for NaN/Inf audio or batch elements with no active channel."""
  audio = np.asarray(audio)
  mask = np.asarray(channel_mask).astype(bool)
  bad = ~np.isfinite(audio)
  if bad.any():
    b, c, n = np.argwhere(bad)[0]
    raise ValueError(f'audio holds NaN or Inf (first at batch {b}, channel {c}, sample {n}); '
                     'fix or drop that channel.')
  empty = np.flatnonzero(~mask.any(axis=1))
  if empty.size:
    raise ValueError(f'batch elements {empty.tolist()} have every channel masked; each needs at '
                     'least one active channel.')
