"""The JAX log-mel front end against an independent float64 NumPy reference of the same definition."""

import jax.numpy as jnp
import numpy as np
import pytest

from alm_jax import frames
from alm_jax.embeddings import vggish_frontend as frontend

SPEC = frontend.FrontendSpec()


def reference_resample(x, positions, in_rate=44100, out_rate=16000, zero_crossings=16, rolloff=0.945):
  """Direct windowed-sinc evaluation of x at the given input positions, one sample at a time (float64)."""
  cutoff = rolloff * out_rate / 2.0
  half = zero_crossings * in_rate / (2.0 * cutoff)
  p = np.asarray(positions, np.float64)[:, None]
  n = np.ceil(p - half).astype(int) + np.arange(int(2 * half) + 2)[None]  # candidate taps
  d = n - p
  valid = (np.abs(d) <= half) & (n >= 0) & (n < len(x))
  w = np.i0(8.6 * np.sqrt(np.clip(1.0 - (d / half) ** 2, 0.0, None))) / np.i0(8.6)
  taps = 2 * cutoff / in_rate * np.sinc(2 * cutoff / in_rate * d) * w
  return np.sum(np.where(valid, taps * x[np.clip(n, 0, len(x) - 1)], 0.0), axis=1)


def causal_positions(num_out):
  """Input positions of `frontend.resample`'s outputs: one block (441) in, delayed by the half-width."""
  delay = np.ceil(16 * 44100 / (2 * 0.945 * 8000))
  return 441 + np.arange(num_out) * 441 / 160 - delay


def reference_log_mel(x16):
  """VGGish's mel_features pipeline, written out in float64."""
  window, hop, n_fft = 400, 160, 512
  n_frames = 1 + (len(x16) - window) // hop
  hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(window) / window)
  spec = np.stack([np.abs(np.fft.rfft(x16[i * hop:i * hop + window] * hann, n_fft))
                   for i in range(n_frames)])
  mel = lambda f: 1127.0 * np.log(1.0 + f / 700.0)
  bins = mel(np.linspace(0, 8000, n_fft // 2 + 1))
  edges = np.linspace(mel(125.0), mel(7500.0), 66)
  weights = np.zeros((n_fft // 2 + 1, 64))
  for i in range(64):
    lo, c, hi = edges[i:i + 3]
    weights[:, i] = np.maximum(0, np.minimum((bins - lo) / (c - lo), (hi - bins) / (hi - c)))
  weights[0] = 0
  return np.log(spec @ weights + 0.01)


def test_resample_matches_direct_sinc():
  x = np.random.default_rng(0).normal(size=441 * 8) * 0.3
  got = np.asarray(frontend.resample(jnp.asarray(x, jnp.float32)[None], SPEC))[0]
  assert got.shape == (7 * 160,)
  np.testing.assert_allclose(got, reference_resample(x, causal_positions(7 * 160)), atol=2e-5)


def test_resample_is_causal_per_block():
  """Output block q reads nothing after input block q + 1 (the first block is history)."""
  rng = np.random.default_rng(1)
  x = rng.normal(size=441 * 6)
  y = np.asarray(frontend.resample(jnp.asarray(x, jnp.float32), SPEC))
  for q in range(1, 6):
    changed = x.copy()
    changed[(q + 1) * 441:] = rng.normal(size=len(x) - (q + 1) * 441)
    z = np.asarray(frontend.resample(jnp.asarray(changed, jnp.float32), SPEC))
    np.testing.assert_array_equal(z[:q * 160], y[:q * 160])
    assert np.any(z[q * 160:] != y[q * 160:]) or q == 5


def test_resample_preserves_in_band_sine():
  t = np.arange(441 * 100) / 44100
  x = np.sin(2 * np.pi * 1000 * t)
  got = np.asarray(frontend.resample(jnp.asarray(x, jnp.float32)[None], SPEC))[0]
  want = np.sin(2 * np.pi * 1000 * causal_positions(len(got)) / 44100)
  np.testing.assert_allclose(got[100:], want[100:], atol=1e-4)


def test_log_mel_matches_numpy_reference():
  rng = np.random.default_rng(1)
  n = SPEC.frame_input_samples
  assert n == 43659 and SPEC.patch_offset == 80
  t = np.arange(n) / 44100
  x = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.normal(size=t.shape)
  got = np.asarray(frontend.log_mel_frames(jnp.asarray(x, jnp.float32)[None], 1, 13230, SPEC))[0, 0]
  # The patch is the last 15600 resampled samples; the last one reads input up to the frame's end.
  positions = causal_positions(15680)[80:]
  assert positions[-1] + 16 * 44100 / (2 * 0.945 * 8000) < n
  want = reference_log_mel(reference_resample(x, positions))
  assert got.shape == want.shape == (96, 64)
  np.testing.assert_allclose(got, want, atol=2e-3)


@pytest.mark.parametrize('hop', [13230, 42998])
def test_shared_rows_equal_frame_by_frame(hop):
  """MR (300 ms hops) shares resampled samples and rows between frames; both paths agree."""
  rng = np.random.default_rng(2)
  g = 3
  x = jnp.asarray(rng.normal(size=(2, (g - 1) * hop + SPEC.frame_input_samples)) * 0.2, jnp.float32)
  got = frontend.log_mel_frames(x, g, hop, SPEC)
  assert frontend.shares_rows(hop, SPEC) == (hop == 13230)
  for j in range(g):
    one = frontend.log_mel_frames(x[:, j * hop:j * hop + SPEC.frame_input_samples], 1, hop, SPEC)
    np.testing.assert_allclose(got[:, j], one[:, 0], atol=1e-4)


def test_frame_input_left_pads_with_silence():
  spec = frames.FrameSpec(44100, 42998, 2205, 6)
  audio = jnp.ones((1, 2, 2205 * 13 + 100))
  x, g = frontend.frame_input(audio, spec, SPEC)
  assert g == 3  # F2 frames 0, 6 and 12 start a group
  assert x.shape == (1, 2, 2 * 13230 + SPEC.frame_input_samples)
  # The last frame ends with F2 frame 12; everything before sample 0 is silence.
  assert float(x.sum()) == 2 * (12 * 2205 + 2205)
  np.testing.assert_array_equal(x[..., :SPEC.frame_input_samples - 2205], 0.0)


def test_mel_matrix_shape_and_dc():
  w = frontend.mel_matrix(64, 257, 16000, 125.0, 7500.0)
  assert w.shape == (257, 64)
  assert np.all(w[0] == 0) and np.all(w.max(axis=0) > 0)


def test_short_frame_is_an_error():
  with pytest.raises(ValueError, match='f1_ms'):
    frontend.check_frame(20000, SPEC)
