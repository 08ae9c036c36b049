"""Issue 32, session 16: where a lone /classify request's time goes (goal: p50 ≤ 1.3 × the bare forward).

The service (``python -m service``, the shipped checkpoints) answers one client that sends the next
request as soon as the answer came (httpx, keep-alive). Each answer carries the server's own split:
``latency_ms`` (the handler: decode, queue, forward, encode), ``queue_ms`` (submission → start of the
forward: the model thread's wake-up) and ``inference_ms`` (the forward inside the service). The round
trip minus ``latency_ms`` is HTTP in and out (uvicorn, body, JSON, validation, middleware) plus the
client. In the same run, the bare batch-1 forward of the same path back to back, and after sleeping as
long as the service's stack takes between two forwards (what a lone request's forward finds).

    python results/bench-s16/lone_request.py [--requests 1500]
Output: lone-request.out (the last line is the JSON of the medians).
"""
import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import httpx
import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from artifact.export import load_exported  # noqa: E402
from bench.service_load import Service  # noqa: E402
from model.inference import FastRecurrence, cpu_flags  # noqa: E402


def bare(gap_s: float, count: int) -> float:
    """Median wall ms of the batch-1 forward of the path the service runs, ``gap_s`` asleep before each."""
    torch.set_num_threads(1)
    module, manifest = load_exported(ROOT / "checkpoints" / "mnist.json")
    fast, _ = FastRecurrence.from_module(module)
    forward = fast if fast is not None else module
    x = torch.zeros(1, manifest.input.sequence_length, manifest.input.channels)
    times = []
    with torch.inference_mode():
        for _ in range(20):
            forward(x)
        for _ in range(count):
            if gap_s:
                time.sleep(gap_s)
            start = time.perf_counter()
            forward(x)
            times.append(time.perf_counter() - start)
    return statistics.median(times) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=1500)
    args = parser.parse_args()
    model, flags = cpu_flags()
    print(f"{model}; flags {' '.join(sorted(f for f in flags if f.startswith(('avx', 'amx'))))}", flush=True)
    pixels = np.random.default_rng(0).integers(0, 256, 784).tolist()
    body = {"model": "mnist", "scale": 255, "pixels": pixels}
    service = Service(ROOT / "checkpoints", 32, 1, 0.0)
    rows = []
    try:
        with httpx.Client(base_url=service.url) as client:
            for i in range(args.requests + 100):
                start = time.perf_counter()
                answer = client.post("/classify", json=body)
                rtt = (time.perf_counter() - start) * 1000
                answer.raise_for_status()
                if i >= 100:                        # warm-up
                    a = answer.json()
                    rows.append((rtt, a["latency_ms"], a["queue_ms"], a["inference_ms"]))
    finally:
        service.stop()
    rtt, latency, queue, inference = (statistics.median(col) for col in zip(*rows, strict=True))
    handler_rest = statistics.median(r[1] - r[2] - r[3] for r in rows)
    http = statistics.median(r[0] - r[1] for r in rows)
    stack_gap_s = (rtt - inference) / 1000
    back_to_back = bare(0.0, 400)
    after_gap = bare(stack_gap_s, 400)
    result = {"cpu_model": model, "requests": len(rows), "round_trip_ms": round(rtt, 3),
              "handler_ms": round(latency, 3), "queue_ms": round(queue, 3),
              "inference_ms": round(inference, 3), "handler_decode_encode_ms": round(handler_rest, 3),
              "http_and_client_ms": round(http, 3), "bare_forward_ms": round(back_to_back, 3),
              "bare_forward_after_gap_ms": round(after_gap, 3), "gap_ms": round(stack_gap_s * 1000, 3),
              "inference_vs_bare": round(inference / back_to_back, 3)}
    for key, value in result.items():
        print(f"{key:28s} {value}", flush=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
