#!/usr/bin/env bash
# Trains on every worker of a Cloud TPU VM slice (one JAX process per host).
#
#   TPU_NAME=alm-v5e ZONE=us-west4-a BUCKET=gs://my-bucket/alm launch/tpu_vm.sh
#   TPU_NAME=alm-v4 ZONE=us-central2-b BUCKET=gs://my-bucket/alm CONFIG=configs/sr.py \
#       CREATE=1 ACCELERATOR_TYPE=v4-32 RUNTIME_VERSION=tpu-ubuntu2204-base \
#       EXTRA_FLAGS='--config.train.batch_size=16' launch/tpu_vm.sh
#
# Run from the repository root on a machine with an authenticated `gcloud`. Steps:
#   0. (CREATE=1) create the TPU VM slice;
#   1. (SETUP=1) copy this checkout to every worker, create a venv there with
#      alm_jax and jax[tpu] (and gcsfuse when GCSFUSE=1 or MANUAL_DIR is gs://);
#   2. (PREPARE=1) on worker 0 only: prepare the tfds dataset in DATA_DIR
#      (launch/prepare_data.py), so the workers do not all build it at once;
#   3. on every worker (`gcloud compute tpus tpu-vm ssh --worker=all`):
#      python -m alm_jax.main --multiprocess ... ; jax.distributed.initialize()
#      finds the slice's hosts itself, each host reads its own shard of the
#      training songs, worker 0 alone writes logs and config.json, and all
#      hosts write the checkpoints together.
#
# Storage: DATA_DIR (tfds) is read as gs:// directly, and so is the workdir (one
# folder shared by all hosts): alm_jax writes config.json, checkpoints (orbax)
# and TensorBoard events through etils.epath / TF's file systems. GCSFUSE=1
# mounts a gs:// WORKDIR with gcsfuse on every worker instead (at
# MOUNT_ROOT/<bucket>), as earlier versions needed. A gs:// MANUAL_DIR (MedleyDB's
# raw files) is always mounted: the dataset builder reads local files.
# The bleed RIR bank is cached on each host's local disk (deterministic from
# config.data.bleed.seed, so every host builds the same bank).
#
# Batch size: config.train.batch_size is global and must be a multiple of the
# number of TPU chips (JAX devices); the paper's 4 fits a v5e-4 or a v4-8 (4 chips);
# larger slices need a larger batch, which changes the recipe (docs/scaling.md).
set -euo pipefail

# ---- settings: environment variables ------------------------------------------
TPU_NAME=${TPU_NAME:?set TPU_NAME, the TPU VM (slice) name}
ZONE=${ZONE:?set ZONE, the TPU zone, e.g. us-west4-a}
BUCKET=${BUCKET:?set BUCKET, a gs:// folder for data and runs, e.g. gs://my-bucket/alm}
PROJECT=${PROJECT:-}                        # gcloud project ('' = gcloud's default)
CONFIG=${CONFIG:-configs/mr.py}             # path inside this repository
RUN_NAME=${RUN_NAME:-$(basename "${CONFIG}" .py)}
DATA_DIR=${DATA_DIR:-${BUCKET}/tfds}        # tfds data_dir (gs:// or a path on every worker)
WORKDIR=${WORKDIR:-${BUCKET}/runs/${RUN_NAME}}  # checkpoints, config.json, TensorBoard events
MANUAL_DIR=${MANUAL_DIR:-}                  # MedleyDB folder holding Audio/ (gs:// or a path on worker 0)
COMPUTE_DTYPE=${COMPUTE_DTYPE:-bfloat16}    # config.train.compute_dtype (params stay float32)
EXTRA_FLAGS=${EXTRA_FLAGS:-}                # more alm_jax.main flags, e.g. --config.train.batch_size=8
JAX_VERSION=${JAX_VERSION:-0.10.2}          # jax[tpu] version (setup.py pins jax 0.10.x)
REMOTE_DIR=${REMOTE_DIR:-alm_jax}           # checkout on the workers, relative to $HOME
VENV=${VENV:-alm_venv}                      # venv on the workers, relative to $HOME
GCSFUSE=${GCSFUSE:-0}                       # 1: mount a gs:// WORKDIR with gcsfuse rather than write gs:// directly
MOUNT_ROOT=${MOUNT_ROOT:-/tmp/gcs}          # gcsfuse mount points on the workers
RIR_CACHE=${RIR_CACHE:-/tmp/alm_rir_bank}   # per-host RIR bank cache
DETACH=${DETACH:-0}                         # 1: run under nohup, log to ~/alm_<RUN_NAME>.log
CREATE=${CREATE:-0}                         # 1: create the slice first
ACCELERATOR_TYPE=${ACCELERATOR_TYPE:-v5litepod-8}
RUNTIME_VERSION=${RUNTIME_VERSION:-v2-alpha-tpuv5-lite}
SETUP=${SETUP:-1}                           # 0: code and venv already on the workers
PREPARE=${PREPARE:-1}                       # 0: dataset already prepared in DATA_DIR

if [[ ! -f alm_jax/main.py || ! -f ${CONFIG} ]]; then
  echo "error: run from the alm_jax repository root (alm_jax/main.py) with CONFIG inside it (got '${CONFIG}')." >&2
  exit 2
fi
if [[ ${BUCKET} != gs://* ]]; then
  echo "error: BUCKET must be a gs:// path, got '${BUCKET}'." >&2
  exit 2
fi

GCLOUD_TPU=(gcloud compute tpus tpu-vm)
LOCATION=(--zone="${ZONE}")
if [[ -n ${PROJECT} ]]; then
  LOCATION+=(--project="${PROJECT}")
fi

# ---- 0. slice -------------------------------------------------------------------
if [[ ${CREATE} == 1 ]]; then
  "${GCLOUD_TPU[@]}" create "${TPU_NAME}" "${LOCATION[@]}" \
    --accelerator-type="${ACCELERATOR_TYPE}" --version="${RUNTIME_VERSION}"
fi

# ---- the script each worker runs: settings baked in with %q quoting --------------
REMOTE_SCRIPT=$(mktemp "${TMPDIR:-/tmp}/alm_tpu_remote.XXXXXX")
SOURCE_TAR=$(mktemp "${TMPDIR:-/tmp}/alm_jax_src.XXXXXX")
trap 'rm -f "${REMOTE_SCRIPT}" "${SOURCE_TAR}"' EXIT
{
  echo '#!/usr/bin/env bash'
  echo 'set -euo pipefail'
  for name in CONFIG RUN_NAME DATA_DIR WORKDIR MANUAL_DIR COMPUTE_DTYPE EXTRA_FLAGS JAX_VERSION \
      REMOTE_DIR VENV GCSFUSE MOUNT_ROOT RIR_CACHE DETACH; do
    printf '%s=%q\n' "${name}" "${!name}"
  done
  cat <<'REMOTE'
STAGE=$1
cd "${HOME}"

# gs://bucket/rest -> MOUNT_ROOT/bucket/rest, mounting the bucket with gcsfuse once.
local_path() {
  local path=$1
  if [[ ${path} != gs://* ]]; then
    echo "${path}"
    return
  fi
  local rest=${path#gs://}
  local bucket=${rest%%/*}
  local inner=
  [[ ${rest} == */* ]] && inner=${rest#*/}
  local mnt=${MOUNT_ROOT}/${bucket}
  if ! mountpoint -q "${mnt}"; then
    mkdir -p "${mnt}"
    # Orbax commits a checkpoint by renaming its temporary folder: allow renames.
    gcsfuse --implicit-dirs --rename-dir-limit=1000000 "${bucket}" "${mnt}" >&2
  fi
  echo "${mnt}${inner:+/${inner}}"
}

# The workdir as alm_jax gets it: gs:// as is, or the gcsfuse mount with GCSFUSE=1.
workdir_path() {
  if [[ ${GCSFUSE} == 1 ]]; then
    local_path "${WORKDIR}"
  else
    echo "${WORKDIR}"
  fi
}

case ${STAGE} in
  setup)
    rm -rf "${REMOTE_DIR}" && mkdir -p "${REMOTE_DIR}"
    tar -xzf alm_jax_src.tar.gz -C "${REMOTE_DIR}"
    python3 -m venv "${VENV}"
    "${VENV}/bin/pip" install -q --upgrade pip
    "${VENV}/bin/pip" install -q -e "${REMOTE_DIR}" "jax[tpu]==${JAX_VERSION}" \
      -f https://storage.googleapis.com/jax-releases/libtpu_releases.html
    if [[ ${GCSFUSE} == 1 || ${MANUAL_DIR} == gs://* ]] && ! command -v gcsfuse >/dev/null; then
      # Google's apt repository for gcsfuse (cloud.google.com/storage/docs/gcsfuse-install).
      repo=gcsfuse-$(lsb_release -c -s)
      echo "deb [signed-by=/usr/share/keyrings/cloud.google.asc] https://packages.cloud.google.com/apt ${repo} main" \
        | sudo tee /etc/apt/sources.list.d/gcsfuse.list >/dev/null
      curl -fsSL https://packages.cloud.google.com/apt/doc/apt-key.gpg \
        | sudo tee /usr/share/keyrings/cloud.google.asc >/dev/null
      sudo apt-get update -qq && sudo apt-get install -y -qq gcsfuse
    fi
    ;;
  prepare)
    workdir=$(workdir_path)
    manual=()
    [[ -n ${MANUAL_DIR} ]] && manual=(--config.data.manual_dir="$(local_path "${MANUAL_DIR}")")
    cd "${REMOTE_DIR}"
    # shellcheck disable=SC2086  # EXTRA_FLAGS is a list of flags
    "${HOME}/${VENV}/bin/python" launch/prepare_data.py --config="${CONFIG}" --workdir="${workdir}" \
      --config.data.data_dir="${DATA_DIR}" --config.data.bleed.cache_dir="${RIR_CACHE}" \
      "${manual[@]+"${manual[@]}"}" ${EXTRA_FLAGS}
    ;;
  train)
    workdir=$(workdir_path)
    cd "${REMOTE_DIR}"
    # shellcheck disable=SC2086
    cmd=("${HOME}/${VENV}/bin/python" -m alm_jax.main --config="${CONFIG}" --workdir="${workdir}"
         --multiprocess --config.data.data_dir="${DATA_DIR}"
         --config.data.bleed.cache_dir="${RIR_CACHE}"
         --config.train.compute_dtype="${COMPUTE_DTYPE}" ${EXTRA_FLAGS})
    if [[ ${DETACH} == 1 ]]; then
      nohup "${cmd[@]}" >"${HOME}/alm_${RUN_NAME}.log" 2>&1 </dev/null &
      echo "$(hostname): training in the background (pid $!), log ${HOME}/alm_${RUN_NAME}.log"
    else
      exec "${cmd[@]}"
    fi
    ;;
  *)
    echo "unknown stage ${STAGE}" >&2
    exit 2
    ;;
esac
REMOTE
} >"${REMOTE_SCRIPT}"

# ---- 1. code, venv ----------------------------------------------------------------
"${GCLOUD_TPU[@]}" scp "${REMOTE_SCRIPT}" "${TPU_NAME}:alm_remote.sh" --worker=all "${LOCATION[@]}"
if [[ ${SETUP} == 1 ]]; then
  tar -czf "${SOURCE_TAR}" --exclude=.git --exclude='*.egg-info' --exclude=__pycache__ \
    alm_jax configs launch bench docs setup.py
  "${GCLOUD_TPU[@]}" scp "${SOURCE_TAR}" "${TPU_NAME}:alm_jax_src.tar.gz" --worker=all "${LOCATION[@]}"
  "${GCLOUD_TPU[@]}" ssh "${TPU_NAME}" --worker=all "${LOCATION[@]}" --command='bash ~/alm_remote.sh setup'
fi

# ---- 2. dataset, once -----------------------------------------------------------------
if [[ ${PREPARE} == 1 ]]; then
  "${GCLOUD_TPU[@]}" ssh "${TPU_NAME}" --worker=0 "${LOCATION[@]}" --command='bash ~/alm_remote.sh prepare'
fi

# ---- 3. train on every worker ---------------------------------------------------------
echo "Training ${CONFIG} on ${TPU_NAME}: data ${DATA_DIR}, workdir ${WORKDIR}" >&2
"${GCLOUD_TPU[@]}" ssh "${TPU_NAME}" --worker=all "${LOCATION[@]}" --command='bash ~/alm_remote.sh train'
