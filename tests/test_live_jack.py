"""`python -m alm_jax.live` against a real JACK server (jackd -d dummy, which runs in real time).

The mixer runs as its own process, exactly as on a show, playing a song into
its own input ports (--play, its own JACK client) and recording (--record);
this test process captures the mixer's `mix` output port with a second JACK
client. Checks: the recorded inputs are the song, the recorded mix equals the
offline zero-latency mix (mix_arrays) of those inputs with the gains delayed by
gain_delay frames, the captured port equals the recording at a fixed offset
(found from the JACK frame times and stated), no late result, and no xrun
where jackd itself keeps time (its log has no driver xrun; bench/jack_xruns.py
measures that floor).
Skipped, with the reason, where jackd or the JACK-Client package is missing.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile as sf

from alm_jax.live import controls as controls_lib
from alm_jax.live import drivers
from alm_jax.live import engine as engine_lib
from alm_jax.live import native as native_lib
from alm_jax.live import recorder as recorder_lib
from checkpoint_fixtures import TinyModel, save_checkpoint
import live_helpers
import optional

jack = optional.import_or_skip('jack', 'apt-get install jackd2')  # libjack; JACK-Client is a dependency
pytestmark = [
    pytest.mark.skipif(shutil.which('jackd') is None,
                       reason='jackd is not installed (apt-get install jackd2)'),
    pytest.mark.xdist_group('live_jack'),  # real time: never two of these at once
]
C = 8
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _jack_server(period, name=None):
  """live_helpers.JackServer, a start failure failing the test with jackd's log."""
  try:
    return live_helpers.JackServer(period, name)
  except RuntimeError as e:
    pytest.fail(str(e))


class Capture:
  """A JACK client recording ports into preallocated buffers (its own process callback).

  The C capture callback (rtcore.c) where it is built, so that this probe, in
  the test's own Python process, is not late itself; else a Python one.
  """

  def __init__(self, server, sources, seconds):
    self.buf = np.zeros((len(sources), int(seconds * 44100)), np.float32)
    self._state = np.zeros(2, np.int64)  # [next sample, recording]
    self.client = jack.Client('alm_capture', servername=server, no_start_server=True)
    self.ports = [self.client.inports.register(f'in_{i}') for i in range(len(sources))]
    self.sources = sources
    self._attached = drivers.attach_transport(self.client, self.ports, self.buf, self._state,
                                              capture=True)
    self.client.activate()

  @property
  def pos(self) -> int:
    return int(self._state[0])

  def connect_when_ready(self, proc, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      if all(self.client.get_ports(s) for s in self.sources):
        try:
          for s, p in zip(self.sources, self.ports):
            if p.name not in [q.name for q in self.client.get_all_connections(s)]:
              self.client.connect(s, p.name)
        except jack.JackError:
          # A client's ports are listed as soon as they are registered, but jackd refuses
          # to connect them until that client is activated: try again.
          time.sleep(0.05)
          continue
        self._state[1] = 1  # from now: the mixer has started, the song has not
        return
      if proc.poll() is not None:
        pytest.fail(f'the mixer exited early: {proc.stdout.read()}')
      time.sleep(0.05)
    pytest.fail(f'no ports {self.sources} after {timeout} s')

  def close(self):
    self.client.deactivate()
    self.client.close()


@pytest.fixture(scope='module')
def setup(tmp_path_factory):
  """A checkpoint of a tiny 8-channel ALM-MR and a song folder (10 s and 20 s songs)."""
  base = tmp_path_factory.mktemp('live_jack')
  tm = TinyModel('mr', max_channels=32)
  save_checkpoint(base / 'ckpt', tm.config, tm.params)
  tm.ckpt = base / 'ckpt'
  tm.songs = {}
  for seconds in (10, 20):
    audio = live_helpers.song(C, seconds, seed=seconds)
    folder = base / f'song_{seconds}'
    folder.mkdir()
    for ch in range(C):
      sf.write(folder / f'ch{ch + 1:02d}.wav', audio[ch], 44100, subtype='FLOAT')
    tm.songs[seconds] = (folder, audio)
  tm.base = base
  return tm


def _mixer_cmd(setup, song_dir, record, server, extra=()):
  return [sys.executable, '-m', 'alm_jax.live', f'--checkpoint={setup.ckpt}', f'--play={song_dir}',
          f'--record={record}', f'--server={server}', '--ceiling_db=60', '--slew_db=0',
          '--limit_db=off', '--osc_port=0', '--ui=off', '--play_delay=2', *extra]


def _read_recording(record):
  record = record / 'take-001'  # --record=DIR: the first take
  ins = [sf.read(record / f'in_{ch + 1:02d}.wav', dtype='float32')[0] for ch in range(C)]
  n = min(x.shape[0] for x in ins)
  mix = sf.read(record / 'mix.wav', dtype='float32')[0]
  return np.stack([x[:n] for x in ins]), mix[:n]


def _find(hay, needle):
  """First index where `needle` occurs exactly in `hay`, or None."""
  for i in np.flatnonzero(hay == needle[0]):
    if i + needle.shape[0] <= hay.shape[0] and np.array_equal(hay[i:i + needle.shape[0]], needle):
      return int(i)
  return None


def _windows(start, n, width=1024, every=22050):
  return [slice(a, a + width) for a in range(start, start + n - width, every)]


def _song_offset(recorded, song, exact=True):
  """Sample of the recording where the song starts; checks the song is there.

  exact=False (there were xruns): a client not run in a cycle loses or shifts
  that cycle's samples, so check that windows of the recording are pieces of
  the song instead.
  """
  start = int(np.flatnonzero(recorded[0])[0]) - int(np.flatnonzero(song[0])[0])
  n = min(song.shape[1], recorded.shape[1] - start)
  if exact:
    np.testing.assert_array_equal(recorded[:, start:start + n], song[:, :n])
  else:
    wins = _windows(start, n)
    found = [_find(song[0], recorded[0, w]) is not None for w in wins]
    assert np.mean(found) > 0.8, f'only {np.mean(found):.0%} of the recording is the song'
    print(f'{np.mean(found):.0%} of {len(wins)} windows of the recorded inputs are in the song')
  return start, n


def _run_and_check(setup, period, seconds, tmp_path, callback='auto'):
  song_dir, song = setup.songs[seconds]
  server = _jack_server(period)
  record = tmp_path / 'show'
  cap = None
  proc = subprocess.Popen(_mixer_cmd(setup, song_dir, record, server.name,
                                     [f'--callback={callback}']), cwd=REPO,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  try:
    # The mixer's output and what its player sends into its inputs, side by side.
    cap = Capture(server.name, ['alm_live:mix'] + [f'alm_live_play:out_{ch + 1:02d}'
                                                   for ch in range(C)], seconds + 30)
    cap.connect_when_ready(proc, timeout=400)
    out, _ = proc.communicate(timeout=seconds + 400)
    assert proc.returncode == 0, out
  finally:
    if proc.poll() is None:  # a failed check must not leave the mixer running
      proc.kill()
      proc.wait()
    if cap is not None:
      cap.close()
    server.close()
  info = json.loads((record / 'take-001' / 'info.json').read_text())
  stats = info['stats']
  print(f'period {period}: {stats}')
  native = callback == 'native' or (callback == 'auto' and native_lib.available())
  assert stats['callback'] == ('native' if native else 'python'), stats
  # Zero xruns is asserted where jackd itself kept time: on a machine whose dummy driver wakes
  # late (its own 'JackTimedDriver::Process XRun' lines; on this project's 2-core VM even with
  # no client at all, bench/jack_xruns.py) no client can be on time, so there they are reported.
  # Where it did, the mixer's own clients (the mixer and its --play player) must never have
  # been late; the test's capture probe, a third client, is not the mixer's, so its late
  # cycles are reported. The Python callback fallback needs the GIL every period
  # (docs/live.md): its xruns are reported too; the test checks that it mixes exactly.
  driver, late, _, _ = server.xruns()
  mixer_late = {k: v for k, v in late.items() if k in ('alm_live', 'alm_live_play')}
  if driver == 0 and native:
    assert not mixer_late, (dict(late), out)
  else:
    print(f'{stats["xruns"]} xruns, jackd\'s own timer late {driver} times, clients late '
          f'{dict(late)}: not asserted')
  inputs, mix = _read_recording(record)
  start, n = _song_offset(inputs, song, exact=not stats['xruns'])
  assert n == song.shape[1]
  # No late result while the song plays (the first frames after the client
  # opens, before the song, may be on a loaded machine: see docs/live.md).
  f2 = info['f2']
  during = [f for f in stats['late_frames'] if start // f2 <= f <= (start + n) // f2]
  assert not during, f'late results in frames {during} of the song: {out}'
  if stats['late']:
    print(f"late results before the song: frames {stats['late_frames']}")
  gains = live_helpers.offline_gains(setup.config, setup.params, inputs)
  want = live_helpers.apply_gains(inputs, live_helpers.live_gains(gains, info['gain_delay']),
                                  info['f2'])
  m = want.shape[0]
  np.testing.assert_allclose(mix[:m], want, atol=2e-6 * np.abs(want).max())
  # The ports as another client received them: the player's outputs (the
  # mixer's inputs) and the mixer's `mix`, cycle by cycle. Where the song sits
  # in the captured inputs, the mix must sit in the captured mix `offset`
  # samples later: 0 when it leaves in the cycle its inputs arrived in.
  got = cap.buf[:, :cap.pos]
  # Window by window: where a piece of the mixer's recorded input sits in the
  # captured input, and where the same piece of its recorded mix sits in the
  # captured mix. Xruns of either client shift both alike (the mixer's input
  # and output share its cycles, the two captures share the capturer's), so
  # the difference is the graph offset: 0 when the mix leaves in the cycle
  # its inputs arrived in.
  offsets = []
  for w in _windows(start, n):
    p_in, p_mix = _find(got[1], inputs[0, w]), _find(got[0], mix[w])
    if p_in is not None and p_mix is not None:
      offsets.append(p_mix - p_in)
  print(f'period {period}: graph offsets {sorted(set(offsets))} samples over {len(offsets)} windows')
  assert len(offsets) >= 5 and set(offsets) == {0}, f'graph offsets {offsets} (expected 0)'
  return stats


# Slow: ~40 s of real-time audio through a real JACK server; CI's parallel workers load the
# cores enough to cause xruns. Run with python -m pytest -m slow tests/test_live_jack.py.
@pytest.mark.slow
def test_jack_mix_equals_offline_mix_p128(setup, tmp_path):
  _run_and_check(setup, 128, 10, tmp_path)


@pytest.mark.slow
def test_jack_mix_equals_offline_mix_p128_python_callback(setup, tmp_path):
  _run_and_check(setup, 128, 10, tmp_path, callback='python')


@pytest.mark.slow
def test_jack_mix_equals_offline_mix_p64_20s(setup, tmp_path):
  _run_and_check(setup, 64, 20, tmp_path)


@pytest.mark.slow
def test_killed_process_leaves_a_valid_recording(setup, tmp_path):
  song_dir, song = setup.songs[20]
  server = _jack_server(128)
  record = tmp_path / 'show'
  try:
    proc = subprocess.Popen(_mixer_cmd(setup, song_dir, record, server.name), cwd=REPO,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline:
      mix_path = record / 'take-001' / 'mix.wav'
      if mix_path.exists() and mix_path.stat().st_size > 4 * 44100 * 7:  # 7 s: 5 s of song
        break
      assert proc.poll() is None, proc.stdout.read()
      time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
  finally:
    server.close()
  inputs, mix = _read_recording(record)
  assert inputs.shape[1] > 44100 * 6
  start, n = _song_offset(inputs, song, exact=False)
  assert n > 44100 * 4
  assert np.isfinite(mix).all()
  frames = recorder_lib.read_gains_csv(record / 'take-001' / 'gains.csv')[0]
  assert len(frames) > 40


@pytest.mark.slow
def test_server_loss_reconnects_without_crash(setup, tmp_path):
  song_dir, _ = setup.songs[20]
  server = _jack_server(128)
  record = tmp_path / 'show'
  proc = subprocess.Popen(_mixer_cmd(setup, song_dir, record, server.name, ['--duration=60']),
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  try:
    probe = jack.Client('probe2', servername=server.name, no_start_server=True)
    deadline = time.monotonic() + 400
    while not probe.get_ports('alm_live:mix') and time.monotonic() < deadline:
      time.sleep(0.2)
    probe.close()
    time.sleep(2)
    server.close()  # the server goes away mid-show
    time.sleep(3)
    assert proc.poll() is None, 'the mixer died with its JACK server'
    server = _jack_server(128, name=server.name)  # back under the same name
    time.sleep(6)
    assert proc.poll() is None
  finally:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    server.close()
  assert 'JACK server gone' in out, out
  assert 'JACK: reconnected' in out, out
  assert proc.returncode == 0, out


@pytest.fixture(scope='module')
def stereo_setup(tmp_path_factory):
  """A checkpoint of a tiny stereo ALM-MR (outputs gain and pan, random parameters), a 6 s song."""
  base = tmp_path_factory.mktemp('live_jack_stereo')
  tm = TinyModel('mr', max_channels=32, outputs=('gain', 'pan'))
  save_checkpoint(base / 'ckpt', tm.config, tm.params)
  tm.ckpt = base / 'ckpt'
  audio = live_helpers.song(C, 6, seed=6)
  folder = base / 'song_6'
  folder.mkdir()
  for ch in range(C):
    sf.write(folder / f'ch{ch + 1:02d}.wav', audio[ch], 44100, subtype='FLOAT')
  tm.songs = {6: (folder, audio)}
  return tm


@pytest.mark.slow
def test_jack_stereo_output_to_two_ports(stereo_setup, tmp_path):
  """--output=L,R: the mixer registers mix_left and mix_right and connects them to the two given
  ports (here this test's capture client); the recorded stereo mix equals the offline stereo mix
  of the recorded inputs (gains and pans delayed by gain_delay), and each captured port carries
  its side of it, at the same offset."""
  song_dir, _ = stereo_setup.songs[6]
  server = _jack_server(128)
  record = tmp_path / 'show'
  # Two capture ports, left and right; the mixer connects to them itself (--output).
  cap = Capture(server.name, ['alm_live:mix_left', 'alm_live:mix_right'], 40)
  dests = ','.join(p.name for p in cap.ports)
  proc = subprocess.Popen(_mixer_cmd(stereo_setup, song_dir, record, server.name,
                                     [f'--output={dests}']),
                          cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
  connections = None
  try:
    deadline = time.monotonic() + 400
    while time.monotonic() < deadline and proc.poll() is None:
      connections = [[p.name for p in cap.client.get_all_connections(port)] for port in cap.ports]
      if all(connections):
        cap._state[1] = 1  # pylint: disable=protected-access
        break
      time.sleep(0.05)
    out, _ = proc.communicate(timeout=400)
    assert proc.returncode == 0, out
  finally:
    if proc.poll() is None:
      proc.kill()
      proc.wait()
    cap.close()
    server.close()
  assert connections == [['alm_live:mix_left'], ['alm_live:mix_right']], (connections, out)
  take = record / 'take-001'
  info = json.loads((take / 'info.json').read_text())
  assert info['mix'] == 'stereo' and info['stats']['mix'] == 'stereo'
  ins = [sf.read(take / f'in_{ch + 1:02d}.wav', dtype='float32')[0] for ch in range(C)]
  n = min(x.shape[0] for x in ins)
  inputs = np.stack([x[:n] for x in ins])
  mix = sf.read(take / 'mix.wav', dtype='float32')[0][:n].T  # [2, n]
  offline = live_helpers.offline_outputs(stereo_setup.config, stereo_setup.params, inputs)
  delay = info['gain_delay']
  want = live_helpers.apply_stereo(inputs, live_helpers.live_gains(offline['gains'], delay),
                                   live_helpers.live_gains(offline['pans'], delay), info['f2'])
  np.testing.assert_allclose(mix, want, atol=2e-6 * np.abs(want).max())
  assert np.abs(mix[0] - mix[1]).max() > 1e-2 * np.abs(mix).max()  # the two sides differ
  got = cap.buf[:, :cap.pos]
  start = int(np.flatnonzero(inputs[0])[0])
  offsets = []
  for w in _windows(start, n - start):
    p_l, p_r = _find(got[0], mix[0, w]), _find(got[1], mix[1, w])
    if p_l is not None and p_r is not None:
      offsets.append(p_l - p_r)
  print(f'{len(offsets)} windows found on both captured ports; xruns {info["stats"]["xruns"]}')
  assert len(offsets) >= 3 and set(offsets) == {0}, offsets
  assert (take / 'pans.csv').exists()


def test_a_jack_period_longer_than_an_f2_frame_is_refused_naming_the_fix():
  """jackd -p 4096 against a 2205-sample F2 frame: the client is not opened (a period crossing two
  frame boundaries would give a third frame the second one's gains); the message names -p."""
  server = _jack_server(4096)
  try:
    for stereo in (False, True):
      eng = engine_lib.Engine(2, 2205, controls_lib.Controls(2), stereo=stereo)
      drv = drivers.JackDriver(eng, name='alm_period_test', server=server.name)
      with pytest.raises(RuntimeError, match=r'4096 samples.*smaller -p.*<= 2205'):
        drv.open()
      assert drv.client is None and not drv.connected
  finally:
    server.close()
