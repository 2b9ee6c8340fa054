"""musicnn's log-mel front end, in JAX, from model-rate (44.1 kHz) audio.

The audio is resampled to 16 kHz with `alm_jax.embeddings.vggish_frontend.resample` (the causal
Kaiser-windowed sinc the VGGish front end uses, anchored at the end of each F1
frame), then turned into musicnn's log-mel (musicnn/extractor.py): a power
spectrogram (periodic Hann window of 512 samples, FFT 512, hop 256), librosa's
Slaney-style mel filterbank (96 bands, 0-8 kHz, `norm='slaney'`), then
`log10(10000 * mel + 1)`. Unlike librosa's default, the frames are not centred:
row r covers 16 kHz samples [r * hop, r * hop + 512), so a frame's last row ends
with the frame and no row reads the future. The release stored its training
spectrograms as float16; this front end stays in float32 (see docs/embeddings.md).

An F1 frame's patch is the last `patch_frames` rows that end with the frame;
`MusicnnSpec.frame_input_samples` input samples feed it, silence before the
signal starts. `log_mel_frames` has the contract of
`alm_jax.embeddings.vggish_frontend.log_mel_frames` (shared rows when consecutive F1 frames are a
whole number of resampler blocks and hops apart, else frame by frame); `MusicnnFrontend`
is this front end as a `frontend.Frontend`.
"""

import dataclasses
import functools
import math

import jax.numpy as jnp
import numpy as np

from alm_jax import frames as framing
from alm_jax.embeddings import frontend
from alm_jax.embeddings import vggish_frontend


@dataclasses.dataclass(frozen=True)
class MusicnnSpec(frontend.PatchGeometry):
  """musicnn's front end; `patch_frames` rows per F1 frame (the release trains on 187 = 3 s)."""
  in_rate: int = 44100
  out_rate: int = 16000
  window: int = 512
  hop: int = 256
  n_fft: int = 512
  n_mels: int = 96
  fmin: float = 0.0
  fmax: float = 8000.0
  log_scale: float = 10000.0
  patch_frames: int = 187
  zero_crossings: int = 16
  rolloff: float = 0.945

  @classmethod
  def for_f1(cls, f1_samples: int, **kwargs):
    """The spec whose patch is the most rows an F1 frame of `f1_samples` input samples holds."""
    spec = cls(**kwargs)
    available = int(math.floor(f1_samples * spec.out_rate / spec.in_rate))
    rows = (available - spec.window) // spec.hop + 1
    if rows < 1:
      raise ValueError(f'An F1 frame of {f1_samples} samples holds no musicnn log-mel row '
                       f'({spec.window} samples at {spec.out_rate} Hz): raise config.model.f1_ms.')
    return dataclasses.replace(spec, patch_frames=rows)

  @property
  def resampler(self) -> vggish_frontend.FrontendSpec:
    """The `vggish_frontend.FrontendSpec` whose resampler this front end uses."""
    return vggish_frontend.FrontendSpec(in_rate=self.in_rate, out_rate=self.out_rate,
                                 zero_crossings=self.zero_crossings, rolloff=self.rolloff)


def hertz_to_mel(f):
  """Slaney's mel scale (librosa's default, htk=False): linear to 1 kHz, logarithmic above."""
  f = np.asarray(f, np.float64)
  f_sp, min_log_hz = 200.0 / 3, 1000.0
  logstep = np.log(6.4) / 27.0
  linear = f / f_sp
  return np.where(f >= min_log_hz,
                  min_log_hz / f_sp + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep,
                  linear)


def mel_to_hertz(m):
  m = np.asarray(m, np.float64)
  f_sp, min_log_hz = 200.0 / 3, 1000.0
  min_log_mel, logstep = min_log_hz / f_sp, np.log(6.4) / 27.0
  return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=8)
def mel_matrix(n_mels: int, n_fft: int, sample_rate: int, fmin: float, fmax: float):
  """[n_fft // 2 + 1, n_mels] Slaney mel weights, area-normalised (librosa `norm='slaney'`)."""
  if not 0.0 <= fmin < fmax <= sample_rate / 2.0:
    raise ValueError(f'Need 0 <= fmin < fmax <= {sample_rate / 2.0} Hz, got {fmin}, {fmax}.')
  bins_hz = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
  edges = mel_to_hertz(np.linspace(hertz_to_mel(fmin), hertz_to_mel(fmax), n_mels + 2))
  lower, center, upper = edges[:-2], edges[1:-1], edges[2:]
  rising = (bins_hz[:, None] - lower[None]) / (center - lower)[None]
  falling = (upper[None] - bins_hz[:, None]) / (upper - center)[None]
  weights = np.maximum(0.0, np.minimum(rising, falling))
  return weights * (2.0 / (upper - lower))[None]


def log_mel_rows(x16, num_rows, spec: MusicnnSpec):
  """musicnn log-mel rows of a 16 kHz signal: row r covers samples [r * hop, r * hop + window).

  Args:
    x16: [..., m], m >= (num_rows - 1) * hop + window (shorter: zero-padded).
    num_rows: rows to compute.
  Returns:
    [..., num_rows, n_mels].
  """
  spectrum = jnp.fft.rfft(frontend.windowed_rows(x16, num_rows, spec), n=spec.n_fft, axis=-1)
  power = jnp.real(spectrum) ** 2 + jnp.imag(spectrum) ** 2
  mel = power @ jnp.asarray(mel_matrix(spec.n_mels, spec.n_fft, spec.out_rate, spec.fmin, spec.fmax),
                            power.dtype)
  return jnp.log10(spec.log_scale * mel + 1.0)


shares_rows = vggish_frontend.shares_rows  # the same rule: whole resampler blocks and log-mel hops


def check_frame(f1: int, spec: MusicnnSpec):
  """Raises ValueError if an F1 frame of `f1` input samples is too short for one patch."""
  available = int(math.floor(f1 * spec.out_rate / spec.in_rate))
  if available < spec.patch_samples:
    raise ValueError(f'An F1 frame of {f1} samples at {spec.in_rate} Hz holds {available} samples at '
                     f'{spec.out_rate} Hz, fewer than the {spec.patch_samples} a musicnn patch of '
                     f'{spec.patch_frames} rows needs: raise config.model.f1_ms or use '
                     'MusicnnSpec.for_f1.')


def log_mel_frames(x, num_frames, hop: int, spec: MusicnnSpec):
  """musicnn log-mel patches [..., num_frames, patch_frames, 96] (as `vggish_frontend.log_mel_frames`)."""
  return vggish_frontend.log_mel_frames(x, num_frames, hop, spec, rows_fn=log_mel_rows)


def frame_input(audio, frame_spec, spec: MusicnnSpec):
  """The front end's input for every F1 frame of whole signals (see `frames.f1_frames`).

  Args:
    audio: [..., samples].
    frame_spec: `frames.FrameSpec`.
  Returns:
    (x [..., (g - 1) * hop + frame_input_samples], g), as `vggish_frontend.frame_input`.
  """
  check_frame(frame_spec.f1, spec)
  return framing.frame_signal(audio, frame_spec, spec.frame_input_samples)


@dataclasses.dataclass(frozen=True)
class MusicnnFrontend(frontend.Frontend):
  """musicnn's log-mel front end as a `frontend.Frontend` (its shape contract)."""
  spec: MusicnnSpec

  @classmethod
  def from_config(cls, model_config) -> 'MusicnnFrontend':
    """The front end whose patch is the most rows the F1 frame holds."""
    f1 = framing.FrameSpec.from_config(model_config).f1
    return cls(MusicnnSpec.for_f1(f1, in_rate=int(model_config.sample_rate)))

  @property
  def resampler(self) -> vggish_frontend.FrontendSpec:
    return self.spec.resampler

  def resample(self, x):
    return vggish_frontend.resample(x, self.spec.resampler)

  def log_mel_rows(self, x16, num_rows):
    return log_mel_rows(x16, num_rows, self.spec)

  def log_mel_frames(self, x, num_frames, hop: int):
    return log_mel_frames(x, num_frames, hop, self.spec)

  def frame_input(self, audio, frame_spec):
    return frame_input(audio, frame_spec, self.spec)

  def check_frame(self, f1: int) -> None:
    check_frame(f1, self.spec)

  def shares_rows(self, hop: int) -> bool:
    return shares_rows(hop, self.spec)

  def mel_power(self, log_mel):
    # log10(s x + 1) inverted with expm1: exact for the quiet rows where 10**r - 1 cancels.
    return jnp.expm1(log_mel * math.log(10.0)) / self.spec.log_scale

  def log_of_power(self, power):
    return jnp.log1p(self.spec.log_scale * power) / math.log(10.0)
