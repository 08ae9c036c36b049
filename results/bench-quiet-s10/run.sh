#!/usr/bin/env bash
# Session 10: the HTTP server A/B (uvicorn, the default, against granian), on a quiet machine.
# Run from the repo root: bash results/bench-quiet-s10/run.sh   (about 15 minutes)
set -euo pipefail
source .venv/bin/activate
out=results/bench-quiet-s10
{ lscpu | grep -E "Model name|Flags"; uptime; } > $out/machine.txt
for round in 1 2; do
  python bench/soak.py > $out/soak-uvicorn-$round.out 2>&1
  python bench/soak.py --server-args "--http-server granian" > $out/soak-granian-$round.out 2>&1
done
python results/bench-quiet-s9/refusal-burst.py --bursts 3 > $out/refusal-uvicorn.out 2>&1
python results/bench-quiet-s9/refusal-burst.py --bursts 3 --server-args "--http-server granian" > $out/refusal-granian.out 2>&1
python bench/peer_compare.py --versus-ours="--http-server granian" --conditions quiet,busy --clients 1,8,64 --rounds 2 --seconds 3 > $out/ab-granian.out 2>&1
python bench/peer_compare.py --server-args "--http-server granian" --rounds 2 --seconds 3 > $out/peer-granian.out 2>&1
