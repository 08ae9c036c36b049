"""Our service against a peer server (LitServe) on the same checkpoint, quiet and with a CPU hog.

    pip install -e '.[bench]'                       # LitServe, for this benchmark only
    python bench/peer_compare.py --quick            # < 45 s of measurement: 1 round of 1 s per point
    python bench/peer_compare.py                    # 3 rounds of 6 s per point
    python bench/peer_compare.py --server-args="--max-queue-delay-ms 0"   # our service, other settings
    python bench/peer_compare.py --versus-ours="--max-batch-size 32"     # a lever, A/B

Both servers serve ``checkpoints/mnist.json`` (the TorchScript MNIST AFRNN) with max batch 64, their
shipped batch formation (ours: the adaptive window of ``service.batching``; the peer: LitServe's
default, ``batch_timeout`` 0; ``--server-args="--max-queue-delay-ms 0"`` gives ours no window either),
one torch thread and one inference worker: ours is ``python -m service``, the peer is
``bench/litserve_app.py`` (LitServe with the same decoding, batching and encoding code). Ours runs
twice: as shipped (its forward is the C loop, ``model.inference.FastRecurrence``) and **stack-only**,
with ``AFRNN_FAST_RECURRENCE=0``, so that it runs the same TorchScript module as the peer and the
ratio measures the serving stack alone. One load generator, the closed loop of ``bench/loadgen.py``
(``wrk`` with one connection thread when installed, else httpx clients; ``load_generator`` says which),
drives each in turn: for each concurrency c in (1, 8, 64) and each round, ours, ours stack-only, then
the peer (A B C A B C …). While one is measured the others' processes are stopped (SIGSTOP), so that
no idle server loads the measured one. Each server's CPU per answered request (its whole process
group, from /proc) is recorded beside its throughput.

The whole comparison runs twice: "quiet" (whatever else the machine runs: say what in the record)
and "busy", with a background CPU hog (one single-threaded busy loop in its own process, started
and stopped here, with a hard deadline) taking one core. Figures, as the last line (JSON):

* ``{quiet,busy}_c{1,8,64}_vs_peer``       — our throughput ÷ the peer's (means over the rounds);
* ``stack_{quiet,busy}_c{1,8,64}_vs_peer`` — the same, ours stack-only (the same model code as the peer);
* ``c1_p50_vs_peer``, ``stack_c1_p50_vs_peer`` — median single-client latency ÷ the peer's (quiet);
* per point and server: requests/s, p50 and p99, errors (non-200 answers and transport failures) and
  server CPU ms per request.

Goals: stack-only ≥ 1.3 × the peer's throughput at c = 8 and 64, quiet and busy.
"""

import argparse
import json
import os
import shlex
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from importlib.metadata import version
from pathlib import Path

import httpx
import numpy as np

BENCH = Path(__file__).resolve().parent
REPO_ROOT = BENCH.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402, I001
import machine  # noqa: E402

HOG_SOURCE = ("import sys, time\nend = time.monotonic() + float(sys.argv[1])\n"
              "while time.monotonic() < end:\n    pass\n")


def free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """A server process group on a free port: started, waited for, paused, resumed, stopped."""

    def __init__(self, name: str, argv: list[str], url_path: str, health_path: str, body: dict,
                 log_path: Path, extra_env: dict[str, str] | None = None):
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.path = url_path
        self.body = json.dumps(body).encode()
        env = {**os.environ, "OMP_NUM_THREADS": "1", **(extra_env or {})}
        env.pop("AFRNN_API_KEY", None)
        self.log_path = log_path
        with open(log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, *argv, "--port", str(self.port)], cwd=REPO_ROOT,
                                         env=env, start_new_session=True, stdout=log, stderr=log)
        deadline = time.monotonic() + 480           # start-up under heavy load took minutes
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"{name} exited with {self.proc.returncode}: "
                                   f"{self.log_path.read_text(errors='replace')[-2000:]}")
            try:
                if httpx.get(self.url + health_path, timeout=2).status_code == 200:
                    response = httpx.post(self.url + self.path, content=self.body, timeout=30,
                                          headers={"content-type": "application/json"})
                    if response.status_code != 200:
                        raise RuntimeError(f"{name}: {response.status_code} {response.text[:300]}")
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"{name} not ready after 480 s")

    def signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)
        except ProcessLookupError:
            pass

    def stop(self) -> None:
        self.signal(signal.SIGCONT)
        self.signal(signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            self.signal(signal.SIGKILL)
            self.proc.wait(10)


def compare(servers: dict[str, Server], concurrencies: list[int], rounds: int, seconds: float,
            warmup_s: float, generator: str, label: str) -> dict:
    """Interleaved rounds (each server in turn, per round) per concurrency; the idle servers are
    SIGSTOPped. ``servers["peer"]`` is the reference of every ratio."""
    out = {}
    for c in concurrencies:
        runs: dict[str, list[dict]] = {key: [] for key in servers}
        for _ in range(rounds):
            for key, active in servers.items():
                for other in servers.values():
                    if other is not active:
                        other.signal(signal.SIGSTOP)
                active.signal(signal.SIGCONT)
                runs[key].append(loadgen.closed_loop(active.url + active.path, active.body, c, seconds,
                                                     warmup_s, generator=generator,
                                                     server_pid=active.proc.pid))
        point: dict = {}
        for key, rows in runs.items():
            point[key] = {"per_s": round(sum(r["per_s"] for r in rows) / len(rows), 1),
                          "p50_ms": round(statistics.median(r["p50_ms"] for r in rows), 2),
                          "p99_ms": round(statistics.median(r["p99_ms"] for r in rows), 2),
                          "errors": sum(r["errors"] for r in rows),
                          "server_cpu_ms_per_request": round(statistics.median(
                              r["server_cpu_ms_per_request"] for r in rows), 3),
                          "rounds_per_s": [round(r["per_s"], 1) for r in rows]}
        peer = point["peer"]
        for key in servers:
            if key != "peer":
                point[key]["throughput_ratio"] = round(point[key]["per_s"] / max(peer["per_s"], 1e-9), 3)
                point[key]["p50_ratio"] = round(point[key]["p50_ms"] / peer["p50_ms"], 3)
        out[f"c{c}"] = point
        print(f"{label:5s} c={c:3d}: " + "; ".join(
            f"{key} {row['per_s']:.1f} req/s p50 {row['p50_ms']:.1f} ms, "
            f"{row['server_cpu_ms_per_request']:.2f} ms CPU/req"
            + (f" (x{row['throughput_ratio']:.2f})" if key != "peer" else "")
            + (f", {row['errors']} errors" if row["errors"] else "")
            for key, row in point.items()), flush=True)
    for server in servers.values():
        server.signal(signal.SIGCONT)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s per point")
    parser.add_argument("--rounds", type=int, help="rounds per point (default 3; quick 1)")
    parser.add_argument("--seconds", type=float, help="measured seconds per run (default 6; quick 1)")
    parser.add_argument("--clients", default="1,8,64", help="comma-separated concurrencies")
    parser.add_argument("--conditions", default="quiet,busy",
                        help="comma-separated, out of quiet and busy (default both: quiet,busy)")
    parser.add_argument("--model-dir", type=Path, default=REPO_ROOT / "checkpoints")
    parser.add_argument("--server-args", default="", help="extra flags for python -m service")
    parser.add_argument("--load-generator", choices=loadgen.GENERATORS, default="auto",
                        help="wrk (auto takes it when installed) or httpx clients in this process")
    parser.add_argument("--versus-ours", metavar="ARGS",
                        help="a lever test: the peer is our service again, with these extra flags "
                             "(e.g. '--max-batch-size 32'), instead of LitServe")
    parser.add_argument("--peer-env", default="", metavar="K=V,…",
                        help="extra environment of the peer (with --versus-ours)")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    seconds = args.seconds or (1.0 if args.quick else 6.0)
    warmup_s = 0.3 if args.quick else 1.0
    concurrencies = [int(c) for c in args.clients.split(",")]
    conditions = [c for c in args.conditions.split(",") if c]
    unknown = sorted(set(conditions) - {"quiet", "busy"})
    if unknown or not conditions:
        parser.error(f"--conditions takes quiet and/or busy, comma-separated; got {args.conditions!r}")
    generator = loadgen.resolve(args.load_generator)
    cpu_model, _ = machine.cpu()
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    pixels = np.random.default_rng(0).integers(0, 256, 784).tolist()
    tmp = tempfile.TemporaryDirectory(prefix="peer-compare-")
    serve_dir = Path(tmp.name) / "serve"            # the MNIST model alone: others would load too
    serve_dir.mkdir()
    for suffix in (".json", ".pt"):
        (serve_dir / f"mnist{suffix}").symlink_to((args.model_dir / f"mnist{suffix}").resolve())
    servers: dict[str, Server] = {}
    try:
        service = ["-m", "service", "--model-dir", str(serve_dir), "--max-batch-size", "64",
                   "--max-queue-length", "1024", "--log-level", "warning"]
        body = {"model": "mnist", "pixels": pixels, "scale": 255}
        ours_argv = [*service, *shlex.split(args.server_args)]
        servers["ours"] = Server("ours", ours_argv, "/classify", "/health/ready", body,
                                 Path(tmp.name) / "ours.log")
        if args.versus_ours is not None:
            peer_env = dict(kv.split("=", 1) for kv in args.peer_env.split(",") if kv)
            servers["peer"] = Server("ours-variant", [*service, *shlex.split(args.versus_ours)], "/classify",
                                     "/health/ready", body, Path(tmp.name) / "peer.log", peer_env)
        else:
            servers["stack"] = Server("ours-stack-only", ours_argv, "/classify", "/health/ready", body,
                                      Path(tmp.name) / "stack.log", {"AFRNN_FAST_RECURRENCE": "0"})
            servers["peer"] = Server("litserve", [str(BENCH / "litserve_app.py"), "--model-dir",
                                                  str(serve_dir), "--max-batch-size", "64", "--threads", "1"],
                                     "/predict", "/health", {"pixels": pixels, "scale": 255},
                                     Path(tmp.name) / "peer.log")
        print(f"{cpu_model}, {os.cpu_count()} CPUs; load average {load_before:.1f}; "
              f"{len(servers)} servers up after {time.perf_counter() - started:.0f} s; "
              f"load generator {generator}", flush=True)
        results = {}
        for condition in conditions:
            hog = None
            if condition == "busy":
                budget = len(servers) * len(concurrencies) * rounds * (seconds + warmup_s + 3) + 60
                hog = subprocess.Popen([sys.executable, "-c", HOG_SOURCE, str(budget)])
            try:
                results[condition] = compare(servers, concurrencies, rounds, seconds, warmup_s, generator,
                                             condition)
            finally:
                if hog is not None:
                    hog.terminate()
                    hog.wait(10)
    finally:
        for server in servers.values():
            server.stop()
        tmp.cleanup()
    figures: dict = {}
    first = results.get("quiet") or next(iter(results.values()))
    low = f"c{min(concurrencies)}"
    for key, prefix in (("ours", ""), ("stack", "stack_")):
        if key not in servers:
            continue
        for condition, points in results.items():
            for point, row in points.items():
                figures[f"{prefix}{condition}_{point}_vs_peer"] = row[key]["throughput_ratio"]
        figures[f"{prefix}c1_p50_vs_peer"] = first[low][key]["p50_ratio"]
    figures.update(peer="ours " + args.versus_ours + (f" ({args.peer_env})" if args.peer_env else "")
                   if args.versus_ours is not None else "litserve " + version("litserve"))
    figures.update(quick=args.quick, load_generator=generator, points=results, rounds=rounds,
                   seconds_per_run=seconds,
                   server_args=args.server_args,
                   load_average_before=round(load_before, 2),
                   wall_s=round(time.perf_counter() - started, 1), machine=machine.describe())
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
