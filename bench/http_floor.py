"""The floor under the service's CPU per ``/classify`` request: bare ASGI apps on the service's server.

The same uvicorn as the service (uvloop, httptools, no access log) serves a bare ASGI app, and the load
generator posts the MNIST ``/classify`` body (784 integers, 3.2 kB) at 64 clients. Each app adds one
step of the service's own request path, so each row's CPU per request is a floor for the service's:

- ``bare``: read the body, send a constant 200 JSON answer (uvicorn and the ASGI protocol alone);
- ``parse``: + ``pydantic_core.from_json`` of the body (as the service's lean handler does);
- ``decode``: + the service's own decode of the image (``ClassifierAPI.decode``, as the route calls it);
- ``fastapi``: the same as ``decode``, through a FastAPI route (the router and a pydantic body model);
- ``bare-paced`` and ``decode-paced``: ``bare`` and ``decode`` that answer each request ``--pace-ms``
  after it came (an asyncio timer), so that 64 clients run at about the service's rate (64 / 0.09 s ≈
  700/s by default) instead of 10 000/s: at a low rate the load generator sleeps between answers, and
  each answer's send must wake it (on a VM, an inter-processor interrupt), which the fast apps never pay.

The server is one process with one thread, so its CPU per request is all stack. Rounds alternate the apps.

    python bench/http_floor.py --quick     # 1 round of 1 s per app (< 45 s)
    python bench/http_floor.py             # 3 rounds of 4 s per app

Figures (the last output line is one JSON object): per app ``server_cpu_ms_per_request_median``, and per
round ``server_cpu_ms_per_request`` and ``per_s``.
"""
import argparse
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

import httpx

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
sys.path.insert(0, str(BENCH))
import loadgen  # noqa: E402
import machine  # noqa: E402

APPS = ("bare", "parse", "decode", "fastapi", "bare-paced", "decode-paced")

SERVER = r'''
import asyncio
import sys
from pathlib import Path

import pydantic_core
import uvicorn
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel

kind, pace_s = sys.argv[1], float(sys.argv[3]) / 1000
sys.path.insert(0, sys.argv[4])
import torch
from artifact.export import load_exported
from service.tasks.classifier import ClassifierAPI, no_booleans

ANSWER = b'{"label": 7}'
module, manifest = load_exported(Path(sys.argv[4]) / "checkpoints" / "mnist.json")
api = ClassifierAPI(manifest, module, torch.device("cpu"))


def decode(value, body):
    """The service's own decode of one image (service.tasks.classifier), as the /classify route calls it."""
    return api.decode([value["pixels"]], value["scale"], [("pixels",)],
                      booleans_possible=not no_booleans(body))


async def read_body(receive):
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    return body


async def asgi(scope, receive, send):
    if scope["type"] != "http":
        return
    body = await read_body(receive)
    if kind != "bare" and scope["method"] == "POST":     # not the load generator's GET /metrics
        if kind.endswith("-paced"):
            await asyncio.sleep(pace_s)
        if kind != "bare-paced":
            value = pydantic_core.from_json(body)
            if kind.startswith("decode"):
                decode(value, body)
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(ANSWER)).encode())]})
    await send({"type": "http.response.body", "body": ANSWER})


class Body(BaseModel):
    model: str | None = None
    pixels: list | None = None
    scale: int | None = None


app = FastAPI()


@app.post("/classify")
async def classify(body: Body, request: Request) -> Response:
    decode(body.model_dump(), await request.body())
    return Response(ANSWER, media_type="application/json")


uvicorn.run(app if kind == "fastapi" else asgi, host="127.0.0.1", port=int(sys.argv[2]), log_level="error",
            access_log=False, http="httptools", loop="uvloop")
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(kind: str, pace_ms: float) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, kind, str(port), str(pace_ms), str(ROOT)],
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}/classify"
    for _ in range(200):
        try:
            httpx.get(url, timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{kind} did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 1 s per app (< 45 s)")
    parser.add_argument("--rounds", type=int, help="default 3; quick 1")
    parser.add_argument("--seconds", type=float, help="seconds per app and round (default 4; quick 1)")
    parser.add_argument("--load-generator", choices=loadgen.GENERATORS, default="auto",
                        help="wrk (auto takes it when installed) or httpx clients in this process")
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--pace-ms", type=float, default=90.0, help="the paced apps' delay per request")
    args = parser.parse_args()
    rounds = args.rounds or (1 if args.quick else 3)
    seconds = args.seconds or (1.0 if args.quick else 4.0)
    warmup_s = 0.3 if args.quick else 1.0
    generator = loadgen.resolve(args.load_generator)
    import numpy as np
    pixels = np.random.default_rng(0).integers(0, 256, 784).tolist()
    body = json.dumps({"model": "mnist", "scale": 255, "pixels": pixels}).encode()
    model, flags = machine.cpu()
    print(f"{model}; flags {' '.join(flags)}; {os.cpu_count()} CPUs; c = {args.clients}; "
          f"load generator {generator}", flush=True)
    rows: dict[str, list[dict]] = {kind: [] for kind in APPS}
    for round_ in range(rounds):
        for kind in APPS:
            proc, url = serve(kind, args.pace_ms)
            try:
                row = loadgen.closed_loop(url, body, args.clients, seconds, warmup_s, generator=generator,
                                          server_pid=proc.pid)
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait()
            rows[kind].append(row)
            print(f"round {round_ + 1} {kind:8s} {row['per_s']:8.1f} req/s  server CPU "
                  f"{row['server_cpu_ms_per_request']:.3f} ms/request  errors {row['errors']}", flush=True)
    result = {"quick": args.quick, "clients": args.clients, "rounds": rounds, "seconds": seconds,
              "pace_ms": args.pace_ms, "load_generator": generator}
    for kind in APPS:
        cpu = [r["server_cpu_ms_per_request"] for r in rows[kind]]
        result[kind] = {"server_cpu_ms_per_request_median": round(statistics.median(cpu), 3),
                        "server_cpu_ms_per_request": [round(c, 3) for c in cpu],
                        "per_s": [round(r["per_s"], 1) for r in rows[kind]]}
    result["machine"] = machine.describe()
    print(json.dumps(result))


if __name__ == "__main__":
    main()
