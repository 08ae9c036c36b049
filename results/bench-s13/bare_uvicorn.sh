#!/bin/bash
# The floor of uvicorn + uvloop + httptools on this machine: an ASGI app that reads the body and answers a
# fixed 320-byte JSON, driven by wrk at 64 connections with the /classify body; prints its CPU per request.
cd "$(dirname "$0")/../.." && . .venv/bin/activate
python -c "import json, numpy as np; open('/tmp/body.json','w').write(json.dumps({'model': 'mnist', 'scale': 255, 'pixels': np.random.default_rng(0).integers(0, 256, 784).tolist()}))"
printf 'local f = assert(io.open("/tmp/body.json", "rb"))\nwrk.method = "POST"; wrk.body = f:read("*a"); f:close()\nwrk.headers["Content-Type"] = "application/json"\n' > /tmp/bare.lua
python results/bench-s13/bare_uvicorn.py & sleep 3
PID=$!
python - "$PID" <<'PY'
import os, subprocess, sys
pid = int(sys.argv[1])
def cpu():
    f = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / os.sysconf("SC_CLK_TCK")
c0 = cpu()
out = subprocess.run(["wrk", "-t1", "-c64", "-d4s", "-s", "/tmp/bare.lua", "http://127.0.0.1:8399/"],
                     capture_output=True, text=True).stdout
n = int(next(l for l in out.splitlines() if "requests in" in l).split()[0])
print(f"{n} requests, {(cpu() - c0) * 1000 / n:.3f} ms server CPU per request")
PY
kill $PID
