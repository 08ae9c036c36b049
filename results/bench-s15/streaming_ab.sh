#!/bin/bash
# Issue 32, session 15: streams before/after this session: `bench/streaming.py --quick` from session 14's checkout (A: /tmp/base =
# git worktree add /tmp/base 6425623) and
# from this one (B), alternating A B A B. Prints each run's JSON line.
#   bash results/bench-s15/streaming_ab.sh /tmp/base
set -u
cd "$(dirname "$0")/../.." && . .venv/bin/activate
BASE=$1
for round in 1 2; do
  for label in A B; do
    root=$([ $label = A ] && echo "$BASE" || pwd)
    echo "$label round $round: $(cd "$root" && OMP_NUM_THREADS=1 PYTHONPATH="$root" python bench/streaming.py --quick 2>/dev/null | tail -n 1)"
  done
done
