#!/bin/bash
# The garbage collector's share of the service at c = 64 on POST /classify, without and with gc.freeze()
# after loading (results/bench-s14/gc_probe.py); training may run beside it (counts and ms per request,
# not a benchmark).   bash results/bench-s14/gc_probe.sh
set -u
cd "$(dirname "$0")/../.." && . .venv/bin/activate
PORT=8432
python -c "import json, numpy as np; open('/tmp/s14body.json','w').write(json.dumps({'model': 'mnist', 'scale': 255, 'pixels': np.random.default_rng(0).integers(0, 256, 784).tolist()}))"
for freeze in 0 1; do
  GC_PROBE_FREEZE=$freeze GC_PROBE_OUT=/tmp/gc-$freeze.json OMP_NUM_THREADS=1 AFRNN_LOG_LEVEL=warning \
      python results/bench-s14/gc_probe.py --port $PORT > /tmp/gc-service.log 2>&1 &
  SPID=$!
  until curl -sf http://127.0.0.1:$PORT/health/ready > /dev/null; do sleep 1; done
  sleep 1
  python bench/loadgen.py http://127.0.0.1:$PORT/classify --body-file /tmp/s14body.json --clients 64 \
      --seconds 10 --server-pid $SPID > /tmp/gc-load-$freeze.json
  kill -TERM $SPID; wait $SPID
  python - $freeze <<'PY'
import json, sys
freeze = sys.argv[1]
gc_stats, load = json.load(open(f"/tmp/gc-{freeze}.json")), json.load(open(f"/tmp/gc-load-{freeze}.json"))
n = load["requests"]
print(json.dumps({"freeze": freeze == "1", "requests": n, "tracked_objects": gc_stats["tracked_objects"],
                  "frozen": gc_stats["frozen"],
                  "gc_ms_per_request": round(sum(gc_stats[g]["ms"] for g in "012") / n, 4),
                  "p99_ms": load["p99_ms"], "loop_cpu_ms_per_request": round(load["loop_cpu_ms_per_request"], 3),
                  **{f"gen{g}": gc_stats[g] for g in "012"}}))
PY
done
