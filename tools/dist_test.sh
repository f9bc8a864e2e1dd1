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

# One line instead of torchrun's traceback: GPUS must be a process count, and
# the rendezvous port must be free on the first node. Without PORT, one node
# takes a free port, so that two runs on one machine do not collide.
if [ -z "$CONFIG" ] || ! [[ "$GPUS" =~ ^[1-9][0-9]*$ ]]; then
    echo "error: usage: bash tools/dist_test.sh CONFIG CHECKPOINT GPUS [test.py args...] (CHECKPOINT \"\" for a training-free method) (GPUS: the number of processes per node, e.g. 2; got '$GPUS')" >&2
    exit 2
fi
if [ -z "$PORT" ] && [ "$NNODES" = 1 ]; then
    PORT=$(python -c "import socket; s = socket.socket(); s.bind(('', 0)); print(s.getsockname()[1])")
fi
PORT=${PORT:-29500}
if [ "$NODE_RANK" = 0 ] && ! python -c "import socket as s, sys; k = s.socket(); k.setsockopt(s.SOL_SOCKET, s.SO_REUSEADDR, 1); k.bind(('', int(sys.argv[1])))" "$PORT" 2>/dev/null; then
    echo "error: PORT=$PORT is in use (another distributed run?): set PORT to a free port, e.g. PORT=$((PORT + 1)) bash $0 ..." >&2
    exit 2
fi
CKPT_ARGS=()
[ -n "$CHECKPOINT" ] && CKPT_ARGS=("$CHECKPOINT")

PYTHONPATH="$DIR/..":$PYTHONPATH \
python -m torch.distributed.run \
    --nnodes=$NNODES --node_rank=$NODE_RANK --master_addr=$MASTER_ADDR \
    --nproc_per_node=$GPUS --master_port=$PORT \
    "$DIR/test.py" "$CONFIG" "${CKPT_ARGS[@]}" --launcher pytorch "${@:4}"
