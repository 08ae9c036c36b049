#!/usr/bin/env bash
# Session 11: a burst's resident set under granian (with and without its jemalloc purge) and uvicorn.
# Run from the repo root: bash results/bench-quiet-s11/run-rss.sh   (about 3 minutes)
set -euo pipefail
source .venv/bin/activate
out=results/bench-quiet-s11
uptime > $out/machine-rss.txt
probe="python results/bench-quiet-s9/refusal-burst.py --bursts 3 --warmup 250 --idle-s 15"
$probe --server-args "--http-server granian" > $out/rss-granian.out 2>&1
$probe --server-args "--http-server granian" --env _RJEM_MALLOC_CONF=dirty_decay_ms:10000 > $out/rss-granian-jemalloc-default.out 2>&1
$probe > $out/rss-uvicorn.out 2>&1
uptime >> $out/machine-rss.txt
