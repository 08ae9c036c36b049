#!/usr/bin/env bash
# Session 11, after run-max-batch.sh: two more pairs of the same.
# Run from the repo root on a quiet machine (about 5 minutes): bash results/bench-quiet-s11/run-max-batch-2.sh
set -euo pipefail
source .venv/bin/activate
out=results/bench-quiet-s11
uptime > $out/machine-max-batch-2.txt
for i in 3 4; do
  python bench/service_load.py --client raw --seconds 4 --clients 8,64 --max-batch-size 32 > $out/service-load-max-batch-32-$i.out 2>&1
  python bench/service_load.py --client raw --seconds 4 --clients 8,64 > $out/service-load-max-batch-64-$i.out 2>&1
done
uptime >> $out/machine-max-batch-2.txt
