#!/usr/bin/env bash
# Session 11, after run-service-load.sh: two more pairs, granian first (B A B A), against an order effect.
# Run from the repo root on a quiet machine (about 5 minutes): bash results/bench-quiet-s11/run-service-load-2.sh
set -euo pipefail
source .venv/bin/activate
out=results/bench-quiet-s11
uptime > $out/machine-service-load-2.txt
for i in 2 3; do
  python bench/service_load.py --client raw --seconds 4 --server-args "--http-server granian" > $out/service-load-granian-$i.out 2>&1
  python bench/service_load.py --client raw --seconds 4 > $out/service-load-uvicorn-$((i + 1)).out 2>&1
done
uptime >> $out/machine-service-load-2.txt
