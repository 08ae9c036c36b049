"""A/B of two checkouts of this repository's service (issue 32): each round starts ``python -m service``
from checkout A, then from B (one at a time, MNIST only, max batch 32 by default), and drives each with
``bench/loadgen.py`` (wrk) at the given concurrencies. Prints one line per run and, last, a JSON object
with the medians per checkout. ``--route pendulum`` (session 14) serves the shipped pendulum model
instead and posts one initial state to ``/pendulum/predict`` (its trained horizon, 29 steps).

    python results/bench-s13/ab_versions.py /tmp/base . --rounds 3 --seconds 4 --clients 1,64
    python results/bench-s13/ab_versions.py . . --b-server-args="--max-queue-delay-ms 5"   # one setting
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

HERE = Path(__file__).resolve()
sys.path.insert(0, str(HERE.parents[2] / "bench"))
import loadgen  # noqa: E402
from peer_compare import free_port  # noqa: E402


def serve(root: Path, model_dir: Path, extra: list[str]) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "service", "--model-dir", str(model_dir), "--port", str(port),
                             "--max-queue-length", "1024", "--log-level", "warning", *extra], cwd=root,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health/ready", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            time.sleep(0.2)
    raise RuntimeError(f"{root}: not ready")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("a", type=Path)
    parser.add_argument("b", type=Path)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4)
    parser.add_argument("--clients", default="1,64")
    parser.add_argument("--server-args", default="")
    parser.add_argument("--b-server-args", default="",
                        help="extra flags for B only: an A/B of one checkout under two settings (session 16)")
    parser.add_argument("--route", choices=("classify", "pendulum"), default="classify")
    args = parser.parse_args()
    if args.route == "classify":
        model, path = "mnist", "/classify"
        body = json.dumps({"model": "mnist", "scale": 255,
                           "pixels": np.random.default_rng(0).integers(0, 256, 784).tolist()}).encode()
    else:
        model, path = "pendulum", "/pendulum/predict"
        body = json.dumps({"model": "pendulum", "units": "degrees", "initial_state": {
            "theta1": 30, "theta2": -10, "omega1": 0, "omega2": 5}}).encode()
    rows: dict[str, list[dict]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for suffix in (".json", ".pt"):
            (Path(tmp) / f"{model}{suffix}").symlink_to((HERE.parents[2] / "checkpoints" / f"{model}{suffix}").resolve())
        for _ in range(args.rounds):
            for label, root in (("A", args.a), ("B", args.b)):
                extra = args.server_args.split() + (args.b_server_args.split() if label == "B" else [])
                proc, url = serve(root.resolve(), Path(tmp), extra)
                try:
                    for c in (int(x) for x in args.clients.split(",")):
                        row = loadgen.closed_loop(url + path, body, c, args.seconds, 1.0,
                                                  server_pid=proc.pid)
                        rows.setdefault(f"{label}_c{c}", []).append(row)
                        print(f"{label} c={c}: {row['per_s']:.1f} req/s, p50 {row['p50_ms']:.2f} ms, p99 "
                              f"{row['p99_ms']:.2f} ms, server {row['server_cpu_ms_per_request']:.3f} ms CPU/req, event loop "
                              f"{row['loop_cpu_ms_per_request']:.3f}, batch {row['mean_batch_size']:.1f}",
                              flush=True)
                finally:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(30)
    summary = {key: {m: round(statistics.median(r[m] for r in runs), 3)
                     for m in ("per_s", "p50_ms", "p99_ms", "server_cpu_ms_per_request",
                               "loop_cpu_ms_per_request")}
               for key, runs in rows.items()}
    summary.update(a=str(args.a), b=str(args.b), route=path, cpu=loadgen.__name__ and open("/proc/cpuinfo").read().split(
        "model name\t: ", 1)[1].split("\n", 1)[0], load_average=os.getloadavg()[0])
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
