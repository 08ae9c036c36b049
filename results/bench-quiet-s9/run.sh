#!/bin/bash
# Session 9's quiet window (no training running): the machine, the soak (stability reports now stop at
# their deadline), then the peer comparison.
cd "$(dirname "$0")/../.." && source .venv/bin/activate
D=results/bench-quiet-s9
machine() { date; uptime; lscpu | grep -E "^CPU\(s\)|Model name"; echo "Flags: $(grep -o -w -E 'avx2|avx512f|amx_bf16|amx_tile|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')"; }
machine > $D/machine.txt
python bench/soak.py > $D/soak.out 2>&1
{ date; uptime; } >> $D/machine.txt
machine > $D/machine-peer.txt
python bench/peer_compare.py --rounds 2 --seconds 3 > $D/peer.out 2>&1
{ date; uptime; } >> $D/machine-peer.txt
