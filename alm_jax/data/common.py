"""What every multitrack dataset here stores, and how audio is packed into it.

`features(**extra)` is the FeaturesDict every builder (`medleydb`, `synthetic_live`,
`rendered_live`) writes, so the input pipeline reads any of them the same way: int16 raw
tracks [channels, samples] and the mono target mix, each with its peak scale, plus song id,
instruments, `raw_files`, `has_bleed`, `sample_rate` (always SAMPLE_RATE) and `genre`.
`quantize` / `dequantize` convert between float audio and that per-channel-peak int16 form.
The feature table and why it is packed so: docs/data.md ("Stored features").
"""

import numpy as np
import tensorflow_datasets as tfds

SAMPLE_RATE = 44100
_FULL_SCALE = 32767.0


def features(**extra) -> tfds.features.FeaturesDict:
  """The shared FeaturesDict, plus builder-specific `extra` features."""
  return tfds.features.FeaturesDict({
      'song_id': tfds.features.Text(),
      'raw': tfds.features.Tensor(shape=(None, None), dtype=np.int16, encoding='bytes'),
      'raw_scale': tfds.features.Tensor(shape=(None,), dtype=np.float32),
      'mix': tfds.features.Tensor(shape=(None,), dtype=np.int16, encoding='bytes'),
      'mix_scale': tfds.features.Scalar(dtype=np.float32),
      'instruments': tfds.features.Sequence(tfds.features.Text()),
      'raw_files': tfds.features.Sequence(tfds.features.Text()),
      'has_bleed': tfds.features.Scalar(dtype=np.bool_),
      'sample_rate': tfds.features.Scalar(dtype=np.int32),
      'genre': tfds.features.Text(),
      **extra,
  })


def quantize(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
  """float [..., samples] -> (int16 [..., samples], float32 [...] peak scales).

  A silent channel gets scale 0 and all-zero samples.
  """
  audio = np.asarray(audio, np.float32)
  peak = np.max(np.abs(audio), axis=-1)
  safe = np.where(peak > 0, peak, 1.0)
  q = np.round(audio / safe[..., None] * _FULL_SCALE).astype(np.int16)
  return q, peak.astype(np.float32)


def dequantize(q: np.ndarray, scale) -> np.ndarray:
  """Inverse of `quantize`: int16 [..., samples], scale [...] -> float32 [..., samples]."""
  scale = np.asarray(scale, np.float32) / np.float32(_FULL_SCALE)
  return q.astype(np.float32) * scale[..., None]
