#!/bin/bash
# Streams before/after fix_weights: `bench/streaming.py --quick` from session 13's checkout (A: /tmp/base =
# git worktree add /tmp/base 8b73572, its own checkpoints/mnist.json: the same 2 x 128 IMEX architecture) and
# from this one (B), alternating A B A B; one training run on the other core. Prints each run's JSON line.
#   bash results/bench-s14/streaming_ab.sh /tmp/base
set -u
cd "$(dirname "$0")/../.." && . .venv/bin/activate
BASE=$1
for round in 1 2; do
  for label in A B; do
    root=$([ $label = A ] && echo "$BASE" || pwd)
    echo "$label round $round: $(cd "$root" && OMP_NUM_THREADS=1 PYTHONPATH="$root" python bench/streaming.py --quick 2>/dev/null | tail -n 1)"
  done
done
