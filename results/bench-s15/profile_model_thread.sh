#!/bin/bash
# Issue 32, session 15: both threads' stacks at c = 64 on POST /classify (mnist, wrk), Python frames
# only, sampled without pausing the process (--nonblocking), idle samples kept.
#   bash results/bench-s15/profile_model_thread.sh
set -u
cd "$(dirname "$0")/../.." && . .venv/bin/activate
OUT=${OUT:-results/bench-s15}   # session 16: OUT=results/bench-s16
PORT=8433
python -c "import json, numpy as np; open('/tmp/s15body.json','w').write(json.dumps({'model': 'mnist', 'scale': 255, 'pixels': np.random.default_rng(0).integers(0, 256, 784).tolist()}))"
OMP_NUM_THREADS=1 AFRNN_LOG_LEVEL=warning python -m service --port $PORT > /tmp/s15-service.log 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null' EXIT
until curl -sf http://127.0.0.1:$PORT/health/ready > /dev/null; do sleep 1; done
python bench/loadgen.py http://127.0.0.1:$PORT/classify --body-file /tmp/s15body.json --clients ${CLIENTS:-64} --seconds 22 \
    --server-pid $SPID > $OUT/profile-model-c${CLIENTS:-64}.loadgen.json 2>&1 &
LG=$!
sleep 3
py-spy record -p $SPID -d 18 -r 250 -f raw --threads --idle --nonblocking -o $OUT/profile-model-c${CLIENTS:-64}.raw > /dev/null 2>&1
wait $LG
