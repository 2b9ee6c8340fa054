#!/usr/bin/env bash
# N processes of `python -m alm_jax.main` on this machine's CPU: one JAX multi-process job.
#
#   launch/local_multiprocess.sh N CONFIG WORKDIR [extra alm_jax.main flags...]
#   launch/local_multiprocess.sh 2 configs/quickstart.py /tmp/qs_2proc --config.train.batch_size=4
#
# The same code path as a TPU pod or a GPU cluster: every process calls
# jax.distributed.initialize (coordinator on 127.0.0.1, process 0 hosts it), reads
# its own shard of the training songs, and the gradient all-reduce runs over JAX's
# CPU collectives (gloo, the jax_cpu_collectives_implementation default). Process
# 0 alone writes config.json, TensorBoard events and the progress bar; every
# process takes part in checkpoint saves. config.train.batch_size must be a
# multiple of N x DEVICES_PER_PROCESS.
#
# The dataset and RIR bank are built by process 0 while the others wait
# (alm_jax.main); `python launch/prepare_data.py --config=CONFIG --workdir=WORKDIR`
# beforehand does it outside the job.
#
# Environment (all optional):
#   PORT                 coordinator port on 127.0.0.1 (default: a free port)
#   PYTHON               interpreter with alm_jax installed (default: python)
#   DEVICES_PER_PROCESS  CPU devices per process (JAX_NUM_CPU_DEVICES, default 1)
#   LOG_DIR              where processes 1..N-1 log (default: WORKDIR/logs/);
#                        process 0 logs to this terminal
#   XLA_FLAGS            passed through, e.g. to limit each process's threads
#
# Exit status: 0 when every process exits 0; otherwise the first failing
# process's status, after stopping the others (which would wait forever for it
# at the next collective).
set -euo pipefail

usage() {
  echo "usage: $0 N CONFIG WORKDIR [extra alm_jax.main flags...]" >&2
  exit 2
}

[[ $# -ge 3 ]] || usage
NUM_PROCESSES=$1
CONFIG=$2
WORKDIR=$3
shift 3
if ! [[ ${NUM_PROCESSES} =~ ^[1-9][0-9]*$ ]]; then
  echo "error: N must be a positive integer, got '${NUM_PROCESSES}'." >&2
  usage
fi
if [[ ! -f ${CONFIG%%:*} ]]; then
  echo "error: config file '${CONFIG%%:*}' not found (give a path like configs/quickstart.py)." >&2
  exit 2
fi

PYTHON=${PYTHON:-python}
DEVICES_PER_PROCESS=${DEVICES_PER_PROCESS:-1}
LOG_DIR=${LOG_DIR:-${WORKDIR}/logs}
if [[ -z ${PORT:-} ]]; then
  PORT=$("${PYTHON}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
fi
COORDINATOR=127.0.0.1:${PORT}
mkdir -p "${WORKDIR}" "${LOG_DIR}"

PIDS=()
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill "${pid}" 2>/dev/null || true
  done
}
trap 'stop_all; exit 130' INT TERM

echo "Starting ${NUM_PROCESSES} processes, coordinator ${COORDINATOR}; logs of processes 1+ in ${LOG_DIR}" >&2
for ((i = 0; i < NUM_PROCESSES; i++)); do
  # JAX_PLATFORMS=cpu: the CPU code path even on a machine with an accelerator.
  cmd=(env JAX_PLATFORMS=cpu JAX_NUM_CPU_DEVICES="${DEVICES_PER_PROCESS}"
       "${PYTHON}" -m alm_jax.main --config="${CONFIG}" --workdir="${WORKDIR}"
       --coordinator_address="${COORDINATOR}" --num_processes="${NUM_PROCESSES}" --process_id="${i}"
       "$@")
  if [[ ${i} -eq 0 ]]; then
    "${cmd[@]}" &
  else
    "${cmd[@]}" >"${LOG_DIR}/process_${i}.log" 2>&1 &
  fi
  PIDS+=("$!")
done

# Wait for all; on the first failure stop the rest rather than leave them
# blocked in a collective until the coordinator's heartbeat timeout.
status=0
remaining=("${PIDS[@]}")
while [[ ${#remaining[@]} -gt 0 ]]; do
  still=()
  for idx in "${!remaining[@]}"; do
    pid=${remaining[${idx}]}
    if kill -0 "${pid}" 2>/dev/null; then
      still+=("${pid}")
      continue
    fi
    rc=0
    wait "${pid}" || rc=$?
    if [[ ${rc} -ne 0 && ${status} -eq 0 ]]; then
      status=${rc}
      for ((i = 0; i < NUM_PROCESSES; i++)); do
        if [[ ${PIDS[${i}]} == "${pid}" ]]; then
          echo "error: process ${i} exited with status ${rc}; stopping the others." >&2
          if [[ ${i} -gt 0 ]]; then
            tail -n 30 "${LOG_DIR}/process_${i}.log" >&2 || true
          fi
        fi
      done
      stop_all
    fi
  done
  remaining=("${still[@]+"${still[@]}"}")
  if [[ ${#remaining[@]} -gt 0 ]]; then
    sleep 1
  fi
done
exit "${status}"
