#!/bin/bash
# Issue 32, session 16: the adaptive batch window (service/batching.py) at 0, 2 and 4 ms of
# max_queue_delay, each against LitServe (batch_timeout 0) in its own peer_compare run, quiet, c = 1, 8
# and 64 (DELAYS, CLIENTS, CONDITIONS override). Its two runs were on intermediate versions of the window:
# superseded/adaptive-window-peak-only.out and (DELAYS="0 5 20") superseded/adaptive-window-myopic-rule.out.
#   bash results/bench-s16/adaptive_window.sh > adaptive-window.out
set -u
cd "$(dirname "$0")/../.." && . .venv/bin/activate
for ms in ${DELAYS:-0 2 4}; do
  echo "== max_queue_delay_ms $ms"
  python bench/peer_compare.py --clients ${CLIENTS:-1,8,64} --conditions ${CONDITIONS:-quiet} --rounds 2 --seconds 4 \
    --server-args="--max-queue-delay-ms $ms"
done
