#!/usr/bin/env bash
# Session 11, last: the soak with the service's new defaults (max_batch_size 32, the chunked C loop).
# Run from the repo root on a quiet machine (about 2 minutes): bash results/bench-quiet-s11/run-soak-final.sh
set -euo pipefail
source .venv/bin/activate
out=results/bench-quiet-s11
uptime > $out/machine-soak-final.txt
python bench/soak.py > $out/soak-uvicorn-final.out 2>&1
uptime >> $out/machine-soak-final.txt
