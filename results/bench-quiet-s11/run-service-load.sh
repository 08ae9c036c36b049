#!/usr/bin/env bash
# Session 11: issue 16's service-load figures with granian as the HTTP server, against the default
# (uvicorn), in the order A B A. Run from the repo root on a quiet machine (about 6 minutes):
#   bash results/bench-quiet-s11/run-service-load.sh
set -euo pipefail
source .venv/bin/activate
out=results/bench-quiet-s11
uptime > $out/machine-service-load.txt
python bench/service_load.py --client raw --seconds 4 > $out/service-load-uvicorn-1.out 2>&1
python bench/service_load.py --client raw --seconds 4 --server-args "--http-server granian" > $out/service-load-granian.out 2>&1
python bench/service_load.py --client raw --seconds 4 > $out/service-load-uvicorn-2.out 2>&1
uptime >> $out/machine-service-load.txt
