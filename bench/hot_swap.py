"""Hot swap under load: new model versions loaded and switched to while clients classify, then the
memory of many load/unload cycles.

    python bench/hot_swap.py --quick            # < 45 s: 4 s steady, 10 swaps 0.3 s apart, 15 cycles
    python bench/hot_swap.py                    # 15 s steady, 10 swaps 1 s apart, 50 cycles
    python bench/hot_swap.py --clients 32 --route v2

The server is ``python -m service`` with ``--model-control explicit`` (and an admin key, which the
repository routes need as ``X-API-Key``) on a temporary model dir that holds ``mnist/1/`` (copies of the
shipped ``checkpoints/mnist.json`` and ``mnist.pt``); one torch thread, max queue length 1024. The load
is ``--clients`` (default 16) closed-loop connections of wrk with ``bench/loadgen.py``'s script, each
posting the first image of the shipped MNIST sample to ``/classify`` (``--route v2``: to
``/v2/models/mnist/infer`` with binary tensors, as ``bench/v2_vs_json.py`` builds it).

1. **Steady**: ``loadgen.closed_loop`` for ``--steady-s`` seconds: requests/s, p50, p99.
2. **Swaps**: wrk runs until stopped (SIGINT, after which it prints its figures) while this process
   adds ``--versions`` new versions one after the other (``mnist/1`` copied to a hidden folder, then
   renamed to ``mnist/2`` … ``mnist/11``, so that a load never reads half a folder), each followed by
   ``POST /v2/repository/models/mnist/load`` (which loads and warms the new version beside the serving
   one and then switches), ``--swap-interval-s`` apart; then the serving version's artifact is
   replaced by one with changed weights (a parameter moved by 1e-3, saved with ``torch.jit.save``; its
   manifest's SHA-256, size and version string rewritten) and loaded again in place. Each load must
   answer 200 with the new version serving. The window ends one second after the last load.
   Failures: the clients' non-2xx answers and transport errors (wrk), and the server's own count of
   non-200 answers on the route over the phase (its ``/metrics``).
3. **Memory**: the older versions' folders are removed and the name loaded again (they retire); once
   they are freed, the server's resident memory (``VmRSS`` of ``/proc/<pid>/status``) is read, then
   ``--cycles`` times unload + load, then (after the retiring versions are freed) read again. Retired
   versions are freed asynchronously, after their batchers drain: the reads wait until the RSS has
   settled (two reads 0.5 s apart within 1 %, at most 10 s).

Figures (the last output line is one JSON object): ``steady`` and ``swaps`` (loadgen rows),
``p99_swaps_vs_steady``, ``failed_requests`` (clients' errors + server non-200 during the swaps),
``loads`` (each load's seconds and answer), ``rss_mb_before`` / ``rss_mb_after`` /
``rss_growth`` (fraction) and ``rss_mb_trace`` (after each cycle), ``machine`` (``bench/machine.py``).

Goals: 0 failed requests; p99 during the swaps ≤ 2 × steady; RSS after the cycles ≤ 1.1 × before.
"""

import argparse
import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
REPO_ROOT = BENCH.parent
sys.path.insert(0, str(REPO_ROOT))
sys.path.insert(0, str(BENCH))

import loadgen  # noqa: E402, I001
import machine  # noqa: E402
from peer_compare import Server  # noqa: E402
from v2_vs_json import bodies  # noqa: E402
from artifact.samples import load_sample  # noqa: E402

ROUTES = {"classify": ("/classify", "classify"), "v2": ("/v2/models/mnist/infer", "v2_binary")}
METRIC_ROUTES = {"classify": "/classify", "v2": "/v2/models/{name}/infer"}


class WrkUntilStopped:
    """wrk with ``bench/loadgen.py``'s script, running until ``stop()`` (SIGINT: wrk ends its window
    there and prints its figures)."""

    def __init__(self, url: str, body: bytes, headers: dict[str, str], clients: int, folder: Path,
                 timeout_s: float = 60.0):
        script = folder / "wrk.lua"
        anchor = 'wrk.headers["Content-Type"] = "application/json"\n'
        extra = "".join(f'wrk.headers["{key}"] = "{value}"\n' for key, value in headers.items())
        script.write_text(loadgen.WRK_SCRIPT.replace(anchor, anchor + extra))
        body_path = folder / "body"
        body_path.write_bytes(body)
        self.proc = subprocess.Popen(
            ["wrk", "-t1", f"-c{clients}", "-d3600s", f"--timeout={int(timeout_s)}s", "-s", str(script), url],
            env={**os.environ, "LOADGEN_BODY": str(body_path)}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True)

    def stop(self) -> dict:
        self.proc.send_signal(signal.SIGINT)
        stdout, stderr = self.proc.communicate(timeout=90)
        line = next((x for x in stdout.splitlines() if x.startswith("LOADGEN ")), None)
        if line is None:
            raise RuntimeError(f"wrk printed no figures ({self.proc.returncode}): {stdout[-500:]} "
                               f"{stderr[-500:]}")
        f = json.loads(line.removeprefix("LOADGEN "))
        window = f["duration_us"] / 1e6
        kinds = {k: f[k] for k in ("connect", "read", "write", "status", "timeout") if f[k]}
        return {"requests": f["requests"] - f["status"], "errors": sum(kinds.values()), "error_kinds": kinds,
                "per_s": (f["requests"] - f["status"]) / window, "window_s": window,
                "p50_ms": f["p50_us"] / 1000, "p99_ms": f["p99_us"] / 1000}


def answers_by_status(url: str, route: str) -> dict[str, float]:
    """The server's count of answered POST requests on ``route``, by status (its ``/metrics``)."""
    from prometheus_client.parser import text_string_to_metric_families

    counts: dict[str, float] = {}
    for family in text_string_to_metric_families(httpx.get(url + "/metrics", timeout=10).text):
        for s in family.samples:
            if (s.name == "afrnn_http_requests_total" and s.labels.get("route") == route
                    and s.labels.get("method") == "POST"):
                counts[s.labels["status"]] = counts.get(s.labels["status"], 0) + s.value
    return counts


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


def settled_rss_mb(pid: int, limit_s: float = 10.0) -> float:
    """The RSS once two reads 0.5 s apart agree within 1 % (retiring versions are freed after their
    drain), or the last read after ``limit_s``."""
    deadline = time.monotonic() + limit_s
    last = rss_mb(pid)
    while True:
        time.sleep(0.5)
        now = rss_mb(pid)
        if abs(now - last) <= 0.01 * last or time.monotonic() > deadline:
            return now
        last = now


def add_version(model_dir: Path, source: Path, version: int) -> None:
    """``source`` copied to ``mnist/<version>`` through a hidden folder (a load never sees it half
    written: hidden and non-numeric folders are not versions)."""
    hidden = model_dir / "mnist" / f".incoming-{version}"
    shutil.copytree(source, hidden)
    hidden.rename(model_dir / "mnist" / str(version))


def change_artifact(folder: Path) -> str:
    """Replace ``folder``'s mnist.pt by the same module with one parameter moved by 1e-3 and rewrite
    its manifest (SHA-256, size, version string); returns the new version string."""
    import torch

    from artifact.export import sha256_of

    module = torch.jit.load(str(folder / "mnist.pt"))
    name, parameter = list(module.named_parameters())[-1]
    with torch.no_grad():
        parameter.add_(1e-3)
    staged = folder / ".mnist.pt.new"
    torch.jit.save(module, str(staged))
    manifest = json.loads((folder / "mnist.json").read_text())
    manifest["version"] = manifest["version"] + "-reweighted"
    manifest["artifact"].update(sha256=sha256_of(staged), bytes=staged.stat().st_size)
    staged.replace(folder / "mnist.pt")
    (folder / ".mnist.json.new").write_text(json.dumps(manifest, indent=1))
    (folder / ".mnist.json.new").replace(folder / "mnist.json")
    return manifest["version"]


def repository(url: str, key: str, action: str) -> tuple[float, int, dict]:
    """(seconds, status, answer) of ``POST /v2/repository/models/mnist/<action>``."""
    started = time.perf_counter()
    response = httpx.post(f"{url}/v2/repository/models/mnist/{action}", headers={"X-API-Key": key},
                          timeout=120)
    return time.perf_counter() - started, response.status_code, response.json()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="4 s steady, swaps 0.3 s apart, 15 cycles (< 45 s)")
    parser.add_argument("--clients", type=int, default=16, help="closed-loop connections (default 16)")
    parser.add_argument("--route", choices=sorted(ROUTES), default="classify",
                        help="classify: POST /classify (default); v2: the V2 infer route, binary tensors")
    parser.add_argument("--steady-s", type=float, help="the steady window (default 15; quick 4)")
    parser.add_argument("--versions", type=int, default=10,
                        help="new versions loaded under load (default 10)")
    parser.add_argument("--swap-interval-s", type=float, help="pause between loads (default 1; quick 0.3)")
    parser.add_argument("--cycles", type=int,
                        help="unload + load cycles for the memory (default 50; quick 15)")
    parser.add_argument("--model-dir", type=Path, default=REPO_ROOT / "checkpoints")
    args = parser.parse_args()
    steady_s = args.steady_s or (4.0 if args.quick else 15.0)
    interval = args.swap_interval_s if args.swap_interval_s is not None else (0.3 if args.quick else 1.0)
    cycles = args.cycles or (15 if args.quick else 50)
    generator = loadgen.resolve("wrk")
    started, load_before = time.perf_counter(), os.getloadavg()[0]
    path, arm = ROUTES[args.route]
    body, headers = bodies(load_sample("mnist").pixels[0])[arm]
    key = secrets.token_urlsafe(16)

    with tempfile.TemporaryDirectory(prefix="hot-swap-") as tmp:
        model_dir = Path(tmp) / "models"
        first = model_dir / "mnist" / "1"
        first.mkdir(parents=True)
        for suffix in (".json", ".pt"):
            shutil.copy2(args.model_dir / f"mnist{suffix}", first / f"mnist{suffix}")
        argv = ["-m", "service", "--model-dir", str(model_dir), "--model-control", "explicit",
                "--max-queue-length", "1024", "--log-level", "warning"]
        classify = json.loads(bodies(load_sample("mnist").pixels[0])["classify"][0])
        server = Server("service", argv, "/classify", "/health/ready", classify, Path(tmp) / "service.log",
                        {"AFRNN_ADMIN_KEY": key})
        url, pid = server.url, server.proc.pid
        try:
            rss_start = rss_mb(pid)
            print(f"{machine.cpu()[0]}, {os.cpu_count()} CPUs; load average {load_before:.1f}; "
                  f"{args.clients} clients on {path}; server RSS {rss_start:.0f} MB", flush=True)
            steady = loadgen.closed_loop(url + path, body, args.clients, steady_s, 1.0, generator=generator,
                                         server_pid=pid) if not headers else None
            if steady is None:                      # the binary route's header: the same wrk, stopped
                load = WrkUntilStopped(url + path, body, headers, args.clients, Path(tmp))
                time.sleep(1.0 + steady_s)
                steady = load.stop()
            print(f"steady: {steady['per_s']:.1f} req/s, p50 {steady['p50_ms']:.2f} ms, p99 "
                  f"{steady['p99_ms']:.2f} ms, errors {steady['errors']}", flush=True)

            counts_before = answers_by_status(url, METRIC_ROUTES[args.route])
            load = WrkUntilStopped(url + path, body, headers, args.clients, Path(tmp))
            loads: list[dict] = []
            try:
                time.sleep(1.0)
                swap_started = time.perf_counter()
                for version in range(2, args.versions + 2):
                    add_version(model_dir, first, version)
                    seconds, status, answer = repository(url, key, "load")
                    loads.append({"version": version, "seconds": round(seconds, 3), "status": status,
                                  "loaded": answer.get("loaded"), "serving": answer.get("serving_version")})
                    time.sleep(interval)
                newest = args.versions + 1
                changed = change_artifact(model_dir / "mnist" / str(newest))
                seconds, status, answer = repository(url, key, "load")
                loads.append({"version": newest, "changed_artifact": True, "seconds": round(seconds, 3),
                              "status": status, "loaded": answer.get("loaded"),
                              "retired": answer.get("retired"), "serving": answer.get("serving_version")})
                swap_s = time.perf_counter() - swap_started
                time.sleep(1.0)
            finally:
                swaps = load.stop()
            counts_after = answers_by_status(url, METRIC_ROUTES[args.route])
            served = httpx.post(url + "/classify", json=classify, timeout=30).json()["version"]
            rss_swapped = settled_rss_mb(pid)
            server_non_200 = {status: int(n - counts_before.get(status, 0))
                              for status, n in counts_after.items()
                              if status != "200" and n > counts_before.get(status, 0)}
            bad_loads = [x for x in loads if x["status"] != 200 or x["serving"] != str(x["version"])
                         or x["loaded"] != [str(x["version"])]]
            print(f"swaps: {len(loads)} loads in {swap_s:.1f} s (median "
                  f"{sorted(x['seconds'] for x in loads)[len(loads) // 2]:.2f} s each, {len(bad_loads)} "
                  f"not as expected); {swaps['per_s']:.1f} req/s, p50 {swaps['p50_ms']:.2f} ms, p99 "
                  f"{swaps['p99_ms']:.2f} ms, client errors {swaps['errors']}, server non-200 "
                  f"{server_non_200}; /classify answers version {served!r}; RSS {rss_swapped:.0f} MB",
                  flush=True)

            for version in range(1, args.versions + 1):
                shutil.rmtree(model_dir / "mnist" / str(version))
            seconds, status, answer = repository(url, key, "load")
            if status != 200 or answer.get("retired") != [str(v) for v in range(1, args.versions + 1)]:
                raise RuntimeError(f"retiring the older versions: {status} {answer}")
            rss_before = settled_rss_mb(pid)
            trace, cycle_failures = [], 0
            for _ in range(cycles):
                _, status_unload, _ = repository(url, key, "unload")
                _, status_load, answer = repository(url, key, "load")
                cycle_failures += (status_unload != 200) + (status_load != 200
                                                            or answer.get("serving_version") != str(newest))
                trace.append(round(rss_mb(pid), 1))
            rss_after = settled_rss_mb(pid)
            print(f"memory: RSS {rss_before:.1f} MB before {cycles} unload + load cycles, {rss_after:.1f} MB "
                  f"after ({rss_after / rss_before - 1:+.1%}); {cycle_failures} cycles failed", flush=True)
        finally:
            server.stop()

    failed = swaps["errors"] + sum(server_non_200.values())
    figures = {
        "failed_requests": failed,
        "p99_swaps_vs_steady": round(swaps["p99_ms"] / steady["p99_ms"], 3),
        "rss_growth": round(rss_after / rss_before - 1, 4),
        "goals_met": {"no_failed_requests": failed == 0,
                      "p99_within_2x": swaps["p99_ms"] <= 2 * steady["p99_ms"],
                      "rss_within_10_percent": rss_after <= 1.1 * rss_before},
        "steady": {k: round(v, 3) if isinstance(v, float) else v for k, v in steady.items()},
        "swaps": {k: round(v, 3) if isinstance(v, float) else v for k, v in swaps.items()},
        "server_non_200_during_swaps": server_non_200, "loads": loads,
        "loads_not_as_expected": len(bad_loads),
        "swap_phase_s": round(swap_s, 2), "versions": args.versions, "swap_interval_s": interval,
        "served_version_after": served, "changed_version": changed,
        "changed_version_serves": served == changed,
        "rss_mb_start": round(rss_start, 1), "rss_mb_after_swaps": round(rss_swapped, 1),
        "rss_mb_before": round(rss_before, 1), "rss_mb_after": round(rss_after, 1), "rss_mb_trace": trace,
        "cycles": cycles, "cycle_failures": cycle_failures,
        "clients": args.clients, "route": path, "steady_s": steady_s, "load_generator": generator,
        "quick": args.quick, "load_average_before": round(load_before, 2),
        "wall_s": round(time.perf_counter() - started, 1), "machine": machine.describe(),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
