#!/usr/bin/env bash
# Usage: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...]
# Training-free methods need no checkpoint: pass "" as CHECKPOINT. Multi-node: set NNODES,
# NODE_RANK, MASTER_ADDR and PORT on every node (one node: a free port unless PORT is set).
CONFIG=$1
CHECKPOINT=$2
GPUS=$3
NNODES=${NNODES:-1}
NODE_RANK=${NODE_RANK:-0}
MASTER_ADDR=${MASTER_ADDR:-"127.0.0.1"}
DIR="$(cd "$(dirname "$0")" && pwd)"

# One-line errors instead of torchrun's tracebacks (tools/dist_common.sh).
source "$DIR/dist_common.sh"
check_process_count "bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...] (CHECKPOINT \"\" for a training-free method)" "$CONFIG" "$GPUS"
choose_port "$0"
CKPT_ARGS=()
[ -n "$CHECKPOINT" ] && CKPT_ARGS=("$CHECKPOINT")

PYTHONPATH="$DIR/..":$PYTHONPATH \
python -m torch.distributed.run \
    --nnodes=$NNODES --node_rank=$NODE_RANK --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS --master_port=$PORT \
    "$DIR/test.py" "$CONFIG" "${CKPT_ARGS[@]}" --launcher pytorch "${@:4}"
