#!/bin/bash
# Issue 32, session 15: at c = 8 both servers alternate two half batches (greedy batching, no delay). With a
# batch window of 3 ms on our side only (--max-queue-delay-ms 3), stack-only against LitServe (which keeps
# batch_timeout 0). Output: peer-c8-delay.out.   bash results/bench-s15/peer_c8_delay.sh
set -u
cd "$(dirname "$0")/../.." && . .venv/bin/activate
python bench/peer_compare.py --clients 8 --rounds 2 --seconds 4 --server-args="--max-queue-delay-ms 3"
