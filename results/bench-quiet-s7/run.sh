#!/bin/bash
# Session 7's quiet window (no training running): the machine, then the service benchmarks in order.
cd "$(dirname "$0")/../.." && source .venv/bin/activate
D=results/bench-quiet-s7
{ date; uptime; lscpu | grep -E "^CPU\(s\)|Model name"; echo "Flags: $(grep -o -w -E 'avx2|avx512f|amx_bf16|amx_tile|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')"; } > $D/machine.txt
python bench/service_load.py --client raw --seconds 4 > $D/service-load-raw.out 2>&1
python bench/peer_compare.py --rounds 2 --seconds 3 > $D/peer.out 2>&1
python bench/soak.py > $D/soak.out 2>&1
{ date; uptime; } >> $D/machine.txt
