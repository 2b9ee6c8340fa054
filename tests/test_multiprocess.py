"""Tests for launch/: the launch scripts, and 2-process CPU training against 1 process.

The launch scripts run here with stand-ins for gcloud, scontrol, srun, gcsfuse
and the venv's python that record what they were asked to run, so the
commands each TPU worker or SLURM task would execute are checked without a
cluster. The 2-process training test (slow: two JAX processes compiling on 2
CPU cores take minutes) runs `launch/local_multiprocess.sh` — the same
`python -m alm_jax.main` code path as a pod or a cluster — compares the
result with a single process on the same global batch, then evaluates the
checkpoint with 2 processes (`--mode=eval`).
"""

import ast
import glob
import os
import pathlib
import shlex
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from conftest import load_config
from tiny_training import read_scalars

REPO = pathlib.Path(__file__).resolve().parents[1]
LAUNCH = REPO / 'launch'


def _write_exe(path: pathlib.Path, text: str):
  path.write_text(textwrap.dedent(text).lstrip())
  path.chmod(0o755)


def _records(path: pathlib.Path) -> list[list[str]]:
  return [shlex.split(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.fixture
def fake_python(tmp_path):
  """A venv whose python records `JAX_LOCAL_DEVICE_IDS args...` per call, one line each."""
  venv = tmp_path / 'venv'
  (venv / 'bin').mkdir(parents=True)
  log = tmp_path / 'python_calls.txt'
  _write_exe(venv / 'bin' / 'python', f"""
      #!/usr/bin/env bash
      printf '%q ' "ids=${{JAX_LOCAL_DEVICE_IDS:-}}" "$@" >> {log}
      echo >> {log}
      """)
  return venv, log


def test_launch_scripts_parse():
  for script in ('tpu_vm.sh', 'slurm_gpu.sbatch', 'local_multiprocess.sh'):
    subprocess.run(['bash', '-n', str(LAUNCH / script)], check=True)
    assert 'set -euo pipefail' in (LAUNCH / script).read_text(), script


@pytest.mark.parametrize('args, message', [
    (['x', 'configs/quickstart.py', '/tmp/w'], 'N must be a positive integer'),
    (['2', 'configs/nope.py', '/tmp/w'], "config file 'configs/nope.py' not found"),
    (['2'], 'usage'),
])
def test_local_multiprocess_rejects_bad_arguments(args, message):
  r = subprocess.run(['bash', str(LAUNCH / 'local_multiprocess.sh'), *args], cwd=REPO,
                     capture_output=True, text=True)
  assert r.returncode == 2 and message in r.stderr


@pytest.mark.parametrize('per', ['gpu', 'node'])
def test_slurm_script_runs_one_main_per_gpu_or_node(per, tmp_path, fake_python):
  venv, python_log = fake_python
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  _write_exe(bin_dir / 'scontrol', """
      #!/usr/bin/env bash
      [[ "$1 $2 $3" == "show hostnames node[07-08]" ]] && printf 'node07\\nnode08\\n'
      """)
  # srun: runs its command once per task, with the task's SLURM_PROCID / SLURM_LOCALID.
  _write_exe(bin_dir / 'srun', """
      #!/usr/bin/env bash
      ntasks=1; per_node=1
      while [[ $1 == --* ]]; do
        case $1 in --ntasks=*) ntasks=${1#*=} ;; --ntasks-per-node=*) per_node=${1#*=} ;; esac
        shift
      done
      for ((i = 0; i < ntasks; i++)); do
        SLURM_PROCID=$i SLURM_LOCALID=$((i % per_node)) SLURM_NTASKS=$ntasks "$@" || exit $?
      done
      """)
  env = dict(os.environ, PATH=f'{bin_dir}:{os.environ["PATH"]}', SLURM_JOB_ID='1234',
             SLURM_JOB_NODELIST='node[07-08]', SLURM_JOB_NUM_NODES='2', SLURM_GPUS_ON_NODE='2',
             WORKDIR='/shared/run', DATA_DIR='/shared/tfds', VENV=str(venv), PER=per,
             EXTRA_FLAGS='--config.train.batch_size=8')
  env.pop('CUDA_VISIBLE_DEVICES', None)
  subprocess.run(['bash', str(LAUNCH / 'slurm_gpu.sbatch')], cwd=REPO, env=env, check=True,
                 capture_output=True, text=True)
  calls = _records(python_log)
  prepare, runs = calls[0], calls[1:]
  assert prepare[1:3] == ['launch/prepare_data.py', '--config=configs/mr.py']
  assert '--config.data.data_dir=/shared/tfds' in prepare
  num = 4 if per == 'gpu' else 2
  assert len(runs) == num
  for i, run in enumerate(runs):
    assert run[1:3] == ['-m', 'alm_jax.main']
    for flag in ('--workdir=/shared/run', '--coordinator_address=node07:21234',
                 f'--num_processes={num}', f'--process_id={i}', '--config.data.data_dir=/shared/tfds',
                 '--config.train.compute_dtype=bfloat16', '--config.train.batch_size=8'):
      assert flag in run, (flag, run)
    assert run[0] == ('ids=' + (str(i % 2) if per == 'gpu' else '0,1'))


@pytest.mark.parametrize('gcsfuse', ['0', '1'])
def test_tpu_script_runs_main_on_every_worker(tmp_path, fake_python, gcsfuse):
  venv, python_log = fake_python
  home = tmp_path / 'home'
  (home / 'alm_jax').mkdir(parents=True)
  (home / 'alm_venv').symlink_to(venv)
  bin_dir = tmp_path / 'bin'
  bin_dir.mkdir()
  gcloud_log = tmp_path / 'gcloud_calls.txt'
  # gcloud: records each call; scp copies into the fake worker home; ssh runs --command there.
  _write_exe(bin_dir / 'gcloud', f"""
      #!/usr/bin/env bash
      printf '%q ' "$@" >> {gcloud_log}; echo >> {gcloud_log}
      if [[ $4 == scp ]]; then cp "$5" "{home}/${{6#*:}}"; fi
      for a in "$@"; do
        if [[ $a == --command=* ]]; then HOME={home} bash -c "${{a#--command=}}" || exit $?; fi
      done
      """)
  _write_exe(bin_dir / 'mountpoint', '#!/usr/bin/env bash\nexit 1\n')
  _write_exe(bin_dir / 'gcsfuse', f'#!/usr/bin/env bash\necho "$@" > {tmp_path}/gcsfuse.txt\n')
  env = dict(os.environ, PATH=f'{bin_dir}:{os.environ["PATH"]}', TPU_NAME='alm-pod',
             ZONE='us-central2-b', BUCKET='gs://my-bucket/alm', SETUP='0',
             MOUNT_ROOT=str(tmp_path / 'gcs'), EXTRA_FLAGS='--config.train.batch_size=16',
             GCSFUSE=gcsfuse)
  subprocess.run(['bash', str(LAUNCH / 'tpu_vm.sh')], cwd=REPO, env=env, check=True,
                 capture_output=True, text=True)
  gcloud = _records(gcloud_log)
  assert [c[3] for c in gcloud] == ['scp', 'ssh', 'ssh']  # no create, no setup
  assert all('--zone=us-central2-b' in c for c in gcloud)
  assert '--worker=0' in gcloud[1] and '--worker=all' in gcloud[2]
  prepare, train = _records(python_log)
  assert prepare[1] == 'launch/prepare_data.py'
  if gcsfuse == '1':
    workdir = f'--workdir={tmp_path}/gcs/my-bucket/alm/runs/mr'  # the gcsfuse mount
  else:
    workdir = '--workdir=gs://my-bucket/alm/runs/mr'  # written through etils.epath
  for flag in ('--config=configs/mr.py', workdir, '--config.data.data_dir=gs://my-bucket/alm/tfds',
               '--config.train.batch_size=16'):
    assert flag in prepare and flag in train, flag
  assert train[1:3] == ['-m', 'alm_jax.main']
  assert '--multiprocess' in train and '--config.train.compute_dtype=bfloat16' in train
  if gcsfuse == '1':
    assert (tmp_path / 'gcsfuse.txt').read_text().split()[-2:] == ['my-bucket',
                                                                   f'{tmp_path}/gcs/my-bucket']
  else:
    assert not (tmp_path / 'gcsfuse.txt').exists()


# ---- 2 processes vs 1 -------------------------------------------------------------------

# The tiny model of tests/conftest.py:shrink_model, as alm_jax.main flags, on the
# synthetic_live/tiny songs; 2 updates of a global batch of 2 (1 example per process).
_TINY_FLAGS = {
    'model.embedding.name': 'small', 'model.embedding.dim': '16',
    'model.embedding.small_features': '(4,8)', 'model.d_model': '16',
    'model.encoder.mlp_dim': '32', 'model.encoder.dropout': '0.0', 'model.gru_hidden': '16',
    'model.mlp_dims': '(8,4)', 'model.max_channels': '6',
    'data.name': 'synthetic_live/tiny', 'data.segment_seconds': '2.0',
    'data.eval_segment_seconds': '2.0', 'data.prefetch': '0', 'data.bleed.bank_size': '4',
    'data.bleed.rir_seconds': '0.02', 'data.bleed.max_order': '2',
    'data.bleed.room_max': '(6.0,6.0,3.0)',
    'train.batch_size': '2', 'train.steps_per_epoch': '1', 'train.num_epochs': '2',
    'train.freeze_embedding_epochs': '1', 'train.log_every_steps': '1',
    'train.checkpoint_every_steps': '1', 'train.eval_every_steps': '100',
    'train.keep_checkpoints': '2',
}


@pytest.mark.slow
def test_two_processes_match_one_process(tmp_path):
  import jax  # pylint: disable=g-import-not-at-top
  from alm_jax import checkpoints  # pylint: disable=g-import-not-at-top
  from alm_jax import losses  # pylint: disable=g-import-not-at-top
  from alm_jax import optimizer  # pylint: disable=g-import-not-at-top
  from alm_jax import train  # pylint: disable=g-import-not-at-top
  from alm_jax.data import pipeline  # pylint: disable=g-import-not-at-top
  from alm_jax.models import build_model  # pylint: disable=g-import-not-at-top

  # A fresh tfds folder and RIR bank: process 0 of the job builds them while process 1
  # waits at alm_jax.main's barrier (launch/prepare_data.py is checked afterwards).
  data_root = tmp_path / 'data'
  flags = dict(_TINY_FLAGS)
  flags['data.data_dir'] = str(data_root / 'tfds')
  flags['data.bleed.cache_dir'] = str(data_root / 'rir_bank')
  workdir = tmp_path / 'run'
  cmd = ['bash', str(LAUNCH / 'local_multiprocess.sh'), '2', 'configs/mr.py', str(workdir)]
  cmd += [f'--config.{k}={v}' for k, v in flags.items()]
  # The same config in this process.
  config = load_config('mr')
  for key, value in flags.items():
    *path, last = key.split('.')
    node = config
    for name in path:
      node = node[name]
    node[last] = type(node[last])(ast.literal_eval(value)) if value[0] in '(0123456789' else value
  assert not pipeline.get_builder(config).is_prepared()

  env = dict(os.environ, XLA_FLAGS='--xla_cpu_multi_thread_eigen=false')
  r = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=1200)
  logs = r.stdout[-3000:] + r.stderr[-3000:]
  for path in sorted(glob.glob(str(workdir / 'logs' / '*.log'))):
    logs += f'\n--- {path}\n' + pathlib.Path(path).read_text()[-3000:]
  assert r.returncode == 0, logs
  # Process 0 alone built the dataset and the bank; process 1 (logging to a file)
  # then read its own half of the songs.
  log1 = (workdir / 'logs' / 'process_1.log').read_text()
  assert 'Preparing synthetic_live/tiny' in r.stderr and 'Simulating an RIR bank' in r.stderr, logs
  assert 'Preparing' not in log1 and 'Simulating an RIR bank' not in log1, log1
  assert 'Loaded 2 train songs of synthetic_live/tiny/1.0.0 (process 1 of 2)' in log1
  assert pipeline.get_builder(config).is_prepared() and pipeline.num_train_songs(config) == 4
  shards = [{s.song_id for s in pipeline.load_songs(config, 'train', p, 2)} for p in (0, 1)]
  assert shards[0] and shards[1] and not shards[0] & shards[1]
  assert len(shards[0] | shards[1]) == 4

  # One writer: a single event file (process 0's), config.json; all processes saved checkpoints.
  assert len(glob.glob(str(workdir / 'events.out.tfevents.*'))) == 1
  assert (workdir / 'config.json').exists()
  manager = checkpoints.open_manager(str(workdir), None, read_only=True)
  assert sorted(manager.all_steps()) == [1, 2]
  scalars = read_scalars(str(workdir))
  assert sorted(scalars['train/loss']) == [1, 2]
  assert 'validation/loss' in scalars

  # --mode=eval with 2 processes: the validation figures of the end of training.
  r = subprocess.run(cmd + ['--mode=eval'], cwd=REPO, env=env, capture_output=True, text=True,
                     timeout=1200)
  assert r.returncode == 0, r.stderr[-3000:]
  line = next(l for l in r.stdout.splitlines() if l.startswith('validation at step 2: '))
  figures = dict(kv.split('=') for kv in line.split(': ', 1)[1].split(', '))
  np.testing.assert_allclose(float(figures['loss']), scalars['validation/loss'][2], rtol=1e-4)

  # launch/prepare_data.py (the TPU and SLURM scripts' first step), same flags: finds both ready.
  prep = subprocess.run([sys.executable, 'launch/prepare_data.py', '--config=configs/mr.py',
                         f'--workdir={workdir}'] + cmd[5:], cwd=REPO, capture_output=True,
                        text=True, timeout=600)
  assert prep.returncode == 0, prep.stderr[-3000:]
  assert "'train': 4" in prep.stdout and 'RIR bank ready' in prep.stdout, prep.stdout
  assert 'Preparing' not in prep.stderr and 'Simulating' not in prep.stderr

  # One process, same global batch: update 2 from checkpoint 1 on the concatenation
  # of both processes' batches at iterator position 1.
  saved = checkpoints.load_config(str(workdir))
  spe = optimizer.steps_per_epoch(saved.train, pipeline.num_train_songs(saved))
  model = build_model(saved)
  tx = train.make_optimizer(saved, spe)
  loss_spec = losses.MRSTFTSpec.from_config(saved.loss)
  abstract = jax.eval_shape(
      lambda k: train.create_train_state(k, model, tx, loss_spec), jax.random.key(0))
  device = jax.sharding.SingleDeviceSharding(jax.devices()[0])
  shardings = jax.tree.map(lambda _: device, abstract)
  state1 = checkpoints.restore_state(manager, abstract, shardings, 1)
  state2 = checkpoints.restore_state(manager, abstract, shardings, 2)
  manager.close()
  parts = []
  for p in (0, 1):
    it = pipeline.make_train_iterator(config, steps_per_epoch=spe, start_step=1, process_index=p,
                                      process_count=2, workdir=str(workdir))
    parts.append(next(it))
    it.close()
  batch = {k: np.concatenate([b[k] for b in parts]) for k in parts[0]}
  ref_state, metrics = jax.jit(train.train_step)(state1, batch, jax.random.key(1))
  np.testing.assert_allclose(float(metrics['loss']), scalars['train/loss'][2], rtol=1e-5)
  np.testing.assert_allclose(float(metrics['grad_norm']), scalars['train/grad_norm'][2],
                             rtol=1e-4)
  # The parameters after update 2. Adam moves each weight by up to lr, and by
  # lr * g / (|g| + eps) on a first step (the embedding thaws at update 2), so a
  # weight whose gradient is at rounding level (summation order differs between one
  # device and the 2-process all-reduce) may land anywhere within lr. The rest must
  # agree to 1 % of lr: a broken all-reduce would move most weights by ~lr.
  lr = float(saved.train.learning_rate)
  diffs = np.concatenate([np.abs(np.asarray(a) - np.asarray(b)).ravel() for a, b in
                          zip(jax.tree.leaves(ref_state.params), jax.tree.leaves(state2.params))])
  assert diffs.max() <= 2 * lr
  assert np.mean(diffs <= 1e-2 * lr) >= 0.99, np.quantile(diffs, [0.5, 0.9, 0.99])
