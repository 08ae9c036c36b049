"""The closed-loop load generator of the service benchmarks (``service_load.py``, ``peer_compare.py``).

``c`` connections each post one fixed body and send the next request as soon as the answer came.
Two generators, with the same figures:

* ``wrk`` (Debian's ``wrk``; CI installs it): one connection thread in C, a few µs of CPU per request,
  so on a small machine the load generator does not take the CPU the server needs. The request is
  built by a Lua script from a body file; the script's ``done`` hook prints the figures as JSON.
* ``httpx``: one ``httpx.AsyncClient`` per connection in this process: the fallback when ``wrk`` is not
  installed. It costs about as much CPU per request as the server it measures (record which ran).

``generator="auto"`` takes wrk when it is on PATH. Each run is a warm-up (``warmup_s``, not measured;
wrk: a separate invocation of at least 1 s, skipped under 0.5 s) and then the measured window; with
wrk, each invocation is followed by waiting until the server has finished what it left in flight.
Throughput counts the answers completed inside the window (wrk's window is whole seconds:
``wrk_seconds``); latency is each answer's round trip; ``errors`` counts non-2xx answers and
transport failures.

Server-side figures come from outside the server: its CPU time (user + system, summed over its
process group, so that a peer's worker processes count) from ``/proc/<pid>/stat`` before and after the
window, and, when the server is ours, its ``/metrics`` (requests answered, batch sizes and the
forward passes' wall time). Our service answers HTTP on its main thread (the event loop: parsing,
validation, decoding, admission, encoding, metrics) and runs each batch on a model thread, so the main
thread's CPU per request (``loop_cpu_ms_per_request``, from ``/proc/<pid>/task/<pid>/stat``) is the
stack's own per-request cost, what the server spends beside the forward passes. (The process's CPU
minus the forward's wall time says the same on an idle machine, and less reliably on a busy one, where
a forward's wall time includes the time it waited for a core.)

    python bench/loadgen.py http://127.0.0.1:8000/classify --body-file body.json --clients 64 --seconds 4
"""

import asyncio
import json
import os
import resource
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np
from prometheus_client.parser import text_string_to_metric_families

GENERATORS = ("auto", "wrk", "httpx")

# wrk's Lua hooks: the request from a body file, and the figures as one JSON line at the end.
WRK_SCRIPT = """
local f = assert(io.open(os.getenv("LOADGEN_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'LOADGEN {"requests": %d, "duration_us": %d, "connect": %d, "read": %d, "write": %d, ' ..
    '"status": %d, "timeout": %d, "p50_us": %d, "p99_us": %d, "mean_us": %.1f}\\n',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.mean))
end
"""


def resolve(generator: str) -> str:
    """``auto`` → ``wrk`` when installed, else ``httpx``; an explicit ``wrk`` must be installed."""
    if generator == "auto":
        return "wrk" if shutil.which("wrk") else "httpx"
    if generator == "wrk" and not shutil.which("wrk"):
        raise RuntimeError("--load-generator wrk: wrk is not installed (apt-get install wrk)")
    return generator


def process_group_cpu_s(pid: int) -> float:
    """User + system CPU seconds of every live process in ``pid``'s process group (Linux /proc)."""
    def stat(p: str) -> list[str]:
        return Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()

    try:
        group = stat(str(pid))[2]
    except OSError:
        return float("nan")
    total = 0
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = stat(entry)
            except OSError:                 # exited meanwhile
                continue
            if fields[2] == group:
                total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def thread_cpu_s(pid: int, tid: int | None = None) -> float:
    """User + system CPU seconds of one thread (default: the main thread, ``tid == pid``)."""
    try:
        fields = Path(f"/proc/{pid}/task/{tid or pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


# the sample of /metrics that feeds each counter, and a filter on its labels
_COUNTERS = {
    "afrnn_http_requests_total": ("ok_requests", lambda labels: labels.get("status") == "200"
                                  and labels.get("method") == "POST"),
    "afrnn_batch_size_count": ("batches", None),
    "afrnn_batch_size_sum": ("rows", None),
    "afrnn_inference_seconds_sum": ("forward_s", None),
    "afrnn_inflight_requests": ("inflight", None),
}


def service_counters(url: str) -> dict[str, float]:
    """Our service's cumulative counters from ``/metrics``: answered POST requests (status 200),
    forward passes, rows, forward seconds and requests in flight; ``{}`` for a server without them."""
    try:
        response = httpx.get(url + "/metrics", timeout=10)
    except httpx.HTTPError:
        return {}
    if response.status_code != 200 or "afrnn_http_requests_total" not in response.text:
        return {}
    out = {key: 0.0 for key, _ in _COUNTERS.values()}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            key, keep = _COUNTERS.get(sample.name, (None, None))
            if key is not None and (keep is None or keep(sample.labels)):
                out[key] += sample.value
    return out


def wrk_seconds(seconds: float) -> int:
    """wrk takes whole seconds: the window it runs for ``seconds`` (at least 1)."""
    return max(1, round(seconds))


def _children_cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _wrk(url: str, body_path: Path, clients: int, seconds: float, timeout_s: float) -> dict:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as script:
        script.write(WRK_SCRIPT)
    try:
        done = subprocess.run(
            ["wrk", "-t1", f"-c{clients}", f"-d{wrk_seconds(seconds)}s", f"--timeout={int(timeout_s)}s",
             "-s", script.name, url],
            env={**os.environ, "LOADGEN_BODY": str(body_path)}, capture_output=True, text=True,
            timeout=seconds + timeout_s + 30)
    finally:
        os.unlink(script.name)
    line = next((x for x in done.stdout.splitlines() if x.startswith("LOADGEN ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-1000:]} {done.stderr[-1000:]}")
    figures = json.loads(line.removeprefix("LOADGEN "))
    window = figures["duration_us"] / 1e6
    errors = sum(figures[k] for k in ("connect", "read", "write", "status", "timeout"))
    return {"requests": figures["requests"] - figures["status"], "errors": errors,
            "error_kinds": {k: figures[k] for k in ("connect", "read", "write", "status", "timeout")
                            if figures[k]},
            "per_s": (figures["requests"] - figures["status"]) / window, "window_s": window,
            "p50_ms": figures["p50_us"] / 1000, "p99_ms": figures["p99_us"] / 1000}


async def _httpx(url: str, body: bytes, clients: int, seconds: float, warmup_s: float,
                 timeout_s: float, on_window) -> dict:
    latencies: list[float] = []
    errors = 0
    headers = {"content-type": "application/json"}
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    pool = [httpx.AsyncClient(limits=limits, timeout=timeout_s) for _ in range(clients)]
    try:
        await asyncio.gather(*(c.post(url, content=body, headers=headers) for c in pool))
        measure_from = time.perf_counter() + warmup_s
        stop_at = measure_from + seconds
        marks: dict[str, float] = {}

        async def mark_window() -> None:
            await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
            on_window("start")
            await asyncio.sleep(max(0.0, stop_at - time.perf_counter()))
            on_window("stop")
            marks["stopped"] = time.perf_counter()

        async def one_client(client: httpx.AsyncClient) -> None:
            nonlocal errors
            while (sent := time.perf_counter()) < stop_at:
                try:
                    response = await client.post(url, content=body, headers=headers)
                except httpx.TransportError:            # a dropped connection is an error, not a crash
                    errors += 1
                    continue
                done = time.perf_counter()
                if not measure_from <= done < stop_at:      # answers completed inside the window count
                    continue
                if response.status_code == 200:
                    latencies.append(done - sent)
                else:
                    errors += 1

        await asyncio.gather(mark_window(), *(one_client(client) for client in pool))
    finally:
        for client in pool:
            await client.aclose()
    lat = np.asarray(latencies) * 1000
    return {"requests": len(latencies), "errors": errors, "per_s": len(latencies) / seconds,
            "window_s": seconds,
            "p50_ms": float(np.percentile(lat, 50)) if len(lat) else float("nan"),
            "p99_ms": float(np.percentile(lat, 99)) if len(lat) else float("nan")}


def _drain(base_url: str, limit_s: float = 10.0) -> None:
    """Wait until the server has answered what a finished wrk run left in flight (wrk closes its
    connections at the deadline; the server still finishes those requests, and they would count
    against the next run's admission limit): our service's in-flight gauge, else a fixed pause."""
    deadline = time.monotonic() + limit_s
    while (counters := service_counters(base_url)) and counters["inflight"] > 0:
        if time.monotonic() > deadline:
            return
        time.sleep(0.02)
    if not counters:
        time.sleep(0.5)


def closed_loop(url: str, body: bytes, clients: int, seconds: float, warmup_s: float, *,
                generator: str = "auto", server_pid: int | None = None, timeout_s: float = 60.0) -> dict:
    """``clients`` closed-loop connections posting ``body`` to ``url`` (the full URL of the route) for
    ``seconds`` after ``warmup_s``. Returns requests, per_s, p50_ms, p99_ms, errors, the generator
    that ran and its CPU per request, and with ``server_pid`` the server's CPU per request; for our
    service (its ``/metrics``), also the mean batch size and the forward passes' ms per request."""
    generator = resolve(generator)
    base = url.split("/", 3)
    base_url = "/".join(base[:3])
    marks: dict[str, tuple[float, float, dict, float]] = {}

    def mark(name: str) -> None:
        cpu = process_group_cpu_s(server_pid) if server_pid is not None else float("nan")
        loop_cpu = thread_cpu_s(server_pid) if server_pid is not None else float("nan")
        client_cpu = _children_cpu_s() if generator == "wrk" else time.process_time()
        marks[name] = (cpu, loop_cpu, service_counters(base_url), client_cpu)

    if generator == "wrk":
        with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as f:
            f.write(body)
        try:
            if warmup_s >= 0.5:                  # wrk runs whole seconds: a shorter warm-up is skipped
                _wrk(url, Path(f.name), clients, warmup_s, timeout_s)
                _drain(base_url)
            mark("start")
            row = _wrk(url, Path(f.name), clients, seconds, timeout_s)
            mark("stop")
            _drain(base_url)                    # leave the server idle (it may be SIGSTOPped next)
        finally:
            os.unlink(f.name)
    else:
        row = asyncio.run(_httpx(url, body, clients, seconds, warmup_s, timeout_s, mark))
    (cpu0, loop0, m0, c0), (cpu1, loop1, m1, c1) = marks["start"], marks["stop"]
    # per request answered in the window; the server's own count when it has one (wrk's window and
    # the /proc marks differ by the connection set-up, a few ms)
    answered = (m1["ok_requests"] - m0["ok_requests"]) if m0 and m1 else row["requests"]
    answered = max(answered, 1)
    row.update(generator=generator, clients=clients,
               client_cpu_ms_per_request=(c1 - c0) * 1000 / answered,
               server_cpu_ms_per_request=(cpu1 - cpu0) * 1000 / answered)
    if m0 and m1 and m1["batches"] > m0["batches"]:
        row.update(mean_batch_size=(m1["rows"] - m0["rows"]) / (m1["batches"] - m0["batches"]),
                   forward_ms_per_request=(m1["forward_s"] - m0["forward_s"]) * 1000 / answered,
                   loop_cpu_ms_per_request=(loop1 - loop0) * 1000 / answered)
    return row


def main() -> None:
    import argparse

    parser = argparse.ArgumentParser(description="One closed-loop load run; prints its figures as JSON.")
    parser.add_argument("url", help="the route's full URL, e.g. http://127.0.0.1:8000/classify")
    parser.add_argument("--body-file", type=Path, required=True, help="the JSON body every request posts")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--warmup-s", type=float, default=1.0)
    parser.add_argument("--generator", choices=GENERATORS, default="auto")
    parser.add_argument("--server-pid", type=int, help="the server's pid, for its CPU per request")
    args = parser.parse_args()
    print(json.dumps(closed_loop(args.url, args.body_file.read_bytes(), args.clients, args.seconds,
                                 args.warmup_s, generator=args.generator, server_pid=args.server_pid)))


if __name__ == "__main__":
    main()
