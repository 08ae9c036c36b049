#!/usr/bin/env bash
# Session 11: granian in HTTP/1 mode with its jemalloc purging in the background, against uvicorn.
# Run from the repo root on a quiet machine: bash results/bench-quiet-s11/run.sh   (about 10 minutes)
set -euo pipefail
source .venv/bin/activate
out=results/bench-quiet-s11
{ uptime; lscpu | grep -E "Model name|^CPU\(s\)"; grep -o -w -E "avx2|fma|avx512f|amx_bf16" /proc/cpuinfo | sort | uniq -c; } > $out/machine.txt
# (the resident-set figures of granian's allocator come from run-rss.sh)
python results/bench-quiet-s9/refusal-burst.py --bursts 3 --server-args "--http-server granian" > $out/refusal-granian.out 2>&1
python results/bench-quiet-s9/refusal-burst.py --bursts 3 > $out/refusal-uvicorn.out 2>&1
# soaks in the order A B B A, against an order effect
python bench/soak.py > $out/soak-uvicorn-1.out 2>&1
python bench/soak.py --server-args "--http-server granian" > $out/soak-granian-1.out 2>&1
python bench/soak.py --server-args "--http-server granian" > $out/soak-granian-2.out 2>&1
python bench/soak.py > $out/soak-uvicorn-2.out 2>&1
uptime >> $out/machine.txt
