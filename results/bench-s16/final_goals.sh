#!/bin/bash
# Issue 32, session 16: the goals on the final code, one after the other on a quiet machine.
#   bash results/bench-s16/final_goals.sh
# Outputs: peer-compare.out, service-load.out, service-load-2.out, ceiling-ratio.out, http-floor.out, ab-classify.out, ab-window-ours.out.
set -u
cd "$(dirname "$0")/../.." && . .venv/bin/activate
OUT=results/bench-s16
python bench/peer_compare.py --clients 1,8,64 --rounds 2 --seconds 4 > $OUT/peer-compare.out 2>&1
python bench/service_load.py > $OUT/service-load.out 2>&1
python results/bench-s15/ceiling_ratio.py --rounds 5 > $OUT/ceiling-ratio.out 2>&1
python bench/service_load.py > $OUT/service-load-2.out 2>&1
python results/bench-s16/http_floor.py > $OUT/http-floor.out 2>&1
# A/B against the end of session 15 (git worktree add /tmp/base ec8ca71)
python results/bench-s13/ab_versions.py /tmp/base . --rounds 3 --seconds 4 --clients 1,8,64 > $OUT/ab-classify.out 2>&1
# the window on the shipped path (the C loop): A = the default (20 ms cap), B = no window
python results/bench-s13/ab_versions.py . . --rounds 3 --seconds 4 --clients 8,64 --b-server-args="--max-queue-delay-ms 0" > $OUT/ab-window-ours.out 2>&1
