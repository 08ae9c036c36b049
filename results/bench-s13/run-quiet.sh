#!/bin/bash
# Issue 32's measurements on a quiet machine: the two training runs are stopped (SIGSTOP) for the
# duration and resumed at the end (trap), so the servers, the load generator and the hog have both cores.
#   bash results/bench-s13/run-quiet.sh /tmp/base      # /tmp/base: `git worktree add /tmp/base a8673d7`
set -u
cd "$(dirname "$0")/../.."
. .venv/bin/activate
BASE=$1
OUT=results/bench-s13
pids=$(pgrep -f afrnn-train)
trap 'kill -CONT $pids 2>/dev/null' EXIT
kill -STOP $pids
sleep 2
lscpu | grep -E "Model name|Flags" > $OUT/cpu.txt
if [ ! -s $OUT/ab-lean-route.out ]; then
  python results/bench-s13/ab_versions.py "$BASE" . --rounds 3 --seconds 4 > $OUT/ab-lean-route.out 2>&1
fi
python bench/service_load.py > $OUT/service-load.out 2>&1
python bench/peer_compare.py > $OUT/peer-compare.out 2>&1
(cd "$BASE" && python bench/peer_compare.py --quick) > $OUT/peer-compare-before-quick.out 2>&1
python bench/peer_compare.py --quick > $OUT/peer-compare-after-quick.out 2>&1
