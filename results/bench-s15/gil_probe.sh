#!/bin/bash
# Issue 32, session 15: wall time against the model thread's CPU time per forward, c = 64 and c = 1,
# POST /classify (mnist, wrk). Output: gil-probe.out.
#   bash results/bench-s15/gil_probe.sh
set -u
cd "$(dirname "$0")/../.." && . .venv/bin/activate
PORT=8434
python -c "import json, numpy as np; open('/tmp/s15body.json','w').write(json.dumps({'model': 'mnist', 'scale': 255, 'pixels': np.random.default_rng(0).integers(0, 256, 784).tolist()}))"
for c in 64 1; do
  OMP_NUM_THREADS=1 AFRNN_LOG_LEVEL=warning python results/bench-s15/gil_probe.py --port $PORT > /tmp/s15-gil.log 2>&1 &
  SPID=$!
  until curl -sf http://127.0.0.1:$PORT/health/ready > /dev/null; do sleep 1; done
  python bench/loadgen.py http://127.0.0.1:$PORT/classify --body-file /tmp/s15body.json --clients $c --seconds 8 \
      --server-pid $SPID | tail -1
  kill -TERM $SPID; wait $SPID
  python -c "import json; t = json.load(open('/tmp/gil-probe.json')); print('clients=$c', json.dumps(t), 'cpu/wall = %.3f' % (t['thread_cpu_s'] / t['wall_s']), 'wall ms/row = %.3f' % (t['wall_s'] * 1000 / t['rows']), 'cpu ms/row = %.3f' % (t['thread_cpu_s'] * 1000 / t['rows']))"
done
