#!/bin/bash
# Issue 32, session 14, on a quiet machine: the training runs are stopped (SIGSTOP) for the duration and
# resumed at the end (trap).
#   git worktree add /tmp/base 8b73572      # A: session 13's code
#   bash results/bench-s14/run-quiet.sh /tmp/base
set -u
cd "$(dirname "$0")/../.." && . .venv/bin/activate
BASE=$1
OUT=results/bench-s14
pids=$(pgrep -f afrnn-train)
trap 'kill -CONT $pids 2>/dev/null' EXIT
kill -STOP $pids
sleep 2
lscpu | grep -E "Model name|Flags" > $OUT/cpu.txt
python results/bench-s13/ab_versions.py "$BASE" . --rounds 3 --seconds 4 --clients 1,64 > $OUT/ab-classify.out 2>&1
python results/bench-s13/ab_versions.py "$BASE" . --rounds 3 --seconds 4 --clients 1,64 --route pendulum > $OUT/ab-pendulum.out 2>&1
python bench/service_load.py > $OUT/service-load.out 2>&1
python bench/peer_compare.py > $OUT/peer-compare.out 2>&1
