"""The small fixed costs that the code's design comments rely on, measured instead of quoted.

* ``dependency_us``: what one ``async def`` FastAPI dependency adds to a request (why the hot path,
  ``POST /classify``, reads ``app.state`` through plain accessors: ``service.api.deps``);
* ``api_key_us``: what ``require_api_key`` (a ``Security`` header dependency) adds (why the app
  installs it only when a key is configured: ``service.app``);
* ``json_loads_us`` / ``from_json_us``: parsing a 784-pixel MNIST body, 0–255 integers and 0–1
  floats, with ``json.loads`` and with ``pydantic_core.from_json`` (``service.api.json_body``);
* ``plots_import_s``: importing ``model.stability.plots`` (matplotlib) once torch is loaded (why the
  service imports it on the first PNG request: ``service.stability``);
* ``eigvals_float32_ratio``: a 256 × 256 general eigensolve in float32 over float64 (the gradient
  section takes mean |λ| in float32: ``model.stability.analysis``).

Requests go straight into the ASGI app (no sockets, no client): the figures are differences between
otherwise identical routes, medians over rounds, each round the mean of many requests.

    python bench/overheads.py            # full run: 7 rounds, about 1 min
    python bench/overheads.py --quick    # 3 rounds, < 45 s

The last line of the output is one JSON object with the figures.
"""

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pydantic_core
import torch
from fastapi import APIRouter, Depends, FastAPI, Request, Response

from service.api.deps import SettingsDep, require_api_key, settings_of
from service.config import Settings

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
API_KEY = "bench-key"


def _app() -> FastAPI:
    app = FastAPI()
    app.state.settings = Settings(_env_file=None, api_key=API_KEY)

    @app.get("/plain")
    async def plain(request: Request) -> Response:
        settings_of(request)
        return Response(b"")

    @app.get("/dependency")
    async def dependency(settings: SettingsDep) -> Response:
        return Response(b"")

    keyed = APIRouter(dependencies=[Depends(require_api_key)])

    @keyed.get("/keyed")
    async def keyed_route(request: Request) -> Response:
        settings_of(request)
        return Response(b"")

    app.include_router(keyed)
    return app


async def _request_us(app: FastAPI, path: str, requests: int) -> float:
    """Mean microseconds per GET ``path`` through the whole ASGI app."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET",
             "scheme": "http", "path": path, "raw_path": path.encode(), "query_string": b"",
             "root_path": "", "headers": [(b"x-api-key", API_KEY.encode())],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 80)}

    async def receive() -> dict:
        return {"type": "http.request", "body": b"", "more_body": False}

    statuses = []

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            statuses.append(message["status"])

    start = time.perf_counter()
    for _ in range(requests):
        await app(dict(scope), receive, send)
    elapsed = time.perf_counter() - start
    assert set(statuses) == {200}, (path, set(statuses))
    return elapsed / requests * 1e6


def route_costs(rounds: int, requests: int) -> dict[str, float]:
    app = _app()
    samples: dict[str, list[float]] = {"/plain": [], "/dependency": [], "/keyed": []}

    async def run() -> None:
        for path in samples:                                    # warm-up
            await _request_us(app, path, 200)
        for _ in range(rounds):
            for path in samples:                                # interleaved: the same load for each
                samples[path].append(await _request_us(app, path, requests))

    asyncio.run(run())
    plain = statistics.median(samples["/plain"])
    return {"plain_request_us": round(plain, 1),
            "dependency_us": round(statistics.median(samples["/dependency"]) - plain, 1),
            "api_key_us": round(statistics.median(samples["/keyed"]) - plain, 1)}


def _median_us(fn, text: bytes, repeats: int, rounds: int) -> float:
    times = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(repeats):
            fn(text)
        times.append((time.perf_counter() - start) / repeats * 1e6)
    return statistics.median(times)


def json_costs(rounds: int) -> dict[str, float]:
    rng = random.Random(0)
    bodies = {
        "int": json.dumps({"model": "mnist", "scale": 255,
                           "pixels": [rng.randrange(256) for _ in range(784)]}),
        "float": json.dumps({"model": "mnist", "scale": 1, "pixels": [rng.random() for _ in range(784)]}),
    }
    out = {}
    for name, text in bodies.items():
        raw = text.encode()
        assert pydantic_core.from_json(raw) == json.loads(raw)
        loads = _median_us(json.loads, raw, 500, rounds)
        fast = _median_us(pydantic_core.from_json, raw, 500, rounds)
        out[f"json_loads_{name}_us"] = round(loads, 1)
        out[f"from_json_{name}_us"] = round(fast, 1)
        out[f"from_json_speedup_{name}"] = round(loads / fast, 2)
    return out


def plots_import_s(rounds: int) -> float:
    """Median seconds to import model.stability.plots in a fresh interpreter that has torch loaded."""
    code = ("import time, model.stability; t = time.perf_counter(); import model.stability.plots; "
            "print(time.perf_counter() - t)")
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    times = [float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                  env=env, cwd=REPO).stdout) for _ in range(rounds)]
    return round(statistics.median(times), 3)


def eigvals_ratio(rounds: int) -> dict[str, float]:
    generator = torch.Generator().manual_seed(0)
    matrix = torch.randn(256, 256, generator=generator, dtype=torch.float64)
    single = matrix.to(torch.float32)
    out = {}
    for name, m in (("float64", matrix), ("float32", single)):
        torch.linalg.eigvals(m)                                 # warm-up
        times = []
        for _ in range(rounds):
            start = time.perf_counter()
            for _ in range(5):
                torch.linalg.eigvals(m)
            times.append((time.perf_counter() - start) / 5 * 1e3)
        out[f"eigvals_{name}_ms"] = round(statistics.median(times), 2)
    out["eigvals_float32_ratio"] = round(out["eigvals_float32_ms"] / out["eigvals_float64_ms"], 2)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="3 rounds (< 45 s)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    rounds = 3 if args.quick else 7
    load_before = os.getloadavg()[0]
    figures: dict[str, object] = {"quick": args.quick, "torch_threads": 1,
                                  "load_average_before": round(load_before, 2)}
    figures.update(route_costs(rounds, 1000 if args.quick else 2000))
    print(f"per request: plain {figures['plain_request_us']} µs; one dependency "
          f"+{figures['dependency_us']} µs; require_api_key +{figures['api_key_us']} µs", flush=True)
    figures.update(json_costs(rounds))
    print(f"784-pixel body: json.loads {figures['json_loads_int_us']} µs (ints), "
          f"{figures['json_loads_float_us']} µs (floats); pydantic_core.from_json "
          f"{figures['from_json_speedup_int']}× / {figures['from_json_speedup_float']}× faster", flush=True)
    figures["plots_import_s"] = plots_import_s(1 if args.quick else 3)
    print(f"import model.stability.plots (torch loaded): {figures['plots_import_s']} s", flush=True)
    figures.update(eigvals_ratio(rounds))
    print(f"256×256 eigvals: float64 {figures['eigvals_float64_ms']} ms, "
          f"float32 {figures['eigvals_float32_ms']} ms", flush=True)
    figures["machine"] = machine.describe()
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
