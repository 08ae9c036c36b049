"""Streams: steps per second and per-chunk latency with 1, 64 and 256 concurrent streams, each sending
one pixel per chunk, with the sequence batcher on and off.

    python bench/streaming.py --quick        # < 45 s
    python bench/streaming.py                # longer runs, and the end-to-end unbatched server too

The model is the shipped ``checkpoints/mnist.json`` (2×128 AFRNN, 784 steps). ``native_advance`` says
whether its artifact exports ``advance`` (else a step is its ``input_drive`` + ``step``, see
``service.streaming.stepper``).

Two levels:

* **batcher** — ``service.streaming.SequenceBatcher`` in this process, N asyncio clients each awaiting
  ``advance`` of one pixel, then the next (no network, no JSON): what batching buys the model thread.
  ``unbatched`` is the same batcher with ``max_batch_streams = 1`` (every chunk its own step), i.e. 256
  independent streams.
* **websocket** (full run only) — a real ``python -m service`` process and N WebSocket clients
  (``websockets``) in this process, each sending ``{"type": "chunk", "values": [v]}`` and waiting for
  the update. The clients share the CPUs with the server.

Figures (the last line is one JSON object): per setting ``steps_per_s``, ``p50_ms``, ``p99_ms`` (one
chunk: send → answer), ``mean_batch`` (streams per batched step, batcher level);
``streams_256_batched_vs_unbatched`` = batcher steps/s at 256 streams, batching on / off (goal ≥ 5);
``ws_streams_256_batched_vs_unbatched`` the same end to end (full run only).
"""

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from artifact.export import load_exported  # noqa: E402
from service.streaming import SequenceBatcher, StreamStepper  # noqa: E402

sys.path.insert(0, str(REPO / "bench"))
import machine  # noqa: E402

MANIFEST = REPO / "checkpoints" / "mnist.json"


def summary(latencies: list[float], steps: int, seconds: float, **extra) -> dict:
    lat = sorted(latencies)
    return {"steps_per_s": round(steps / seconds, 1), "p50_ms": round(statistics.median(lat) * 1e3, 3),
            "p99_ms": round(lat[min(len(lat) - 1, int(0.99 * len(lat)))] * 1e3, 3), **extra}


# -- batcher level --------------------------------------------------------------------------------
async def batcher_run(stepper: StreamStepper, streams: int, steps: int, max_batch: int | None) -> dict:
    batcher = SequenceBatcher("mnist", stepper, max_streams=max(streams, 1), max_steps=784,
                              max_chunk_steps=784, idle_timeout_s=600, max_batch_streams=max_batch)
    calls = []
    batcher._on_step = lambda n, _steps, _s: calls.append(n)
    batcher.start()
    handles = [batcher.open() for _ in range(streams)]
    rng = np.random.default_rng(0)
    pixels = rng.normal(size=(streams, steps, 1, 1)).astype(np.float32)
    latencies: list[float] = []

    async def client(i: int) -> None:
        for t in range(steps):
            started = time.perf_counter()
            await batcher.advance(handles[i], pixels[i, t])
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client(i) for i in range(streams)))
    seconds = time.perf_counter() - started
    await batcher.close()
    return summary(latencies, streams * steps, seconds, mean_batch=round(sum(calls) / len(calls), 1))


# -- websocket level ------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(max_batch: int | None) -> tuple[subprocess.Popen, str]:
    import httpx

    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "AFRNN_STREAM_MAX_OPEN": "512"}
    env.pop("AFRNN_API_KEY", None)
    if max_batch is not None:
        env["AFRNN_STREAM_MAX_BATCH"] = str(max_batch)
    proc = subprocess.Popen([sys.executable, "-m", "service", "--port", str(port), "--log-level", "warning",
                             "--model-dir", str(MANIFEST.parent)], cwd=REPO, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(url + "/health/ready", timeout=2).status_code == 200:
                return proc, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    proc.kill()
    raise RuntimeError("the service did not become ready")


async def ws_run(url: str, streams: int, steps: int) -> dict:
    import websockets

    ws_url = url.replace("http://", "ws://") + "/models/mnist/stream"
    latencies: list[float] = []
    connections = []
    for _ in range(streams):
        ws = await websockets.connect(ws_url, compression=None)
        await ws.send('{"type": "open", "scale": 255}')
        await ws.recv()
        connections.append(ws)

    async def client(i: int, ws) -> None:
        for t in range(steps):
            message = json.dumps({"type": "chunk", "values": [(i * 31 + t * 7) % 256]})
            started = time.perf_counter()
            await ws.send(message)
            await ws.recv()
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(client(i, ws) for i, ws in enumerate(connections)))
    seconds = time.perf_counter() - started
    for ws in connections:
        await ws.close()
    return summary(latencies, streams * steps, seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="short runs, < 45 s")
    args = parser.parse_args()
    torch.set_num_threads(1)
    quick = args.quick
    module, _ = load_exported(MANIFEST)
    stepper = StreamStepper("mnist", module, torch.device("cpu"))
    figures: dict = {"load_average_before": round(os.getloadavg()[0], 2), "quick": quick,
                     "native_advance": stepper.native}
    steps = {1: 100 if quick else 400, 64: 20 if quick else 100, 256: 10 if quick else 40}
    with torch.inference_mode():
        stepper.advance(stepper.initial_row.expand(4, -1).clone(), torch.zeros(4, 1, 1))     # warm up
    for n, k in steps.items():
        figures[f"batcher_{n}"] = asyncio.run(batcher_run(stepper, n, k, None))
        print(f"batcher, {n} streams: {figures[f'batcher_{n}']}", flush=True)
    figures["batcher_256_unbatched"] = asyncio.run(batcher_run(stepper, 256, 1 if quick else 8, 1))
    print(f"batcher, 256 streams unbatched: {figures['batcher_256_unbatched']}", flush=True)
    figures["streams_256_batched_vs_unbatched"] = round(
        figures["batcher_256"]["steps_per_s"] / figures["batcher_256_unbatched"]["steps_per_s"], 1)

    if not quick:                          # a server start alone takes 10-30 s on a loaded 2-core machine
        proc, url = start_server(None)
        try:
            for n, k in {1: 400, 64: 60, 256: 20}.items():
                figures[f"ws_{n}"] = asyncio.run(ws_run(url, n, k))
                print(f"websocket, {n} streams: {figures[f'ws_{n}']}", flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
        proc, url = start_server(1)
        try:
            figures["ws_256_unbatched"] = asyncio.run(ws_run(url, 256, 4))
            print(f"websocket, 256 streams unbatched: {figures['ws_256_unbatched']}", flush=True)
        finally:
            proc.terminate()
            proc.wait(30)
        figures["ws_streams_256_batched_vs_unbatched"] = round(
            figures["ws_256"]["steps_per_s"] / figures["ws_256_unbatched"]["steps_per_s"], 1)
    figures["goal_met"] = figures["streams_256_batched_vs_unbatched"] >= 5
    figures["machine"] = machine.describe()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
