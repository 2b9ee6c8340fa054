"""Tests for alm_jax.frames: multi-rate framing and the zero-latency shift."""

import jax.numpy as jnp
import numpy as np
import pytest

from alm_jax import frames

MR = frames.FrameSpec(sample_rate=44100, f1=42998, f2=2205, stride=6)
SR = frames.FrameSpec(sample_rate=44100, f1=42998, f2=42998, stride=1)


def test_spec_from_config(tiny_config):
  assert frames.FrameSpec.from_config(tiny_config('mr').model) == MR
  assert frames.FrameSpec.from_config(tiny_config('sr').model) == SR


def test_bad_spec():
  with pytest.raises(ValueError, match='F2'):
    frames.FrameSpec(44100, f1=100, f2=200, stride=1)
  with pytest.raises(ValueError, match='stride'):
    frames.FrameSpec(44100, f1=200, f2=100, stride=0)


@pytest.mark.parametrize('spec', [MR, SR, frames.FrameSpec(100, 17, 3, 2)], ids=['mr', 'sr', 'odd'])
def test_f1_frames_match_definition(spec):
  n = spec.f1 * 3 + 123
  x = np.arange(1, n + 1, dtype=np.float32)[None]
  got = np.asarray(frames.f1_frames(jnp.asarray(x), spec))[0]
  t = spec.num_f2_frames(n)
  assert got.shape == (spec.num_f1_frames(t), spec.f1)
  for g in range(got.shape[0]):
    end = (g * spec.stride + 1) * spec.f2
    start = end - spec.f1
    want = np.concatenate([np.zeros(max(0, -start)), x[0, max(0, start):end]])
    np.testing.assert_array_equal(got[g], want)


def test_mr_groups_start_at_end_of_f1_frame():
  # The first F2 frame of each group is the last 50 ms of that group's F1 frame.
  n = 44100 * 3
  x = np.random.default_rng(0).normal(size=(1, n)).astype(np.float32)
  f1 = np.asarray(frames.f1_frames(jnp.asarray(x), MR))[0]
  f2 = np.asarray(frames.f2_frames(jnp.asarray(x), MR))[0]
  idx = np.asarray(frames.f1_index(f2.shape[0], MR))
  for t in range(f2.shape[0]):
    g = idx[t]
    assert g == t // 6
    if t % 6 == 0:
      np.testing.assert_array_equal(f1[g, -MR.f2:], f2[t])
    # Never uses audio after the end of F2 frame t.
    assert MR.f1_end(g) <= (t + 1) * MR.f2


def test_f2_frames_drop_tail():
  x = jnp.arange(2 * 2205 + 7.0)[None, None]
  f = frames.f2_frames(x, MR)
  assert f.shape == (1, 1, 2, 2205)
  np.testing.assert_array_equal(np.asarray(f).reshape(-1), np.arange(2 * 2205))


def test_zero_latency_shift():
  g = jnp.array([[[2.0, 3.0, 4.0]]])
  np.testing.assert_array_equal(frames.zero_latency_shift(g, 1.0), [[[1.0, 2.0, 3.0]]])


def test_smooth_gains_is_a_one_pole_in_db_that_restarts_after_zero():
  gains = np.array([[[10.0, 1.0, 1.0, 0.0, 0.1, 1.0]]], np.float32)
  previous = np.array([[1.0]], np.float32)
  rate = frames.smoothing_rate(0.1, frames.FrameSpec(sample_rate=100, f1=10, f2=10, stride=1))
  assert rate == pytest.approx(1 - np.exp(-1.0))
  want, s = [], 0.0  # dB of `previous`
  for g in gains[0, 0]:
    if g > 0:
      s = 20 * np.log10(g) if s is None else s + rate * (20 * np.log10(g) - s)
      want.append(10 ** (s / 20))
    else:  # a muted frame stays muted; the next starts at its own gain
      s = None
      want.append(0.0)
  got = np.asarray(frames.smooth_gains(jnp.asarray(gains), jnp.asarray(previous), rate))
  np.testing.assert_allclose(got[0, 0], want, rtol=1e-5)
  assert got[0, 0, 4] == pytest.approx(0.1, rel=1e-5)
  # Nothing to ramp from (a channel coming in): its first gain as predicted.
  got = frames.smooth_gains(jnp.asarray(gains), jnp.zeros((1, 1)), rate)
  assert float(got[0, 0, 0]) == pytest.approx(10.0, rel=1e-5)
  assert frames.smooth_gains(gains, previous, 1.0) is gains  # no ramp: the gains themselves
  assert frames.smoothing_rate(0.0, frames.FrameSpec(sample_rate=100, f1=10, f2=10, stride=1)) == 1.0


def test_apply_gains_masks_channels():
  spec = frames.FrameSpec(10, f1=4, f2=2, stride=1)
  audio = jnp.ones((1, 2, 4))
  gains = jnp.array([[[1.0, 2.0], [5.0, 5.0]]])
  mix = frames.apply_gains(audio, gains, jnp.array([[True, False]]), spec)
  np.testing.assert_array_equal(mix, [[1.0, 1.0, 2.0, 2.0]])


def test_frame_rms():
  x = jnp.concatenate([jnp.ones(4), -2 * jnp.ones(4)]).reshape(2, 4)
  np.testing.assert_allclose(frames.frame_rms(x), [1.0, 2.0], rtol=1e-6)
