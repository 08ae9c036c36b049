#!/usr/bin/env bash
# Session 11: the C loop in cache-sized chunks (commit "FastRecurrence runs a batch in chunks") against the
# commit before it (ad28d8d, checked out as a worktree in /tmp/before), on the default server, B A B A.
# Run from the repo root on a quiet machine (about 5 minutes):
#   git worktree add /tmp/before ad28d8d && bash results/bench-quiet-s11/run-chunks.sh
set -euo pipefail
source .venv/bin/activate
out=$PWD/results/bench-quiet-s11
uptime > $out/machine-chunks.txt
for i in 1 2; do
  (cd /tmp/before && python bench/service_load.py --client raw --seconds 4) > $out/service-load-unchunked-$i.out 2>&1
  python bench/service_load.py --client raw --seconds 4 > $out/service-load-chunked-$i.out 2>&1
done
uptime >> $out/machine-chunks.txt
