#!/usr/bin/env bash
# Session 11, after run-chunks.sh: the chunked C loop on granian and on uvicorn, A B A B.
# Run from the repo root on a quiet machine (about 5 minutes): bash results/bench-quiet-s11/run-chunks-granian.sh
set -euo pipefail
source .venv/bin/activate
out=results/bench-quiet-s11
uptime > $out/machine-chunks-granian.txt
for i in 1 2; do
  python bench/service_load.py --client raw --seconds 4 --server-args "--http-server granian" > $out/service-load-chunked-granian-$i.out 2>&1
  python bench/service_load.py --client raw --seconds 4 > $out/service-load-chunked-$((i + 2)).out 2>&1
done
uptime >> $out/machine-chunks-granian.txt
