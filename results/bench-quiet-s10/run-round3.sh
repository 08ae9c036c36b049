#!/usr/bin/env bash
# Session 10, after the option's commit: one more soak pair and one more peer run on granian.
# Run from the repo root: bash results/bench-quiet-s10/run-round3.sh   (about 12 minutes)
set -euo pipefail
source .venv/bin/activate
out=results/bench-quiet-s10
uptime > $out/machine-round3.txt
python bench/soak.py > $out/soak-uvicorn-3.out 2>&1
python bench/soak.py --server-args "--http-server granian" > $out/soak-granian-3.out 2>&1
python bench/peer_compare.py --server-args "--http-server granian" --rounds 2 --seconds 3 > $out/peer-granian-2.out 2>&1
python bench/peer_compare.py --rounds 2 --seconds 3 > $out/peer-uvicorn.out 2>&1
