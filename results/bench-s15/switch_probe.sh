#!/bin/bash
# Issue 32, session 15: c = 64 on POST /classify (mnist, wrk) with CPython's GIL switch interval at its
# default (5 ms) and at 0.5 ms, alternating, 3 rounds: throughput, and the model thread's CPU against the
# wall time of its forward passes (results/bench-s15/gil_probe.py). Output: switch-probe.out.
#   bash results/bench-s15/switch_probe.sh
set -u
cd "$(dirname "$0")/../.." && . .venv/bin/activate
PORT=8436
python -c "import json, numpy as np; open('/tmp/s15body.json','w').write(json.dumps({'model': 'mnist', 'scale': 255, 'pixels': np.random.default_rng(0).integers(0, 256, 784).tolist()}))"
for round in 1 2 3; do
for switch in 0.005 0.0005; do
  GIL_PROBE_SWITCH_S=$switch OMP_NUM_THREADS=1 AFRNN_LOG_LEVEL=warning python results/bench-s15/gil_probe.py --port $PORT > /tmp/s15-switch.log 2>&1 &
  SPID=$!
  until curl -sf http://127.0.0.1:$PORT/health/ready > /dev/null; do sleep 1; done
  load=$(python bench/loadgen.py http://127.0.0.1:$PORT/classify --body-file /tmp/s15body.json --clients 64 --seconds 6 \
      --server-pid $SPID | tail -1)
  kill -TERM $SPID; wait $SPID
  python - "$load" <<'PY'
import json, sys
load, t = json.loads(sys.argv[1]), json.load(open("/tmp/gil-probe.json"))
print(json.dumps({"switch_interval_s": t["switch_interval_s"], "per_s": round(load["per_s"], 1),
                  "p99_ms": load["p99_ms"], "loop_cpu_ms_per_request": round(load["loop_cpu_ms_per_request"], 3),
                  "model_cpu_over_wall": round(t["thread_cpu_s"] / t["wall_s"], 3),
                  "forward_wall_ms_per_row": round(t["wall_s"] * 1000 / t["rows"], 3)}))
PY
done
done
