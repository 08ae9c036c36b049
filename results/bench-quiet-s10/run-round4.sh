#!/usr/bin/env bash
# Session 10, last: a fourth soak pair (granian first this time, to rule out an order effect).
# Run from the repo root: bash results/bench-quiet-s10/run-round4.sh   (about 13 minutes)
set -euo pipefail
source .venv/bin/activate
out=results/bench-quiet-s10
uptime > $out/machine-round4.txt
python bench/soak.py --server-args "--http-server granian" > $out/soak-granian-4.out 2>&1
python bench/soak.py > $out/soak-uvicorn-4.out 2>&1
