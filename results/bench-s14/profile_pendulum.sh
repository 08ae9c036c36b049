#!/bin/bash
# Issue 32, session 14: where a POST /pendulum/predict request's time goes (one initial state, the trained
# horizon), at c = 1 with wrk; py-spy without native frames (non-blocking), idle samples dropped.
#   bash results/bench-s14/profile_pendulum.sh
set -u
cd "$(dirname "$0")/../.." && . .venv/bin/activate
OUT=results/bench-s14
PORT=8433
echo '{"model": "pendulum", "units": "degrees", "initial_state": {"theta1": 30, "theta2": -10, "omega1": 0, "omega2": 5}}' > /tmp/s14pend.json
OMP_NUM_THREADS=1 AFRNN_LOG_LEVEL=warning python -m service --port $PORT > /tmp/s14-service.log 2>&1 &
SPID=$!
trap 'kill $SPID 2>/dev/null' EXIT
until curl -sf http://127.0.0.1:$PORT/health/ready > /dev/null; do sleep 1; done
python bench/loadgen.py http://127.0.0.1:$PORT/pendulum/predict --body-file /tmp/s14pend.json --clients 1 --seconds 10 \
    --server-pid $SPID > $OUT/profile-pendulum-c1.loadgen.json 2>&1 &
LG=$!
sleep 3
py-spy record -p $SPID -d 6 -r 200 -f raw --threads --nonblocking -o $OUT/profile-pendulum-c1.raw > /dev/null 2>&1
wait $LG
