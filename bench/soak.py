"""Soak and overload test of a running service: mixed load, a burst, recovery.

Phases:

0. **isolation** — ``/classify`` p50 over 30 sequential requests on the idle service, then again while
   16 worst-case heavy requests run (8 × ``/pendulum/predict`` with 16 states, 290 steps and the
   physics reference; 8 × stability reports of a caller's sample): the goal is p50 within 2× idle,
   and no heavy request answered later than ``request_timeout_s`` (+1 s of transport);
1. **mixed load** — ``--clients`` (64) concurrent clients for ``--duration`` (60 s), each looping over a
   weighted mix: ``/classify`` (1 image), ``/pendulum/predict`` without and with the physics reference,
   ``/models/{name}/stability`` (the cached default report, and a caller's sample, which is computed),
   and ``/models``;
2. **burst** — ``--burst`` (1000) ``/classify`` requests sent at once on fresh connections, while a
   probe polls ``/health/live`` every 20 ms on the main port, and another on the health port
   (``service.health_port``; a service this script starts gets ``--port`` + 1, ``--health-port``
   names a running one's) — the liveness goal is measured where the orchestrator probes, the health
   port when there is one;
3. **recovery** — ``/classify`` until it answers 200 again, then 20 more that must all be 200.

Before phase 0 a warm-up (each request kind 3 times, then a quarter-size burst) makes the allocations
that first requests make for good; the RSS baseline is taken after it.

RSS is also sampled every ``--rss-every-s`` seconds through the mixed phase, so that a leak (a steady
climb) can be told from caches and arenas filling up (a plateau), and once more after ``--settle-s``
seconds without requests both after the warm-up and at the end: the growth between the two idle
samples is what the load left behind, and the growth to the end sample (taken right after recovery)
what it holds while it is still serving.

Reported: counts per status, p50/p99 latency per request kind, liveness p99 during the burst, median
time to a 503 in the burst (at the burst's client, whose single event loop sends and reads the whole
burst and so adds its own queueing; at a *canary*, a process of its own that sends the same request
every 10 ms, each on a fresh connection in a thread of its own, while the burst runs, as clients
arriving during the overload would; and in the server, from its latency histogram in ``/metrics``
between two scrapes: from the request's first byte in the app to the 503), whether every 503 carried
Retry-After, the server's RSS after warm-up
and at the end, and the goals (0 × 5xx, Retry-After on every 503, RSS growth ≤ 10 %,
liveness p99 < 100 ms and median 503 < 50 ms during the burst, /classify p50 under 16 heavy
requests within 2× idle).
The last line of output is one JSON object with every figure.

    python bench/soak.py                         # starts the service on checkpoints/ (port 8790)
    python bench/soak.py --quick                 # 16 clients × 10 s, burst of 300: < 45 s
    python bench/soak.py --url http://127.0.0.1:8000 --pid 1234 --api-key "$AFRNN_API_KEY"

With ``--url`` the server is not started; ``--pid`` (its process id) enables the RSS figures.
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import random
import re
import shlex
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

sys.path.insert(0, str(Path(__file__).resolve().parent))
import machine  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def rss_bytes(pid: int | None) -> int | None:
    if pid is None:
        return None
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


Mix = list[tuple[float, str, str, str, dict | None]]


def requests_mix(models: dict[str, str], rng: random.Random) -> Mix:
    """(weight, kind, method, path, json body) of the mixed phase."""
    classifier, pendulum = models.get("classifier"), models.get("pendulum")
    mix: list[tuple[float, str, str, str, dict | None]] = [(0.10, "models", "GET", "/models", None)]
    if classifier:
        image = [rng.randrange(256) for _ in range(784)]
        mix += [(0.50, "classify", "POST", "/classify", {"model": classifier, "pixels": image, "scale": 255}),
                (0.05, "stability_default", "POST", f"/models/{classifier}/stability",
                 {"sections": ["spectrum"]}),
                (0.05, "stability_sample", "POST", f"/models/{classifier}/stability",
                 {"pixels": image, "scale": 255, "sections": ["spectrum", "gradients"]})]
    if pendulum:
        states = [{"theta1": 10 * i, "theta2": -5.0, "omega1": 0.0, "omega2": 3.0} for i in range(4)]
        mix += [(0.20, "pendulum", "POST", "/pendulum/predict",
                 {"model": pendulum, "initial_states": states}),
                (0.10, "pendulum_reference", "POST", "/pendulum/predict",
                 {"model": pendulum, "initial_states": states, "include_reference": True})]
    return mix


class Tally:
    def __init__(self) -> None:
        self.status: dict[str, int] = {}
        self.latency: dict[str, list[float]] = {}
        self.missing_retry_after = 0
        self.errors: dict[str, int] = {}

    def add(self, kind: str, status: int | str, seconds: float, headers=None) -> None:
        key = str(status)
        self.status[key] = self.status.get(key, 0) + 1
        self.latency.setdefault(kind, []).append(seconds)
        if status == 503 and (headers is None or "retry-after" not in headers):
            self.missing_retry_after += 1

    def summary(self) -> dict:
        return {"status": dict(sorted(self.status.items())),
                "latency_ms": {k: {"n": len(v), "p50": round(percentile(v, 50) * 1000, 1),
                                   "p99": round(percentile(v, 99) * 1000, 1)}
                               for k, v in sorted(self.latency.items())},
                "missing_retry_after": self.missing_retry_after}


async def isolation(url: str, headers: dict, models: dict[str, str], n_heavy: int = 16, states_n: int = 16,
                    steps: int = 290) -> dict:
    classify = {"model": models["classifier"], "pixels": [0] * 784, "scale": 255}

    async def classify_p50(ac: httpx.AsyncClient, n: int = 30) -> float:
        times = []
        for _ in range(n):
            started = time.perf_counter()
            r = await ac.post("/classify", json=classify)
            if r.status_code == 200:
                times.append(time.perf_counter() - started)
        return statistics.median(times)

    heavy_bodies = []
    if models.get("pendulum"):
        # degrees spread inside the pendulum models' training range [-90, 90] (outside it the answer
        # is a 422, a cheap refusal rather than a heavy request)
        states = [{"theta1": -75.0 + 150.0 * i / max(1, states_n - 1), "theta2": -20.0, "omega1": 5.0,
                   "omega2": -5.0} for i in range(states_n)]
        heavy_bodies.append(("POST", "/pendulum/predict",
                             {"model": models["pendulum"], "steps": steps, "initial_states": states,
                              "include_reference": True}))
    heavy_bodies.append(("POST", f"/models/{models['classifier']}/stability",
                         {"pixels": [(i * 37) % 256 for i in range(784)], "scale": 255}))
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300,
                                 limits=httpx.Limits(max_connections=64)) as ac:
        idle = await classify_p50(ac)
        heavy_codes: dict[str, int] = {}
        refusals: dict[str, int] = {}
        heavy_times: list[float] = []

        async def heavy(i: int) -> None:
            method, path, body = heavy_bodies[i % len(heavy_bodies)]
            started = time.perf_counter()
            r = await ac.request(method, path, json=body)
            heavy_times.append(time.perf_counter() - started)
            heavy_codes[str(r.status_code)] = heavy_codes.get(str(r.status_code), 0) + 1
            if r.status_code in (503, 504):        # why: the lane's own words, numbers stripped
                reason = re.sub(r"[\d.]+", "#", str(r.json().get("detail", "")))
                refusals[reason] = refusals.get(reason, 0) + 1

        tasks = [asyncio.ensure_future(heavy(i)) for i in range(n_heavy)]
        await asyncio.sleep(0.5)
        loaded = await classify_p50(ac)
        await asyncio.gather(*tasks)
    return {"classify_p50_idle_ms": round(idle * 1000, 1), "classify_p50_heavy_ms": round(loaded * 1000, 1),
            "ratio": round(loaded / idle, 2), "heavy_status": heavy_codes,
            "heavy_max_s": round(max(heavy_times), 2), "heavy_refusals": refusals}


async def warmup(url: str, headers: dict, mix: Mix, classifier: str, burst_n: int) -> None:
    """Every request kind 3 times, then a burst of ``burst_n``: the allocations a first request of each
    kind (and many connections at once) make for good, before the RSS baseline is taken."""
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=300) as ac:
        for _, _, method, path, body in mix:
            for _ in range(3):
                await ac.request(method, path, json=body)
    await burst(url, headers, classifier, burst_n)


async def mixed_load(url: str, headers: dict, mix, clients: int, duration_s: float, tally: Tally,
                     seed: int) -> None:
    weights = [m[0] for m in mix]
    stop = time.perf_counter() + duration_s

    async def client(i: int) -> None:
        rng = random.Random(seed + i)
        async with httpx.AsyncClient(base_url=url, headers=headers, timeout=120) as ac:
            while time.perf_counter() < stop:
                _, kind, method, path, body = rng.choices(mix, weights)[0]
                started = time.perf_counter()
                try:
                    r = await ac.request(method, path, json=body)
                    tally.add(kind, r.status_code, time.perf_counter() - started, r.headers)
                    if r.status_code == 503:
                        await asyncio.sleep(min(float(r.headers.get("retry-after", 1)), 2.0) * rng.random())
                except httpx.TransportError as err:
                    tally.add(kind, type(err).__name__, time.perf_counter() - started)

    await asyncio.gather(*(client(i) for i in range(clients)))


async def raw_request(host: str, port: int, payload: bytes) -> tuple[int | str, float, bool]:
    """(status, seconds to the status line, has Retry-After) of one request on a fresh connection."""
    started = time.perf_counter()
    try:
        reader, writer = await asyncio.open_connection(host, port)
        writer.write(payload)
        await writer.drain()
        head = await reader.readuntil(b"\r\n\r\n")
        elapsed = time.perf_counter() - started
        writer.close()
        status = int(head.split(b" ", 2)[1])
        return status, elapsed, b"\r\nretry-after:" in head.lower()
    except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError) as err:
        return type(err).__name__, time.perf_counter() - started, False


def classify_503_buckets(url: str, headers: dict) -> dict[float, float]:
    """Cumulative bucket counts of the server's own latency histogram for /classify answered 503."""
    text = httpx.get(url + "/metrics", headers=headers, timeout=30).text
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            labels = sample.labels
            if (sample.name == "afrnn_http_request_duration_seconds_bucket"
                    and labels.get("route") == "/classify" and labels.get("status") == "503"):
                bound = float(labels["le"])
                buckets[bound] = buckets.get(bound, 0.0) + sample.value
    return buckets


def histogram_median(before: dict[float, float], after: dict[float, float]) -> float | None:
    """The median of the observations between two scrapes, interpolated within its bucket as
    Prometheus' ``histogram_quantile`` does."""
    bounds = sorted(after)
    counts = [after[b] - before.get(b, 0.0) for b in bounds]
    if not counts or counts[-1] <= 0:
        return None
    rank, lower, below = counts[-1] / 2, 0.0, 0.0
    for bound, cumulative in zip(bounds, counts, strict=True):
        if cumulative >= rank:
            if bound == float("inf"):
                return lower
            return lower + (bound - lower) * (rank - below) / max(cumulative - below, 1e-12)
        lower, below = bound, cumulative
    return None


def _send(host: str, port: int, payload: bytes) -> tuple[int | str, float]:
    """(status or error, seconds to the status line) of ``payload`` on a fresh connection."""
    started = time.perf_counter()
    try:
        with socket.create_connection((host, port), timeout=30) as conn:
            conn.sendall(payload)
            head = conn.recv(64)
        status: int | str = int(head.split(b" ", 2)[1]) if head.startswith(b"HTTP/1.1 ") else "no status"
    except (OSError, ValueError):
        status = "transport error"
    return status, time.perf_counter() - started


def probe_process(key: str, host: str, port: int, payload: bytes, every_s: float, overlap: bool,
                  begin, stop, results) -> None:
    """``payload`` on a fresh connection every ``every_s`` from ``begin`` (None: at once) until ``stop``,
    as a client of its own would send it: one at a time (a liveness probe), or each in a thread of
    its own (``overlap``: a new request every period even while earlier ones wait); puts
    (key, [(status or error, seconds), …])."""
    answers: list[tuple[int | str, float]] = []
    threads: list[threading.Thread] = []
    if begin is not None:
        begin.wait()
    while not stop.is_set():
        if overlap:
            thread = threading.Thread(target=lambda: answers.append(_send(host, port, payload)), daemon=True)
            thread.start()
            threads.append(thread)
        else:
            answers.append(_send(host, port, payload))
        time.sleep(every_s)
    for thread in threads:
        thread.join(35)
    results.put((key, answers))


async def burst(url: str, headers: dict, model: str, n: int, health_port: int | None = None) -> dict:
    host, port = httpx.URL(url).host, httpx.URL(url).port
    body = json.dumps({"model": model, "pixels": [random.randrange(256) for _ in range(784)],
                       "scale": 255}).encode()
    extra = "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    payload = (f"POST /classify HTTP/1.1\r\nhost: {host}\r\ncontent-type: application/json\r\n{extra}"
               f"content-length: {len(body)}\r\nconnection: close\r\n\r\n").encode() + body
    # The probes run in processes of their own, as an orchestrator's do: probed from this process, a
    # probe would also wait behind the burst's thousand connections in *this* event loop. So does the
    # canary: a client of its own that sends the burst's request every 10 ms while the burst runs (from
    # its start to its last answer, so that its own admitted requests add no work outside it), and so
    # measures the 503 that clients arriving during the overload get.
    live = f"GET /health/live HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n".encode()
    context = multiprocessing.get_context("spawn")
    stop, results_queue = context.Event(), context.Queue()
    burst_begins, burst_ends = context.Event(), context.Event()
    probes = {"main": (port, live, 0.02, False, None, stop),
              "canary": (port, payload, 0.01, True, burst_begins, burst_ends)}
    if health_port:
        probes["health"] = (health_port, live, 0.02, False, None, stop)
    probers = [context.Process(target=probe_process, args=(key, host, *probe, results_queue), daemon=True)
               for key, probe in probes.items()]
    for prober in probers:
        prober.start()
    await asyncio.sleep(1.0)                          # the probe processes start (spawn imports torch-free)
    before = classify_503_buckets(url, headers)
    burst_begins.set()
    results = await asyncio.gather(*(raw_request(host, port, payload) for _ in range(n)))
    burst_ends.set()
    server_median = histogram_median(before, classify_503_buckets(url, headers))
    stop.set()
    answers: dict[str, list[tuple[int | str, float]]] = dict(results_queue.get(timeout=30) for _ in probers)
    for prober in probers:
        prober.join(10)
    # liveness: the time to a 200 (anything else counts as never answered)
    live_s = {key: [s if status == 200 else float("inf") for status, s in answers[key]]
              for key in ("main", "health") if key in answers}
    canary = answers["canary"]
    canary_503 = [s for status, s in canary if status == 503]
    canary_status = dict(Counter(str(status) for status, _ in canary))
    tally = Tally()
    for status, seconds, retry_after in results:
        tally.add("burst_classify", status, seconds, {"retry-after": "x"} if retry_after else {})
    t503 = [s for status, s, _ in results if status == 503]
    def p99_ms(values: list[float]) -> float | None:
        return round(percentile(values, 99) * 1000, 1) if values else None

    return {**tally.summary(), "liveness_p99_ms": p99_ms(live_s["main"]),
            "liveness_probes": len(live_s["main"]),
            "health_port_liveness_p99_ms": p99_ms(live_s["health"]) if health_port else None,
            "health_port_liveness_probes": len(live_s["health"]) if health_port else 0,
            "median_503_ms": round(statistics.median(t503) * 1000, 1) if t503 else None,
            "canary_median_503_ms": round(statistics.median(canary_503) * 1000, 1) if canary_503 else None,
            "canary_p99_503_ms": p99_ms(canary_503), "canary_status": canary_status,
            "server_median_503_ms": round(server_median * 1000, 2) if server_median is not None else None,
            "n_503": len(t503), "_tally": tally}


async def recovery(url: str, headers: dict, model: str) -> dict:
    body = {"model": model, "pixels": [0] * 784, "scale": 255}
    started = time.perf_counter()
    async with httpx.AsyncClient(base_url=url, headers=headers, timeout=60) as ac:
        while time.perf_counter() - started < 120:
            if (await ac.post("/classify", json=body)).status_code == 200:
                break
            await asyncio.sleep(0.1)
        recovered_s = time.perf_counter() - started
        codes = [(await ac.post("/classify", json=body)).status_code for _ in range(20)]
    return {"recovered_s": round(recovered_s, 2), "after_recovery_ok": codes.count(200),
            "after_recovery_n": 20}


def start_server(model_dir: Path, port: int, health_port: int | None,
                 server_args: list[str]) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    extra = (["--health-port", str(health_port)] if health_port else []) + server_args
    proc = subprocess.Popen([sys.executable, "-m", "service", "--model-dir", str(model_dir), "--port",
                             str(port), "--log-level", "warning", *extra], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health/ready", timeout=2).status_code == 200:
                return proc
        except httpx.TransportError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"service exited with {proc.returncode}")
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("service not ready within 300 s")


async def main_async(args) -> dict:
    headers = {"X-API-Key": args.api_key} if args.api_key else {}
    listed = httpx.get(args.url + "/models", headers=headers, timeout=30).json()["models"]
    ready = [m for m in listed if m["status"] == "ready"]
    models = {"classifier": next((m["name"] for m in ready if m["name"] == args.classifier), None),
              "pendulum": next((m["name"] for m in ready if m["task"] == "pendulum"), None)}
    if models["classifier"] is None:
        raise SystemExit(f"no ready MNIST classifier named {args.classifier!r} among {listed}")
    rng = random.Random(args.seed)
    mix = requests_mix(models, rng)
    tally = Tally()
    rss_samples: dict[str, int | None] = {"start": rss_bytes(args.pid)}
    await warmup(args.url, headers, mix, models["classifier"], max(1, args.burst // 4))
    rss_samples["after_warmup"] = rss_bytes(args.pid)
    await asyncio.sleep(args.settle_s)
    rss_samples["after_warmup_idle"] = rss_bytes(args.pid)
    isolated = None
    if args.heavy:
        isolated = await isolation(args.url, headers, models, args.heavy, args.heavy_states, args.heavy_steps)
    t0 = time.perf_counter()
    rss_series: list[tuple[float, int | None]] = []

    async def sample_rss() -> None:            # RSS over the mixed phase: a leak grows, a cache plateaus
        while True:
            rss_series.append((round(time.perf_counter() - t0, 1), rss_bytes(args.pid)))
            await asyncio.sleep(args.rss_every_s)

    sampler = asyncio.ensure_future(sample_rss()) if args.pid else None
    await mixed_load(args.url, headers, mix, args.clients, args.duration, tally, args.seed)
    if sampler is not None:
        sampler.cancel()
    mixed_s = time.perf_counter() - t0
    rss_samples["after_mixed"] = rss_bytes(args.pid)
    burst_result = await burst(args.url, headers, models["classifier"], args.burst, args.health_port)
    burst_tally = burst_result.pop("_tally")
    rss_samples["after_burst"] = rss_bytes(args.pid)
    recovered = await recovery(args.url, headers, models["classifier"])
    rss_samples["end"] = rss_bytes(args.pid)
    await asyncio.sleep(args.settle_s)
    rss_samples["end_idle"] = rss_bytes(args.pid)
    mixed = tally.summary()
    all_status = dict(mixed["status"])
    for k, v in burst_tally.status.items():
        all_status[k] = all_status.get(k, 0) + v
    n_5xx = sum(v for k, v in all_status.items() if k.isdigit() and int(k) >= 500 and int(k) != 503)
    n_transport = sum(v for k, v in all_status.items() if not k.isdigit())
    warm, end = rss_samples.get("after_warmup"), rss_samples.get("end")
    growth = round((end - warm) / warm * 100, 2) if warm and end else None
    warm_idle, end_idle = rss_samples.get("after_warmup_idle"), rss_samples.get("end_idle")
    growth_idle = round((end_idle - warm_idle) / warm_idle * 100, 2) if warm_idle and end_idle else None
    missing = mixed["missing_retry_after"] + burst_result["missing_retry_after"]
    probe_p99 = burst_result["health_port_liveness_p99_ms" if args.health_port else "liveness_p99_ms"]
    goals = {
        "no_5xx_besides_503": n_5xx == 0,
        "retry_after_on_every_503": missing == 0,
        "rss_growth_le_10pct": growth is not None and growth <= 10.0,
        "rss_growth_idle_le_10pct": growth_idle is not None and growth_idle <= 10.0,
        # with a health port, the orchestrator probes that port: the goal is measured there
        "liveness_p99_lt_100ms": probe_p99 is not None and probe_p99 < 100,
        # in the server (its histogram: first byte in the app → 503), and at the client (adds the
        # client's own event loop, and the server's accept and HTTP parse, on the same cores)
        "median_503_lt_50ms_server": burst_result["server_median_503_ms"] is not None
        and burst_result["server_median_503_ms"] < 50,
        "median_503_lt_50ms_client": burst_result["median_503_ms"] is not None
        and burst_result["median_503_ms"] < 50,
        # a client of its own that arrives during the burst (the canary process)
        "median_503_lt_50ms_canary": burst_result["canary_median_503_ms"] is not None
        and burst_result["canary_median_503_ms"] < 50,
        "recovered": recovered["after_recovery_ok"] == recovered["after_recovery_n"],
    }
    if isolated is not None:
        goals["classify_p50_under_heavy_le_2x_idle"] = isolated["ratio"] <= 2.0
        goals["heavy_within_request_timeout"] = isolated["heavy_max_s"] <= args.request_timeout_s + 1.0
        goals["heavy_requests_valid"] = "422" not in isolated["heavy_status"]   # or they test nothing
    return {"bench": "soak", "url": args.url, "server_args": args.server_args,
            "clients": args.clients, "duration_s": args.duration,
            "isolation": isolated, "mixed_elapsed_s": round(mixed_s, 1), "mixed": mixed,
            "burst_n": args.burst,
            "burst": burst_result, "recovery": recovered, "status_total": dict(sorted(all_status.items())),
            "n_5xx": n_5xx, "n_transport_errors": n_transport, "rss_bytes": rss_samples,
            "rss_mixed_series": rss_series, "health_port": args.health_port,
            "rss_growth_pct_after_warmup": growth, "rss_growth_pct_idle": growth_idle,
            "goals": goals, "cpu": cpu_model(), "cores": os.cpu_count()}


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url", help="a running service (default: start one on --model-dir)")
    parser.add_argument("--pid", type=int, help="the running service's process id (for RSS)")
    parser.add_argument("--api-key", default=os.environ.get("AFRNN_API_KEY"))
    parser.add_argument("--model-dir", type=Path, default=REPO_ROOT / "checkpoints")
    parser.add_argument("--port", type=int, default=8790)
    parser.add_argument("--classifier", default="mnist", help="the MNIST classifier's name")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration", type=float, default=60.0)
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--request-timeout-s", type=float, default=30.0,
                        help="the service's request_timeout_s (for the heavy-request goal)")
    parser.add_argument("--heavy", type=int, default=16, help="worst-case heavy requests of the isolation "
                                                                 "phase (0: skip the phase)")
    parser.add_argument("--heavy-states", type=int, default=16)
    parser.add_argument("--heavy-steps", type=int, default=290)
    parser.add_argument("--health-port", type=int, default=None,
                        help="the service's health port (service.health_port); a started service gets "
                             "--port + 1 unless --no-health-port")
    parser.add_argument("--no-health-port", action="store_true",
                        help="start the service without a health port (liveness on the main port only)")
    parser.add_argument("--rss-every-s", type=float, default=5.0, help="RSS sampling period (mixed phase)")
    parser.add_argument("--settle-s", type=float, default=3.0,
                        help="seconds without requests before the idle RSS samples")
    parser.add_argument("--server-args", default="", metavar="ARGS",
                        help='extra flags of the service it starts (without --url), '
                             'e.g. "--max-batch-size 64"')
    parser.add_argument("--quick", action="store_true",
                        help="16 clients × 10 s, a burst of 300, 4 heavy requests of 4 states × 29 steps")
    args = parser.parse_args(argv)
    if args.quick:
        args.clients, args.duration, args.burst = 16, 10.0, 300
        args.heavy, args.heavy_states, args.heavy_steps = 4, 4, 29
    server = None
    if args.url is None:
        if args.health_port is None and not args.no_health_port:
            args.health_port = args.port + 1
        server = start_server(args.model_dir, args.port, args.health_port, shlex.split(args.server_args))
        args.url, args.pid = f"http://127.0.0.1:{args.port}", server.pid
    try:
        result = asyncio.run(main_async(args))
    finally:
        if server is not None:
            server.terminate()
            server.wait(60)
    print(f"isolation: {result['isolation']}")
    print(f"mixed phase: {result['mixed']['status']}")
    for kind, lat in result["mixed"]["latency_ms"].items():
        print(f"  {kind:20s} n={lat['n']:6d}  p50 {lat['p50']:8.1f} ms  p99 {lat['p99']:8.1f} ms")
    b = result["burst"]
    print(f"burst of {args.burst}: {b['status']}; median 503 {b['median_503_ms']} ms at the burst's client, "
          f"{b['canary_median_503_ms']} ms at a client of its own arriving during the burst "
          f"({b['canary_status']}), {b['server_median_503_ms']} ms in the server; liveness p99 "
          f"{b['liveness_p99_ms']} ms over {b['liveness_probes']} probes (main port), "
          f"{b['health_port_liveness_p99_ms']} ms over {b['health_port_liveness_probes']} (health port)")
    print("RSS over the mixed phase (s, MiB): " + ", ".join(
        f"{t:g}: {r / 2**20:.0f}" for t, r in result["rss_mixed_series"] if r))
    print(f"recovery: {result['recovery']}; RSS growth after warm-up "
          f"{result['rss_growth_pct_after_warmup']} % (right after recovery), "
          f"{result['rss_growth_pct_idle']} % (idle to idle)")
    print(f"goals: {result['goals']}")
    result["machine"] = machine.describe()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
