#!/usr/bin/env bash
# Session 11, last: bench/service_load.py with the service's new defaults (max_batch_size 32, the chunked
# C loop), twice. Run from the repo root on a quiet machine (about 4 minutes):
#   bash results/bench-quiet-s11/run-service-load-final.sh
set -euo pipefail
source .venv/bin/activate
out=results/bench-quiet-s11
uptime > $out/machine-service-load-final.txt
for i in 1 2; do
  python bench/service_load.py --client raw --seconds 4 > $out/service-load-final-$i.out 2>&1
done
uptime >> $out/machine-service-load-final.txt
