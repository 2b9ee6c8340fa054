"""The C audio callback (`rtcore.c`): loading it, and handing it an `Engine`'s arrays and JACK ports.

`pip install -e .` builds `alm_jax/live/_rtcore*.so` from `rtcore.c` when a C
compiler is present (the extension is optional). `NativeEngine` gives the C
code the addresses of an `Engine`'s NumPy arrays, so C and Python read and
write the same state; `attach_mixer` and `attach_player` make the C functions a
JACK client's process callback, so JACK's real-time thread never takes the GIL.
Everything here runs outside the audio callback.
"""

import ctypes
import importlib.util

import numpy as np

from alm_jax.live import controls as controls_lib

# Indices into Engine.counters, and into Engine.values of the engine's own scalars: rtcore.c's
# enums, in the same order.
WRITTEN, LATE, LAST_LATE, PERIODS, NONFINITE, LIMITED, FRAME, PERIOD, FIRST_TIME, OVERSIZE = range(10)
NUM_COUNTERS = 10
LIMITER_GAIN, RELEASE, TAU, CB_MAX, CB_LAST = range(5)
# Then the global controls the callback reads, from the control table; the C code gets their
# indices in its struct (v_master, v_limit), so the table alone fixes the layout.
VALUE = {name: 5 + i for i, name in enumerate(controls_lib.CALLBACK_SCALARS)}
NUM_VALUES = 5 + len(VALUE)
MASTER, LIMIT = VALUE['master'], VALUE['limit']

ABI_VERSION = 3  # rtcore.c's ALM_ABI_VERSION: the layout of _EngineStruct and the values array
_P = ctypes.c_void_p
_I = ctypes.c_int64


class _EngineStruct(ctypes.Structure):
  _fields_ = ([(n, _I) for n in ('channels', 'f2', 'gain_delay', 'num_slots', 'ring_size',
                                 'max_period', 'late_cap', 'v_master', 'v_limit', 'buses')] +
              [(n, _P) for n in ('ring', 'mix_ring', 'applied', 'chan_mult', 'slot_gains', 'x',
                                 'gm', 'gm_first', 'slot_amps', 'amp', 'bus', 'bus_first',
                                 'slot_stamp', 'bad_frame', 'late_frames', 'counters', 'values')])


class _MixerStruct(ctypes.Structure):
  _fields_ = [('engine', _P), ('client', _P), ('n_out', _I), ('in_ports', _P), ('mix_ports', _P),
              ('out_ports', _P), ('in_bufs', _P), ('mix_bufs', _P), ('out_bufs', _P)]


class _PlayerStruct(ctypes.Structure):
  _fields_ = [('client', _P), ('channels', _I), ('total', _I), ('capture', _I), ('audio', _P),
              ('ports', _P), ('state', _P)]


_LIB = None
_ERROR = None
_JACK = None


def library():
  """The loaded C library, or None (`load_error()` says why)."""
  global _LIB, _ERROR
  if _LIB is None and _ERROR is None:
    spec = importlib.util.find_spec('alm_jax.live._rtcore')
    if spec is None or not spec.origin:
      _ERROR = ('the C audio callback is not built (alm_jax/live/_rtcore*.so): install a C '
                'compiler and rerun `pip install -e .`')
      return None
    try:
      lib = ctypes.CDLL(spec.origin)
    except OSError as e:
      _ERROR = f'cannot load {spec.origin} ({e}): rerun `pip install -e .`'
      return None
    abi = getattr(lib, 'alm_abi_version', None)
    if abi is None or abi() != ABI_VERSION:
      _ERROR = (f'{spec.origin} was built from an older rtcore.c (its engine layout differs): '
                'rebuild it with `pip install -e .` (or python3 setup.py build_ext --inplace)')
      return None
    lib.alm_process.argtypes = [_P, _P, _P, _P, _I]
    lib.alm_process.restype = None
    for name in ('alm_jack_set_mixer', 'alm_jack_set_player'):
      getattr(lib, name).argtypes = [_P]
      getattr(lib, name).restype = ctypes.c_int
    lib.alm_jack_load.restype = ctypes.c_int
    _LIB = lib
  return _LIB


def load_error() -> str | None:
  library()
  return _ERROR


def available() -> bool:
  return library() is not None


def _addr(a: np.ndarray, dtype) -> int:
  if a.dtype != dtype or not a.flags.c_contiguous:
    raise TypeError(f'expected a C-contiguous {np.dtype(dtype).name} array, got {a.dtype} '
                    f'{"" if a.flags.c_contiguous else "non-contiguous "}{a.shape}')
  return a.ctypes.data


def _pointers(arrays) -> ctypes.Array:
  return (_P * len(arrays))(*[_addr(a, np.float32) for a in arrays])


class NativeEngine:
  """The C view of an `Engine`: its `process` is `Engine.process_python` on the same arrays."""

  def __init__(self, engine):
    lib = library()
    if lib is None:
      raise RuntimeError(load_error())
    self.lib, self.engine = lib, engine
    e = engine
    f32, i64 = np.float32, np.int64
    self.struct = _EngineStruct(
        e.channels, e.f2, e.gain_delay, e.slot_gains.shape[0], e.ring_size, e.x.shape[1],
        e.late_frames.shape[0], MASTER, LIMIT, e.buses,
        _addr(e.ring, f32), _addr(e.mix_ring, f32), _addr(e.applied, f32),
        _addr(e.chan_mult, f32), _addr(e.slot_gains, f32), _addr(e.x, f32), _addr(e.gm, f32),
        _addr(e.gm_first, f32), _addr(e.slot_amps, f32), _addr(e.amp, f32), _addr(e.bus, f32),
        _addr(e.bus_first, f32), _addr(e.slot_stamp, i64), _addr(e.bad_frame, i64),
        _addr(e.late_frames, i64), _addr(e.counters, i64), _addr(e.values, np.float64))
    self.address = ctypes.addressof(self.struct)

  def process(self, inputs, mix, outs=None):
    """One period from Python (no JACK: FileDriver, tests); same arguments as `Engine.process`."""
    mixes = self.engine.buses_of(mix)
    n = mixes[0].shape[0]
    ins = _pointers(inputs)
    if any(a.shape[0] != n for a in inputs) or any(a.shape[0] != n for a in outs or ()):
      raise ValueError('every input and output buffer must have the mix buffer\'s length')
    m = _pointers(mixes)
    o = _pointers(outs) if outs is not None else None
    self.lib.alm_process(self.address, ctypes.addressof(ins), ctypes.addressof(m),
                         ctypes.addressof(o) if o is not None else None, n)


def _jack_library():
  global _JACK
  lib = library()
  if lib is None:
    raise RuntimeError(load_error())
  if _JACK is None:
    rc = lib.alm_jack_load()
    if rc != 0:
      raise RuntimeError('the C audio callback cannot find libjack.so.0 (install Debian jackd2 '
                         'or PipeWire\'s JACK layer), or run with --callback=python.')
    _JACK = lib
  return _JACK


def _jack_ptr(obj) -> int:
  """The C address behind a JACK-Client `Client` or `Port` (its cffi pointer)."""
  import jack  # pylint: disable=g-import-not-at-top
  return int(jack._ffi.cast('uintptr_t', obj._ptr))  # pylint: disable=protected-access


class _Attached:
  """Keeps the ctypes structs a JACK callback points into alive as long as the client."""

  def __init__(self, struct, *keep):
    self.struct, self.keep = struct, keep


def attach_mixer(native: NativeEngine, client, in_ports, mix_ports, out_ports=()):
  """Makes the C mixer `client`'s process callback (call before `client.activate()`).

  mix_ports: the engine's buses' ports ([mix], or [left, right] on a stereo engine).
  Returns an object to keep while the client lives: the callback reads it.
  """
  lib = _jack_library()
  c, buses = native.engine.channels, native.engine.buses
  if len(in_ports) != c or (out_ports and len(out_ports) != c) or len(mix_ports) != buses:
    raise ValueError(f'{len(in_ports)} input, {len(mix_ports)} mix and {len(out_ports)} output '
                     f'ports for {c} channels and {buses} mix buses')
  ins = (_P * c)(*[_jack_ptr(p) for p in in_ports])
  mixes = (_P * buses)(*[_jack_ptr(p) for p in mix_ports])
  outs = (_P * max(len(out_ports), 1))(*[_jack_ptr(p) for p in out_ports])
  in_bufs, mix_bufs, out_bufs = (_P * c)(), (_P * buses)(), (_P * max(len(out_ports), 1))()
  m = _MixerStruct(native.address, _jack_ptr(client), len(out_ports), ctypes.addressof(ins),
                   ctypes.addressof(mixes), ctypes.addressof(outs), ctypes.addressof(in_bufs),
                   ctypes.addressof(mix_bufs), ctypes.addressof(out_bufs))
  if lib.alm_jack_set_mixer(ctypes.addressof(m)) != 0:
    raise RuntimeError('jack_set_process_callback failed for the mixer client')
  return _Attached(m, native, ins, mixes, outs, in_bufs, mix_bufs, out_bufs)


def attach_player(client, ports, audio: np.ndarray, state: np.ndarray, capture: bool = False):
  """Makes a C file player `client`'s process callback: plays audio [c, samples] into `ports`.

  state: int64 [2], [0] the next sample (the callback advances it), [1] 1 to run.
  capture: instead record the (input) `ports` into `audio`, from state[0] on.
  """
  lib = _jack_library()
  if audio.shape[0] != len(ports):
    raise ValueError(f'{audio.shape[0]} channels of audio for {len(ports)} ports')
  ptrs = (_P * len(ports))(*[_jack_ptr(p) for p in ports])
  p = _PlayerStruct(_jack_ptr(client), audio.shape[0], audio.shape[1], int(capture),
                    _addr(audio, np.float32), ctypes.addressof(ptrs), _addr(state, np.int64))
  if lib.alm_jack_set_player(ctypes.addressof(p)) != 0:
    raise RuntimeError('jack_set_process_callback failed for the player client')
  return _Attached(p, ptrs, audio, state)
