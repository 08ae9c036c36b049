#!/bin/bash
# Issue 32, session 15: where the time goes on both threads of the service (event loop and model thread),
# at c = 1 and c = 64 on POST /classify (mnist), wrk as the load; native frames, idle samples kept.
# (py-spy pauses the process for each native sample, about 2 % of the time at 250 Hz: the loadgen JSON of these runs is not a benchmark.)
# Training runs are SIGSTOPped for the measurement (trap resumes them).
#   bash results/bench-s15/profile_threads.sh
set -u
cd "$(dirname "$0")/../.." && . .venv/bin/activate
OUT=results/bench-s15
PORT=8431
python -c "import json, numpy as np; open('/tmp/s15body.json','w').write(json.dumps({'model': 'mnist', 'scale': 255, 'pixels': np.random.default_rng(0).integers(0, 256, 784).tolist()}))"
OMP_NUM_THREADS=1 AFRNN_LOG_LEVEL=warning python -m service --port $PORT > /tmp/s15-service.log 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null; kill -CONT $(pgrep -f afrnn-train) 2>/dev/null' EXIT
until curl -sf http://127.0.0.1:$PORT/health/ready > /dev/null; do sleep 1; done
pids=$(pgrep -f afrnn-train)
kill -STOP $pids; sleep 2
lscpu | grep -E "Model name|Flags" > $OUT/cpu.txt
for c in ${CLIENTS:-1 64}; do
  python bench/loadgen.py http://127.0.0.1:$PORT/classify --body-file /tmp/s15body.json --clients $c --seconds 10 \
      --server-pid $SPID > $OUT/profile-c$c.loadgen.json 2>&1 &
  LG=$!
  sleep 3
  py-spy record -p $SPID -d 5 -r 250 -f raw --threads --native --idle -o $OUT/profile-c$c.raw > /dev/null 2>&1
  wait $LG
done
kill -CONT $pids
