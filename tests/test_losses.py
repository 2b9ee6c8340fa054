"""Tests for alm_jax.losses: the auraloss multi-resolution STFT loss."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from alm_jax import losses
from conftest import load_config

N_SAMPLES = 9000  # > 4096 // 2 + 1, the shortest signal the largest resolution accepts


# ---- independent float64 reference: torch.stft(center=True, reflect) + auraloss, textbook style ----


def _ref_magnitude(x, fft_size, win_length, hop, eps):
  """[n] float64 -> [frames, bins], framing the whole fft_size with a centred, zero-padded window."""
  half = fft_size // 2
  padded = np.pad(x, (half, half), mode='reflect')
  window = np.zeros(fft_size)
  left = (fft_size - win_length) // 2
  k = np.arange(win_length)
  window[left:left + win_length] = 0.5 * (1.0 - np.cos(2.0 * np.pi * k / win_length))
  num_frames = 1 + (len(padded) - fft_size) // hop
  frames = np.stack([padded[t * hop:t * hop + fft_size] * window for t in range(num_frames)])
  spec = np.fft.rfft(frames, axis=-1)
  return np.sqrt(np.maximum(spec.real**2 + spec.imag**2, eps))


def _ref_loss(pred, target, fft_sizes, win_lengths, hop_fraction, w_sc, w_log_mag, eps):
  out = []
  for x, y in zip(np.asarray(pred, np.float64), np.asarray(target, np.float64)):
    total = 0.0
    for n, w in zip(fft_sizes, win_lengths):
      xm = _ref_magnitude(x, n, w, int(hop_fraction * w), eps)
      ym = _ref_magnitude(y, n, w, int(hop_fraction * w), eps)
      sc = np.linalg.norm(ym - xm) / np.linalg.norm(ym)
      log_mag = np.mean(np.abs(np.log(ym) - np.log(xm)))
      total += w_sc * sc + w_log_mag * log_mag
    out.append(total / len(fft_sizes))
  return np.array(out)


@pytest.fixture(scope='module')
def loss_config():
  return load_config('mr').loss


@pytest.fixture(scope='module')
def loss_fn(loss_config):
  """The jitted per-example loss, compiled once for the test shape."""
  return jax.jit(lambda p, t: losses.multi_resolution_stft_loss(p, t, loss_config))


@pytest.fixture(scope='module')
def grad_fn(loss_config):
  """Jitted (value, d value / d pred) of the summed per-example loss."""
  return jax.jit(jax.value_and_grad(lambda p, t: losses.multi_resolution_stft_loss(p, t, loss_config).sum()))


@pytest.fixture(scope='module')
def signals():
  rng = np.random.default_rng(0)
  t = np.arange(N_SAMPLES) / 44100.0
  # A tonal target with a decaying envelope (quiet bins matter for the log term) and a noisy estimate.
  target = np.stack([
      np.sin(2 * np.pi * 440.0 * t) * np.exp(-3.0 * t) + 0.05 * rng.standard_normal(N_SAMPLES),
      0.3 * rng.standard_normal(N_SAMPLES),
  ])
  pred = 0.8 * target + 0.1 * rng.standard_normal(target.shape)
  return pred.astype(np.float32), target.astype(np.float32)


def test_spec_from_config_uses_paper_resolutions(loss_config):
  spec = losses.MRSTFTSpec.from_config(loss_config)
  assert [(r.fft_size, r.win_length, r.hop_size) for r in spec.resolutions] == [
      (512, 440, 110), (1024, 884, 221), (4096, 3528, 882)]
  assert spec.eps == 1e-8 and spec.w_sc == 1.0 and spec.w_log_mag == 1.0
  assert spec.min_samples() == 2049


def test_hann_window_is_periodic():
  w = losses.hann_window(8)
  np.testing.assert_allclose(w, 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(8) / 8), atol=1e-7)
  assert w[0] == 0.0 and w[4] == pytest.approx(1.0)


@pytest.mark.parametrize('fft_size,win_length,hop', [
    (512, 440, 110),  # window divisible by hop (the paper's case)
    (256, 200, 70),  # hop does not divide the window
    (255, 255, 64),  # odd FFT size, window fills the frame
])
def test_stft_magnitude_matches_reference(signals, fft_size, win_length, hop):
  _, target = signals
  res = losses.STFTResolution(fft_size=fft_size, win_length=win_length, hop_size=hop)
  mag = np.asarray(jax.jit(losses.stft_magnitude, static_argnums=1)(target, res))
  ref = np.stack([_ref_magnitude(x, fft_size, win_length, hop, 1e-8) for x in target.astype(np.float64)])
  assert mag.shape == ref.shape == (2, res.num_frames(N_SAMPLES), fft_size // 2 + 1)
  assert mag.dtype == np.float32
  np.testing.assert_allclose(mag, ref, rtol=1e-4, atol=1e-4 * ref.max())


def test_multi_resolution_loss_matches_reference(signals, loss_config, loss_fn):
  pred, target = signals
  got = np.asarray(loss_fn(pred, target))
  want = _ref_loss(pred, target, loss_config.fft_sizes, loss_config.win_lengths, loss_config.hop_fraction,
                   loss_config.w_sc, loss_config.w_log_mag, loss_config.eps)
  assert got.shape == (2,) and got.dtype == np.float32
  np.testing.assert_allclose(got, want, rtol=1e-4)


def test_single_resolution_terms_and_weights(signals):
  pred, target = signals
  res = losses.STFTResolution(fft_size=512, win_length=440, hop_size=110)
  terms = jax.jit(losses.stft_loss_terms, static_argnums=2)(pred, target, res)
  xm = np.stack([_ref_magnitude(x, 512, 440, 110, 1e-8) for x in pred.astype(np.float64)])
  ym = np.stack([_ref_magnitude(y, 512, 440, 110, 1e-8) for y in target.astype(np.float64)])
  sc = np.linalg.norm(ym - xm, axis=(1, 2)) / np.linalg.norm(ym, axis=(1, 2))
  log_mag = np.mean(np.abs(np.log(ym) - np.log(xm)), axis=(1, 2))
  np.testing.assert_allclose(terms['sc'], sc, rtol=1e-4)
  np.testing.assert_allclose(terms['log_mag'], log_mag, rtol=1e-4)
  weighted = jax.jit(losses.stft_loss, static_argnums=(2, 3, 4))(pred, target, res, 2.0, 0.5)
  np.testing.assert_allclose(weighted, 2.0 * sc + 0.5 * log_mag, rtol=1e-4)


def test_identical_signals_give_zero_and_finite_gradient(signals, grad_fn):
  _, target = signals
  silent = np.zeros_like(target)
  for x in (target, silent):
    value, grad = grad_fn(x, x)
    assert abs(float(value)) < 1e-6
    assert np.all(np.isfinite(np.asarray(grad)))


def test_gradient_finite_and_nonzero(signals, grad_fn):
  pred, target = signals
  _, grad = grad_fn(pred, target)
  grad = np.asarray(grad)
  assert np.all(np.isfinite(grad)) and np.abs(grad).max() > 0
  # A step against the gradient lowers the loss.
  step = 1e-3 * np.abs(pred).max() / np.abs(grad).max()
  assert float(grad_fn(pred - step * grad, target)[0]) < float(grad_fn(pred, target)[0])


def test_scaled_signal_known_answer(signals, loss_fn):
  # pred = s · target: SC = |s − 1| and LM = |ln s| at every resolution (bins above the eps floor).
  _, target = signals
  loss = lambda s: np.asarray(loss_fn(s * target, target))
  np.testing.assert_allclose(loss(2.0), 1.0 + np.log(2.0), rtol=1e-4)
  np.testing.assert_allclose(loss(0.5), 0.5 + np.log(2.0), rtol=1e-4)
  assert np.all(loss(2.0) > loss(1.1)) and np.all(loss(1.1) > loss(1.0))


def test_jit_bf16_and_mean_reduction(signals, loss_config, loss_fn):
  pred, target = signals
  per_example = np.asarray(loss_fn(pred, target))

  bf16 = loss_fn(jnp.asarray(pred, jnp.bfloat16), jnp.asarray(target, jnp.bfloat16))
  assert bf16.dtype == jnp.float32
  np.testing.assert_allclose(bf16, per_example, rtol=0.05)  # only the inputs are rounded

  mean_fn = jax.jit(lambda p, t, m: losses.multi_resolution_stft_loss(
      p, t, loss_config, reduction='mean', example_mask=m))
  np.testing.assert_allclose(mean_fn(pred, target, np.array([False, True])), per_example[1], rtol=1e-6)
  np.testing.assert_allclose(mean_fn(pred, target, np.array([True, True])), per_example.mean(), rtol=1e-6)
  assert float(mean_fn(pred, target, np.array([False, False]))) == 0.0


def test_bad_inputs_raise(signals, loss_config):
  pred, target = signals
  with pytest.raises(ValueError, match='same shape'):
    losses.multi_resolution_stft_loss(pred, target[:, :-1], loss_config)
  with pytest.raises(ValueError, match='at least 2049 samples'):
    losses.multi_resolution_stft_loss(pred[:, :2000], target[:, :2000], loss_config)
  with pytest.raises(ValueError, match='reduction'):
    losses.multi_resolution_stft_loss(pred, target, loss_config, reduction='sum')
  with pytest.raises(ValueError, match='window length'):
    losses.STFTResolution(fft_size=256, win_length=512, hop_size=128)


# ---- the balance term ----------------------------------------------------------------------


def test_balance_loss_is_the_balance_error_for_constant_gains():
  """Constant gains: the loss is metrics.balance_error_db (one rule, two forms), level-free."""
  from alm_jax import metrics  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  ideal = rng.uniform(0.05, 2.0, (3, 5)).astype(np.float32)
  gains = rng.uniform(0.05, 2.0, (3, 5)).astype(np.float32)
  mask = np.array([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0], [1, 1, 0, 0, 0]], bool)
  gains = np.where(mask, gains, 0.0)
  frames = np.repeat(gains[..., None], 7, axis=-1)
  # atol: the loss's -80 dB floor is added to the gain (for a gradient at 0): < 0.02 dB at g >= 0.05.
  got = np.asarray(losses.balance_loss(jnp.asarray(frames), ideal, mask))
  want = metrics.balance_error_db(gains, ideal, mask)
  np.testing.assert_allclose(got, want, atol=2e-2)
  # An overall level is no error; the ideal balance itself costs nothing.
  np.testing.assert_allclose(losses.balance_loss(jnp.asarray(frames) * 3.0, ideal, mask), got,
                             atol=2e-2)
  at_ideal = np.repeat((ideal * 0.5)[..., None], 7, axis=-1)
  np.testing.assert_allclose(losses.balance_loss(jnp.asarray(at_ideal), ideal, mask), 0.0,
                             atol=2e-2)


def test_balance_loss_counts_wandering_gains_and_skips_unknown_ideals():
  ideal = np.ones((2, 2), np.float32)
  mask = np.ones((2, 2), bool)
  wander = np.array([[1.0, 10 ** (6 / 20)], [1.0, 10 ** (-6 / 20)]], np.float32)  # +-6 dB on ch 1
  gains = np.stack([np.stack([np.ones(2, np.float32), wander[0]]),
                    np.stack([np.ones(2, np.float32), wander[1]])])  # [2, 2, 2]
  # Channel 1 is at the right level on average, but 3 dB off (relative to the mean) on every frame.
  np.testing.assert_allclose(losses.balance_loss(jnp.asarray(gains), ideal, mask), [1.5, 1.5],
                             atol=2e-2)
  unknown = ideal.copy()
  unknown[1, 0] = np.nan
  got = losses.balance_loss(jnp.asarray(gains), unknown, mask)
  np.testing.assert_allclose(got, [1.5, 0.0], atol=2e-2)
  grad = jax.grad(lambda g: losses.balance_loss(g, unknown, mask).sum())(jnp.asarray(gains))
  assert np.all(np.isfinite(grad)) and np.all(grad[1] == 0)
  # A channel at zero gain still has a gradient towards its level.
  zero = jnp.asarray(gains).at[0, 1].set(0.0)
  assert np.all(np.asarray(jax.grad(lambda g: losses.balance_loss(g, ideal, mask).sum())(zero))[0, 1]
                < 0)


def test_gain_change_loss_is_the_metric_per_frame():
  """losses.gain_change_loss = metrics.gain_change_db_per_s x the frame duration (one rule)."""
  from alm_jax import metrics  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(1)
  gains = rng.uniform(0.05, 2.0, (2, 3, 9)).astype(np.float32)
  mask = np.array([[1, 1, 1], [1, 1, 0]], bool)
  got = np.asarray(losses.gain_change_loss(jnp.asarray(gains), mask))
  np.testing.assert_allclose(got, metrics.gain_change_db_per_s(gains, 0.05, mask) * 0.05,
                             atol=2e-2)
  still = np.repeat(gains[..., :1], 9, axis=-1)
  np.testing.assert_allclose(losses.gain_change_loss(jnp.asarray(still), mask), 0.0, atol=1e-6)
  # A padding channel's wild gains cost nothing.
  wild = still.copy()
  wild[1, 2] = rng.uniform(0.0, 5.0, 9)
  np.testing.assert_allclose(losses.gain_change_loss(jnp.asarray(wild), mask), 0.0, atol=1e-6)


def test_stereo_loss_mid_side_and_silent_side():
  from alm_jax import stereo  # pylint: disable=g-import-not-at-top
  spec = losses.MRSTFTSpec.from_config(load_config('mr').loss)
  rng = np.random.default_rng(0)
  a, b = rng.standard_normal((2, 2, 8192)).astype(np.float32) * 0.1
  # Centred mixes: the loss is the mono loss of the mids, the (silent) side left out.
  target = stereo.centred(jnp.asarray(a))
  pred = stereo.centred(jnp.asarray(b))
  np.testing.assert_allclose(losses.stereo_loss(pred, target, spec, side_weight=5.0),
                             losses.multi_resolution_stft_loss(b, a, spec), rtol=1e-5)
  assert float(losses.stereo_loss(target, target, spec)[0]) == pytest.approx(0.0, abs=1e-6)
  # A target with a side: a centred prediction pays for the missing side, weighted.
  wide = jnp.stack([jnp.asarray(a), 0.3 * jnp.asarray(a)], axis=1)  # [2, 2, n]: left-heavy
  ms = stereo.mid_side(wide)
  mid_only = losses.stereo_loss(pred, wide, spec, side_weight=0.0)
  both = losses.stereo_loss(pred, wide, spec, side_weight=2.0)
  side = losses.multi_resolution_stft_loss(stereo.mid_side(pred)[:, 1], ms[:, 1], spec)
  np.testing.assert_allclose(both - mid_only, 2.0 * side, rtol=1e-4)
  np.testing.assert_allclose(mid_only, losses.multi_resolution_stft_loss(
      stereo.mid_side(pred)[:, 0], ms[:, 0], spec), rtol=1e-5)
  longer = jnp.pad(wide, [(0, 0), (0, 0), (0, 100)])  # the target is cut to the mix
  np.testing.assert_allclose(losses.stereo_loss(pred, longer, spec), losses.stereo_loss(
      pred, wide, spec), rtol=1e-6)
  with pytest.raises(ValueError, match='fewer than the mix'):
    losses.stereo_loss(longer, wide, spec)
  grads = jax.grad(lambda p: jnp.sum(losses.stereo_loss(p, target, spec)))(pred)
  assert np.isfinite(np.asarray(grads)).all()


def test_spread_loss_teaches_which_parts_are_off_the_centre():
  ideal = np.array([[0.0, -0.4, 0.3, 0.0], [0.5, np.nan, 0.0, 0.0]], np.float32)
  mask = np.array([[True, True, True, False], [True, True, True, True]])
  # Logits: the centre part sure it is not spread, the two off-centre parts sure they are; the
  # masked channel says anything.
  right = np.array([[-20.0, 20.0, 20.0, 3.0], [20.0, 0.0, -20.0, -20.0]])
  right = np.broadcast_to(right[..., None], (2, 4, 3))
  out = np.asarray(losses.spread_loss(jnp.asarray(right), ideal, mask))
  assert out[0] < 1e-4  # the masked one is free
  assert out[1] == 0.0  # an unknown pan on an active channel: no term
  half = np.asarray(losses.spread_loss(jnp.zeros((2, 4, 3)), ideal, mask))
  np.testing.assert_allclose(half[0], np.log(2.0), rtol=1e-5)
  wrong = jnp.asarray(-right)
  assert np.asarray(losses.spread_loss(wrong, ideal, mask))[0] > 10.0
  # A confidently wrong spread still learns (from the logit, not a clipped probability).
  g = jax.grad(lambda x: jnp.sum(losses.spread_loss(x, ideal, mask)))(wrong)
  assert np.abs(np.asarray(g)[0, :3]).min() > 0


def test_pan_loss():
  pans = np.zeros((2, 3, 5), np.float32)
  pans[0, 0] = 0.5
  ideal = np.array([[0.0, 0.0, -1.0], [0.2, np.nan, 0.0]], np.float32)
  mask = np.array([[True, True, False], [True, True, True]])
  out = np.asarray(losses.pan_loss(jnp.asarray(pans), ideal, mask))
  np.testing.assert_allclose(out[0], 0.25)  # (0.5 + 0) / 2 channels; the masked one is free
  assert out[1] == 0.0  # an unknown pan on an active channel: no term
  g = jax.grad(lambda p: jnp.sum(losses.pan_loss(p, ideal, mask)))(jnp.asarray(pans))
  assert np.all(np.asarray(g)[0, 2] == 0) and np.all(np.asarray(g)[1] == 0)


def test_pan_width_loss_is_blind_to_the_side():
  ideal = np.array([[-0.5, 0.3, 0.0]], np.float32)
  mask = np.ones((1, 3), bool)
  mirrored = jnp.asarray(-ideal[..., None] * np.ones((1, 3, 4), np.float32))
  # The mirror image: every side wrong, every width right.
  np.testing.assert_allclose(losses.pan_loss(mirrored, ideal, mask), [2 * 0.8 / 3], rtol=1e-6)
  np.testing.assert_allclose(losses.pan_loss(mirrored, ideal, mask, width_only=True), [0.0])
  # At the centre both say how far the parts should go; a width too wide costs as much.
  centre = jnp.zeros((1, 3, 4))
  np.testing.assert_allclose(losses.pan_loss(centre, ideal, mask, width_only=True), [0.8 / 3],
                             rtol=1e-6)
  np.testing.assert_allclose(losses.pan_loss(mirrored * 2, ideal, mask, width_only=True),
                             [0.8 / 3], rtol=1e-6)
  # Unknown pans: no term, as the full error.
  assert float(losses.pan_loss(centre, np.full((1, 3), np.nan), mask, width_only=True)[0]) == 0.0
