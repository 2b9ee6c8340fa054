#!/usr/bin/env bash
# One command on a machine with a GPU: the paper-shape training step (ALM-MR, VGGish, batch 4 x
# 8 channels x 20 s) in float32 and bfloat16, both phases (frozen embedding, fine-tune), then
# the input pipeline (MR data path with bleed) at several worker counts, printed as tables:
#
#     bash bench/gpu.sh                      # writes bench/results/gpu_*.json too
#     STEPS=20 WORKERS=4,8,15 bash bench/gpu.sh
#
# Needs JAX with CUDA (pip install -U "jax[cuda12]"); the synthetic_live dataset is generated
# on first use. The train step runs on the GPU; the input pipeline runs on the host's CPU cores,
# so compare its "audio s/s" with the train step's "s-audio/s": bleed keeps up when it is larger.
set -euo pipefail
cd "$(dirname "$0")/.."
STEPS="${STEPS:-10}"
WORKERS="${WORKERS:-1,4,8}"
MODELS="${MODELS:-alm_mr,alm_sr}"
mkdir -p bench/results
python -c 'import jax; d = jax.devices(); print("devices:", d); assert d[0].platform == "gpu", "no GPU: JAX sees " + str(d)'
python bench/train.py --models="$MODELS" --shapes=paper --dtypes=float32,bfloat16 \
  --phases=finetune,frozen --steps="$STEPS" --time_limit=1200 --json=bench/results/gpu_train.json
python bench/input_pipeline.py --config=configs/mr.py --dataset=synthetic_live --no_train \
  --workers="$WORKERS" --batches=16 | tee bench/results/gpu_input_pipeline.txt
