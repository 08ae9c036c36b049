"""Issue 32, session 15: does the forward inside the service slow down because the event loop (and the
load generator) share its core? Runs the shipped service, finds its model thread (the busiest thread
that is not the main one), and alternates c = 64 windows on POST /classify (mnist, wrk):

* ``free``: every thread may run on every CPU (as shipped);
* ``pinned``: the model thread alone on the last CPU, every other thread of the server and the load
  generator on the others (``os.sched_setaffinity`` on thread ids; wrk inherits this process's mask).

    python results/bench-s15/affinity_probe.py [--rounds 3] [--seconds 8]
"""
import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from bench.loadgen import closed_loop, thread_cpu_s  # noqa: E402

PORT = 8432
URL = f"http://127.0.0.1:{PORT}"


def tasks(pid):
    return [int(t) for t in os.listdir(f"/proc/{pid}/task")]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=8.0)
    args = ap.parse_args()
    cpus = sorted(os.sched_getaffinity(0))
    model_cpu, rest = {cpus[-1]}, set(cpus[:-1])
    body = Path("/tmp/s15body.json")
    body.write_text(json.dumps({"model": "mnist", "scale": 255,
                                "pixels": np.random.default_rng(0).integers(0, 256, 784).tolist()}))
    env = dict(os.environ, OMP_NUM_THREADS="1", AFRNN_LOG_LEVEL="warning")
    server = subprocess.Popen([sys.executable, "-m", "service", "--port", str(PORT)], env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                if httpx.get(URL + "/health/ready").status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        before = {t: thread_cpu_s(server.pid, t) for t in tasks(server.pid)}
        closed_loop(URL + "/classify", body.read_bytes(), 64, 3.0, 1.0)
        used = {t: thread_cpu_s(server.pid, t) - before.get(t, 0.0) for t in tasks(server.pid)}
        model_tid = max((t for t in used if t != server.pid), key=used.get)
        print(f"cpus {cpus}; model thread {model_tid} ({used[model_tid]:.2f} s in warm-up)", flush=True)
        results = {"free": [], "pinned": []}
        for _ in range(args.rounds):
            for mode in ("free", "pinned"):
                for t in tasks(server.pid):
                    mask = set(cpus) if mode == "free" else (model_cpu if t == model_tid else rest)
                    os.sched_setaffinity(t, mask)
                os.sched_setaffinity(0, set(cpus) if mode == "free" else rest)
                m0 = thread_cpu_s(server.pid, model_tid)
                r = closed_loop(URL + "/classify", body.read_bytes(), 64, args.seconds, 1.0,
                                server_pid=server.pid)
                r["model_thread_cpu_ms_per_request"] = (thread_cpu_s(server.pid, model_tid) - m0) * 1000 / r["requests"]
                os.sched_setaffinity(0, set(cpus))
                results[mode].append(r)
                print(mode, json.dumps({k: r[k] for k in ("per_s", "p50_ms", "p99_ms", "mean_batch_size",
                                                           "forward_ms_per_request", "loop_cpu_ms_per_request",
                                                           "model_thread_cpu_ms_per_request")}), flush=True)
        summary = {mode: {k: float(np.median([r[k] for r in rs])) for k in
                          ("per_s", "forward_ms_per_request", "model_thread_cpu_ms_per_request",
                           "loop_cpu_ms_per_request")} for mode, rs in results.items()}
        summary["pinned_vs_free"] = summary["pinned"]["per_s"] / summary["free"]["per_s"]
        print(json.dumps(summary))
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
