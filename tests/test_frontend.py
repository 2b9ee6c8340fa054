"""The JAX log-mel front end against an independent float64 NumPy reference of the same definition."""

import jax.numpy as jnp
import numpy as np
import pytest

from alm_jax import frontend

SPEC = frontend.FrontendSpec()


def reference_resample(x, n_out, in_rate=44100, out_rate=16000, zero_crossings=16, rolloff=0.945):
  """Direct windowed-sinc evaluation, one output sample at a time (float64)."""
  cutoff = rolloff * out_rate / 2.0
  half = zero_crossings * in_rate / (2.0 * cutoff)
  p = np.arange(n_out)[:, None] * in_rate / out_rate  # [n_out, 1] input positions
  n = np.ceil(p - half).astype(int) + np.arange(int(2 * half) + 2)[None]  # candidate taps
  d = n - p
  valid = (np.abs(d) <= half) & (n >= 0) & (n < len(x))
  w = np.i0(8.6 * np.sqrt(np.clip(1.0 - (d / half) ** 2, 0.0, None))) / np.i0(8.6)
  taps = 2 * cutoff / in_rate * np.sinc(2 * cutoff / in_rate * d) * w
  return np.sum(np.where(valid, taps * x[np.clip(n, 0, len(x) - 1)], 0.0), axis=1)


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
  x = np.random.default_rng(0).normal(size=3000) * 0.3
  got = np.asarray(frontend.resample(jnp.asarray(x, jnp.float32)[None], 1000, SPEC))[0]
  np.testing.assert_allclose(got, reference_resample(x, 1000), atol=2e-5)


def test_resample_preserves_in_band_sine():
  t = np.arange(42998) / 44100
  x = np.sin(2 * np.pi * 1000 * t)
  got = np.asarray(frontend.resample(jnp.asarray(x, jnp.float32)[None], 15600, SPEC))[0]
  want = np.sin(2 * np.pi * 1000 * np.arange(15600) / 16000)
  np.testing.assert_allclose(got[100:-100], want[100:-100], atol=1e-4)


def test_log_mel_matches_numpy_reference():
  rng = np.random.default_rng(1)
  t = np.arange(42998) / 44100
  x = 0.2 * np.sin(2 * np.pi * 440 * t) + 0.05 * rng.normal(size=t.shape)
  got = np.asarray(frontend.log_mel(jnp.asarray(x, jnp.float32)[None], SPEC))[0]
  want = reference_log_mel(reference_resample(x, 15600))
  assert got.shape == want.shape == (96, 64)
  np.testing.assert_allclose(got, want, atol=2e-3)


def test_mel_matrix_shape_and_dc():
  w = frontend.mel_matrix(64, 257, 16000, 125.0, 7500.0)
  assert w.shape == (257, 64)
  assert np.all(w[0] == 0) and np.all(w.max(axis=0) > 0)


def test_short_frame_is_an_error():
  with pytest.raises(ValueError, match='f1_ms'):
    frontend.log_mel(jnp.zeros((1, 20000)), SPEC)
