#!/usr/bin/env bash
# Usage: GPUS=8 bash tools/slurm_test.sh PARTITION JOB_NAME CONFIG CHECKPOINT [test.py args...]
# CHECKPOINT is positional: training-free methods pass "" (no checkpoint).
set -x
PARTITION=$1
JOB_NAME=$2
CONFIG=$3
CHECKPOINT=$4
GPUS=${GPUS:-8}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-5}
SRUN_ARGS=${SRUN_ARGS:-""}
DIR="$(cd "$(dirname "$0")" && pwd)"
CKPT_ARGS=()
[ -n "$CHECKPOINT" ] && CKPT_ARGS=("$CHECKPOINT")

PYTHONPATH="$DIR/..":$PYTHONPATH \
srun -p ${PARTITION} --job-name=${JOB_NAME} --gres=gpu:${GPUS_PER_NODE} \
    --ntasks=${GPUS} --ntasks-per-node=${GPUS_PER_NODE} --cpus-per-task=${CPUS_PER_TASK} \
    --kill-on-bad-exit=1 ${SRUN_ARGS} \
    python -u "$DIR/test.py" "${CONFIG}" "${CKPT_ARGS[@]}" --launcher="slurm" "${@:5}"
