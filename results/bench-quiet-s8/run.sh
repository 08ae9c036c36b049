#!/bin/bash
# Session 8's quiet window (no training running): the machine, then the soak with the lane's line estimate.
cd "$(dirname "$0")/../.." && source .venv/bin/activate
D=results/bench-quiet-s8
{ date; uptime; lscpu | grep -E "^CPU\(s\)|Model name"; echo "Flags: $(grep -o -w -E 'avx2|avx512f|amx_bf16|amx_tile|fma' /proc/cpuinfo | sort -u | tr '\n' ' ')"; } > $D/machine.txt
python bench/soak.py > $D/soak.out 2>&1
{ date; uptime; } >> $D/machine.txt
