#!/usr/bin/env bash
# Checks shared by tools/dist_train.sh and tools/dist_test.sh (sourced, not run).
# One line instead of torchrun's traceback: GPUS must be a process count, and the
# rendezvous port must be free on the first node. Without PORT, one node takes a free
# port, so that two runs on one machine do not collide.
#
# check_process_count USAGE CONFIG GPUS: exits 2 with USAGE unless CONFIG is set and
#   GPUS is a positive integer.
# choose_port SCRIPT: sets PORT (a free one on one node without PORT, else PORT or 29500)
#   and exits 2 if it is in use on the first node.

check_process_count() {
    if [ -z "$2" ] || ! [[ "$3" =~ ^[1-9][0-9]*$ ]]; then
        echo "error: usage: $1 (GPUS: the number of processes per node, e.g. 2; got '$3')" >&2
        exit 2
    fi
}

choose_port() {
    if [ -z "$PORT" ] && [ "$NNODES" = 1 ]; then
        PORT=$(python -c "import socket; s = socket.socket(); s.bind(('', 0)); print(s.getsockname()[1])")
    fi
    PORT=${PORT:-29500}
    if [ "$NODE_RANK" = 0 ] && ! python -c "import socket as s, sys; k = s.socket(); k.setsockopt(s.SOL_SOCKET, s.SO_REUSEADDR, 1); k.bind(('', int(sys.argv[1])))" "$PORT" 2>/dev/null; then
        echo "error: PORT=$PORT is in use (another distributed run?): set PORT to a free port, e.g. PORT=$((PORT + 1)) bash $1 ..." >&2
        exit 2
    fi
}
