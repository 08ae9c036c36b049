#!/bin/bash
# The garbage collector's share of the service at c = 64 on POST /classify, per young-generation threshold
# (results/bench-s14/gc_probe.py with GC_PROBE_THRESHOLD; the service freezes its start-up heap itself). Output: gc-probe.out.
#   bash results/bench-s15/gc_probe.sh
set -u
cd "$(dirname "$0")/../.." && . .venv/bin/activate
PORT=8435
python -c "import json, numpy as np; open('/tmp/s15body.json','w').write(json.dumps({'model': 'mnist', 'scale': 255, 'pixels': np.random.default_rng(0).integers(0, 256, 784).tolist()}))"
for round in 1 2; do
for threshold in 700 10000; do
  GC_PROBE_THRESHOLD=$threshold GC_PROBE_OUT=/tmp/gc-$threshold.json OMP_NUM_THREADS=1 AFRNN_LOG_LEVEL=warning \
      python results/bench-s14/gc_probe.py --port $PORT > /tmp/gc-service.log 2>&1 &
  SPID=$!
  until curl -sf http://127.0.0.1:$PORT/health/ready > /dev/null; do sleep 1; done
  sleep 1
  python bench/loadgen.py http://127.0.0.1:$PORT/classify --body-file /tmp/s15body.json --clients 64 \
      --seconds 8 --server-pid $SPID > /tmp/gc-load-$threshold.json
  kill -TERM $SPID; wait $SPID
  python - $threshold <<'PY'
import json, sys
t = sys.argv[1]
gc_stats, load = json.load(open(f"/tmp/gc-{t}.json")), json.load(open(f"/tmp/gc-load-{t}.json"))
n = load["requests"]
print(json.dumps({"threshold0": int(t), "requests": n, "per_s": round(load["per_s"], 1),
                  "gc_ms_per_request": round(sum(gc_stats[g]["ms"] for g in "012") / n, 4),
                  "p99_ms": load["p99_ms"], "loop_cpu_ms_per_request": round(load["loop_cpu_ms_per_request"], 3),
                  **{f"gen{g}": gc_stats[g] for g in "012"}}))
PY
done
done
