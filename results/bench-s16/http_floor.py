"""Issue 32, session 16: the floor under "server CPU per /classify request minus the forward ≤ 0.3 ms".

The same uvicorn as the service (uvloop, httptools, no access log) serves a bare ASGI app, and wrk posts
the MNIST /classify body (784 integers, 3.2 kB) at c = 64. Each app adds one step of the service's own
request path, so each row's CPU per request is a floor for the service's:
- ``bare``: read the body, send a constant 200 JSON answer (uvicorn and the ASGI protocol alone);
- ``parse``: + ``pydantic_core.from_json`` of the body (as the service's lean handler does);
- ``decode``: + ``np.asarray`` of the pixel list, the boolean check and the normalisation;
- ``fastapi``: the same as ``decode``, through a FastAPI route (the router and a pydantic body model).
The server is one process with one thread, so its CPU per request is all stack. Rounds alternate the apps.

    python results/bench-s16/http_floor.py [--rounds 3] [--seconds 4] [--clients 64]
Output: http-floor.out (the last line is the JSON of the figures).
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

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from bench.loadgen import closed_loop  # noqa: E402
from model.inference import cpu_flags  # noqa: E402

APPS = ("bare", "parse", "decode", "fastapi")

SERVER = r'''
import sys
import numpy as np
import pydantic_core
import uvicorn
from fastapi import FastAPI, Request, Response
from pydantic import BaseModel

kind = sys.argv[1]
ANSWER = b'{"label": 7}'
MEAN, STD = np.float32(0.1307), np.float32(0.3081)


def leaf_types(value):
    return set(map(type, value))


def decode(pixels):
    arr = np.asarray(pixels)
    if bool in leaf_types(pixels) or arr.shape != (784,):
        raise ValueError("bad pixels")
    if not (0 <= arr.min() and arr.max() <= 255):
        raise ValueError("out of range")
    out = np.empty((784, 1), np.float32)
    out[:, 0] = arr
    out /= np.float32(255)
    out -= MEAN
    out /= STD
    return out


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
    if kind in ("parse", "decode") and scope["method"] == "POST":     # not the load generator's GET /metrics
        value = pydantic_core.from_json(body)
        if kind == "decode":
            decode(value["pixels"])
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(ANSWER)).encode())]})
    await send({"type": "http.response.body", "body": ANSWER})


class Body(BaseModel):
    model: str | None = None
    pixels: list | None = None
    scale: int | None = None


api = FastAPI()


@api.post("/classify")
async def classify(body: Body) -> Response:
    decode(body.pixels)
    return Response(ANSWER, media_type="application/json")


uvicorn.run(api if kind == "fastapi" else asgi, host="127.0.0.1", port=int(sys.argv[2]), log_level="error",
            access_log=False, http="httptools", loop="uvloop")
'''


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve(kind: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, kind, str(port)], start_new_session=True)
    url = f"http://127.0.0.1:{port}/classify"
    for _ in range(200):
        try:
            httpx.post(url, content=b'{"pixels": [0]}', timeout=1)
            return proc, url
        except httpx.TransportError:
            time.sleep(0.05)
    raise RuntimeError(f"{kind} did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--clients", type=int, default=64)
    args = parser.parse_args()
    import numpy as np
    pixels = np.random.default_rng(0).integers(0, 256, 784).tolist()
    body = json.dumps({"model": "mnist", "scale": 255, "pixels": pixels}).encode()
    model, flags = cpu_flags()
    flags = sorted(f for f in flags if f.startswith(("avx", "amx")))
    print(f"{model}; flags {' '.join(flags)}; {os.cpu_count()} CPUs; c = {args.clients}", flush=True)
    rows: dict[str, list[dict]] = {kind: [] for kind in APPS}
    for round_ in range(args.rounds):
        for kind in APPS:
            proc, url = serve(kind)
            try:
                row = closed_loop(url, body, args.clients, args.seconds, 1.0, generator="wrk",
                                  server_pid=proc.pid)
            finally:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait()
            rows[kind].append(row)
            print(f"round {round_ + 1} {kind:8s} {row['per_s']:8.1f} req/s  server CPU "
                  f"{row['server_cpu_ms_per_request']:.3f} ms/request  errors {row['errors']}", flush=True)
    result = {"cpu_model": model, "cpu_flags": flags, "clients": args.clients, "rounds": args.rounds,
              "seconds": args.seconds}
    for kind in APPS:
        cpu = [r["server_cpu_ms_per_request"] for r in rows[kind]]
        result[kind] = {"server_cpu_ms_per_request_median": round(statistics.median(cpu), 3),
                        "server_cpu_ms_per_request": [round(c, 3) for c in cpu],
                        "per_s": [round(r["per_s"], 1) for r in rows[kind]]}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
