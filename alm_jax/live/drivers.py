"""What feeds the engine: a JACK client (`JackDriver`), a JACK file player (`JackPlayer`), or no JACK at all (`FileDriver`).

`JackDriver` owns the mixer's JACK client: one input port per channel, a mono
`mix` output, or `mix_left` and `mix_right` for a stereo engine (and `out_XX`
gained channels with --channel_outputs). Its process
callback is the C one (`native.attach_mixer`: JACK's thread never takes the GIL)
when the engine has one, else a Python function handing the port buffers to
`Engine.process`; `JackPlayer` likewise. Server loss and port
disconnects are noticed in JACK's notification thread and acted on by `poll`,
which the main thread calls a few times a second: it reopens the client (every
`retry_seconds`) and remakes the requested connections.
"""

import logging
import threading
import time

import numpy as np

from alm_jax import songio
from alm_jax.live import engine as engine_lib
from alm_jax.live import native as native_lib


def load_song_dir(song_dir, channels: int, sample_rate: int):
  """A folder of channel files -> float32 [channels, samples] (missing channels silent)."""
  songs = songio.discover_songs([str(song_dir)])
  if len(songs) != 1:
    raise ValueError(f'--play={song_dir}: expected one song folder of channel files, found '
                     f'{len(songs)} songs.')
  songio.validate_songs(songs, channels, pad_unequal=True)
  audio = songio.load_song(songs[0], sample_rate)
  out = np.zeros((channels, audio.shape[1]), np.float32)
  out[:audio.shape[0]] = audio
  return out, songs[0].channel_names


def parse_ports(spec: str, prefix: str) -> list[str]:
  """'1-4,7' -> [prefix+'1', ..., prefix+'7']; a comma list of full port names passes through."""
  names = []
  for part in [p.strip() for p in spec.split(',') if p.strip()]:
    if ':' in part:
      names.append(part)
    elif '-' in part:
      a, b = part.split('-')
      names.extend(f'{prefix}{i}' for i in range(int(a), int(b) + 1))
    else:
      names.append(f'{prefix}{int(part)}')
  return names


class JackUnavailable(RuntimeError):
  """No JACK server to connect to (or no JACK library); the message says how to start one."""


def check_jack_server(server: str | None = None):
  """Raises JackUnavailable, at once, where no JACK server `server` (None: the default) runs.

  libjack answers within milliseconds when no server listens; the message
  names the commands that start one and --no_jack.
  """
  try:
    import jack  # pylint: disable=g-import-not-at-top  (optional: JACK-Client and libjack)
  except (ImportError, OSError) as e:
    raise JackUnavailable(
        f'cannot load JACK ({e}): install it (pip install JACK-Client; apt-get install jackd2), '
        'or run without JACK: --no_jack --play=SONG_DIR.') from None
  jack.set_error_function(lambda message: None)  # libjack's own 'Cannot connect' lines
  try:
    jack.Client('alm_live_probe', servername=server, no_start_server=True).close()
  except jack.JackError:
    name = f'named {server!r}' if server else '(the default server)'
    raise JackUnavailable(
        f'no JACK server {name} is running. Start one first: `jackd -d dummy -r 44100` (no '
        'audio interface) or `jackd -d alsa -d hw:0 -r 44100` (an interface; or qjackctl, or '
        'PipeWire\'s JACK layer), name another with --server=NAME, or mix a folder without JACK: '
        '--no_jack --play=SONG_DIR.') from None
  finally:
    jack.set_error_function(None)


MIX_PORTS = {1: ('mix',), 2: ('mix_left', 'mix_right')}  # by the engine's buses


def largest_period(f2: int) -> int:
  """The longest period (samples) the engine mixes exactly: MAX_PERIOD, and at most one F2 frame.

  A period crosses at most one F2 boundary only if it is no longer than F2: the callbacks mix a
  period in at most two parts (the old and the new frame's gains), so a longer one would give
  the samples of a third frame the second frame's gains.
  """
  return min(engine_lib.MAX_PERIOD, int(f2))


def check_period(f2: int, period: int, fix: str):
  """Raises ValueError naming `fix` where a model of F2 frame `f2` cannot be mixed in `period`s."""
  most = largest_period(f2)
  if period > most:
    raise ValueError(f'a period of {period} samples is longer than the {most} the mixer handles '
                     f'(at most one F2 frame, {f2} samples, and {engine_lib.MAX_PERIOD}): {fix}.')


class JackDriver:
  """The mixer's JACK client.

  destinations: ports the mix goes to; a stereo engine's left and right go to
  the first and second (none or two of them), a mono engine's mix to each.

  Attributes:
    xruns: xruns JACK reported while this driver ran.
    connected: whether the client is open and active.
    message: the last state change, for the UI.
    first_frame_time: JACK frame time of the first period processed (or None).
  """

  def __init__(self, engine, *, name='alm_live', server=None, sources=(), destinations=(),
               channel_outputs=False, retry_seconds=2.0):
    self.engine, self.name, self.server = engine, name, server
    self.sources, self.destinations = list(sources), list(destinations)
    if engine.stereo and len(self.destinations) not in (0, 2):
      raise ValueError(f'a stereo mix goes to two ports (left, right), got {self.destinations}: '
                       'pass --output=L,R, or one port for a mono mix.')
    self.channel_outputs = channel_outputs
    self.retry_seconds = retry_seconds
    self.xruns = 0
    self.connected = False
    self.message = 'not started'
    self.xrun_times = []  # seconds after the (last) open
    self._opened = time.monotonic()
    self.client = None
    self._lost = threading.Event()
    self._dirty = threading.Event()  # a connection changed: check ours
    self._next_try = 0.0
    self._dead = False  # the server shut this client down
    self.lost_a_server = False
    self.kind = 'JACK'
    self._told = False
    self._attached = None  # the C callback's structs, kept alive with the client

  @property
  def first_frame_time(self):
    return self.engine.first_frame_time

  def open(self):
    import jack  # pylint: disable=g-import-not-at-top
    eng = self.engine
    client = jack.Client(self.name, servername=self.server, no_start_server=True)
    if client.samplerate != eng.sample_rate:
      client.close()
      raise RuntimeError(f'The JACK server runs at {client.samplerate} Hz but the model mixes '
                         f'{eng.sample_rate} Hz audio: restart jackd with -r {eng.sample_rate}.')
    try:
      check_period(eng.f2, client.blocksize, 'restart jackd with a smaller -p (a power of '
                   f'two <= {largest_period(eng.f2)})')
    except ValueError as e:
      client.close()
      raise RuntimeError(f'JACK: {e}') from None
    ins = [client.inports.register(f'in_{i + 1:02d}') for i in range(eng.channels)]
    mixports = [client.outports.register(name) for name in MIX_PORTS[eng.buses]]
    outs = ([client.outports.register(f'out_{i + 1:02d}') for i in range(eng.channels)]
            if self.channel_outputs else [])
    if eng.native is not None:
      self._attached = native_lib.attach_mixer(eng.native, client, ins, mixports, outs)
    else:
      bufs, obufs = [None] * len(ins), [None] * len(outs)
      mbufs = [None] * len(mixports)
      process, counters = eng.process, eng.counters

      def callback(frames):
        del frames
        for i, p in enumerate(ins):
          bufs[i] = p.get_array()
        for i, p in enumerate(outs):
          obufs[i] = p.get_array()
        for i, p in enumerate(mixports):
          mbufs[i] = p.get_array()
        if counters[native_lib.FIRST_TIME] < 0:
          counters[native_lib.FIRST_TIME] = client.last_frame_time
        process(bufs, mbufs if len(mbufs) == 2 else mbufs[0], obufs if outs else None)

      client.set_process_callback(callback)
    client.set_xrun_callback(self._on_xrun)
    client.set_shutdown_callback(self._on_shutdown)
    client.set_port_connect_callback(self._on_connect)
    client.set_blocksize_callback(self._on_blocksize)
    self.ins, self.mixports, self.outs = ins, mixports, outs
    self._opened = time.monotonic()
    self._dead = self._told = False
    client.activate()
    self.client = client
    self.connected = True
    self._lost.clear()
    self.connect_all()
    self.message = (f'JACK: client {client.name} on server {self.server or "default"}, '
                    f'{client.samplerate} Hz, period {client.blocksize}, {eng.callback} callback')
    logging.info(self.message)

  def connect_all(self):
    """Makes the requested connections that are missing (sources -> in_XX, mix -> destinations)."""
    for src, port in zip(self.sources, self.ins):
      self._connect(src, port.name)
    if len(self.mixports) == 2:  # left -> the first destination, right -> the second
      pairs = zip(self.mixports, self.destinations)
    else:
      pairs = [(self.mixports[0], dst) for dst in self.destinations]
    for port, dst in pairs:
      self._connect(port.name, dst)

  def _connect(self, a, b):
    try:
      if b not in [p.name for p in self.client.get_all_connections(a)]:
        self.client.connect(a, b)
    except Exception as e:  # pylint: disable=broad-except
      self.message = f'JACK: cannot connect {a} -> {b} ({e}); will retry'
      logging.warning(self.message)

  def _on_xrun(self, delay):
    del delay
    self.xruns += 1
    if len(self.xrun_times) < 1000:
      self.xrun_times.append(round(time.monotonic() - self._opened, 3))

  def _on_shutdown(self, status, reason):
    del status
    self.connected = False
    self.message = f'JACK server gone ({reason}); reconnecting every {self.retry_seconds:g} s'
    self._dead = True  # libjack invalidated the client: never call it again
    self.lost_a_server = True
    self._lost.set()

  def _on_connect(self, a, b, connect):
    if not connect:
      self._dirty.set()

  def _on_blocksize(self, blocksize):
    if blocksize > largest_period(self.engine.f2):
      self.message = f'JACK period {blocksize} is too large (max {largest_period(self.engine.f2)})'
      raise RuntimeError(self.message)

  def poll(self):
    """Main thread: reconnect after a server loss, remake dropped connections. Never raises."""
    if self._lost.is_set() or self.client is None:
      if self._lost.is_set() and not self._told:
        self._told = True
        logging.error(self.message)
      now = time.monotonic()
      if now < self._next_try:
        return
      self._next_try = now + self.retry_seconds
      self._drop_client()
      try:
        self.open()
        logging.info('JACK: reconnected')
      except Exception as e:  # pylint: disable=broad-except
        self.message = f'JACK server unavailable ({e}); retrying every {self.retry_seconds:g} s'
        logging.warning(self.message)
      return
    if self._dirty.is_set():
      self._dirty.clear()
      self.message = 'JACK: a port was disconnected; reconnecting the requested ports'
      logging.warning(self.message)
      self.connect_all()

  def _drop_client(self):
    client, self.client = self.client, None
    self.connected = False
    if client is not None and not self._dead:
      try:
        client.deactivate(ignore_errors=True)
        client.close(ignore_errors=True)
      except Exception:  # pylint: disable=broad-except
        pass
    # Only now that the client is closed may the C callback's structs go.
    self._attached = None

  def close(self):
    self._drop_client()


def attach_transport(client, ports, audio: np.ndarray, state: np.ndarray, *,
                     capture: bool = False, native: bool | None = None):
  """Makes `client`'s process callback play `audio` [c, samples] into `ports`, or record them into it.

  From sample state[0] on (the callback advances it) while state[1] is 1;
  state is int64 [2]. The C callback (rtcore.c) where built (native None),
  else a Python one. Returns what must live as long as the client.
  """
  if native is None:
    native = native_lib.available()
  if native:
    return native_lib.attach_player(client, ports, audio, state, capture=capture)
  total = audio.shape[1]

  def callback(frames):
    pos = int(state[0])
    n = max(min(frames, total - pos), 0) if state[1] else 0
    for ch, p in enumerate(ports):
      buf = p.get_array()
      if capture:
        audio[ch, pos:pos + n] = buf[:n]
      else:
        buf[:n] = audio[ch, pos:pos + n]
        buf[n:] = 0.0
    state[0] = pos + n

  client.set_process_callback(callback)
  return callback


class JackPlayer:
  """Plays [channels, samples] audio into JACK ports at real-time pace (its own client).

  native: the C callback (rtcore.c) if built (None), or force it on/off.
  """

  def __init__(self, audio, *, name='alm_play', server=None, destinations=(), native=None):
    import jack  # pylint: disable=g-import-not-at-top
    self.audio = np.ascontiguousarray(audio, np.float32)
    self._state = np.zeros(2, np.int64)  # [next sample, playing]: the callback reads both
    self.client = jack.Client(name, servername=server, no_start_server=True)
    self.ports = [self.client.outports.register(f'out_{i + 1:02d}')
                  for i in range(self.audio.shape[0])]
    self._attached = attach_transport(self.client, self.ports, self.audio, self._state,
                                      native=native)
    self.dead = False
    self.client.set_shutdown_callback(lambda status, reason: setattr(self, 'dead', True))
    self.client.activate()
    for p, d in zip(self.ports, destinations):
      self.client.connect(p.name, d)

  @property
  def pos(self) -> int:
    return int(self._state[0])

  @property
  def done(self) -> bool:
    return self.pos >= self.audio.shape[1]

  def start(self):
    self._state[1] = 1

  def close(self):
    if self.dead:  # its server went away: libjack has invalidated the client
      return
    try:
      self.client.deactivate(ignore_errors=True)
      self.client.close(ignore_errors=True)
    except Exception:  # pylint: disable=broad-except
      pass


class FileDriver(threading.Thread):
  """No JACK: feeds [channels, samples] audio to the engine in periods, at real-time pace or as fast as the worker allows.

  With pace=False each period waits for the worker's gains it needs
  (`lockstep`), so the result does not depend on timing (tests, offline checks).
  """

  def __init__(self, engine, audio, *, period=128, pace=True, worker_frame=None, tail=0):
    super().__init__(name='alm-live-file-driver', daemon=True)
    check_period(engine.f2, int(period), f'pass --period={largest_period(engine.f2)} or less')
    self.engine, self.period, self.pace = engine, int(period), pace
    self.audio = np.ascontiguousarray(audio, np.float32)
    self.worker_frame = worker_frame  # callable -> frames the worker has processed
    self.tail = int(tail)  # silent samples after the audio
    self.done = threading.Event()
    self._halt = threading.Event()
    self.xruns = 0
    self.connected = False  # no JACK client: info.json's jack_connected says so
    self.kind = 'no JACK (--no_jack)'
    self.message = 'no JACK: playing files'
    self.rt_priority = 0

  def stop(self):
    self._halt.set()

  def poll(self):
    pass

  def run(self):
    engine_lib.set_realtime(self.rt_priority)
    eng, n = self.engine, self.period
    c, total = self.audio.shape[0], self.audio.shape[1] + self.tail
    bufs = np.zeros((c, n), np.float32)
    mix = np.zeros(eng.mix_ring.shape[:-1] + (n,), np.float32)  # [n], or [2, n] stereo
    t0 = time.monotonic()
    pos = 0
    while pos < total and not self._halt.is_set():
      k = min(n, self.audio.shape[1] - pos)
      bufs[:] = 0.0
      if k > 0:
        bufs[:, :k] = self.audio[:, pos:pos + k]
      if self.pace:
        delay = t0 + pos / eng.sample_rate - time.monotonic()
        if delay > 0:
          time.sleep(delay)
      elif self.worker_frame is not None:
        need = (eng.written + n - 1) // eng.f2 - eng.gain_delay
        while self.worker_frame() < need and not self._halt.is_set():
          time.sleep(0.0005)
      eng.process(bufs, mix)
      pos += n
    self.done.set()
