#!/usr/bin/env bash
# Session 11, after the chunked C loop: our defaults against LitServe 0.2.19, as in sessions 6-10.
# Run from the repo root on a quiet machine (about 3 minutes): bash results/bench-quiet-s11/run-peer.sh
set -euo pipefail
source .venv/bin/activate
out=results/bench-quiet-s11
uptime > $out/machine-peer.txt
python bench/peer_compare.py --rounds 2 --seconds 3 > $out/peer.out 2>&1
uptime >> $out/machine-peer.txt
