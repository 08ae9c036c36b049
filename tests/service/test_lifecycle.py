"""Start-up and shutdown of the process: background loading (live before ready), the start-up heap
frozen once loaded, graceful drain on SIGTERM with "shutdown complete" in a JSON-lines log."""

import asyncio
import gc
import json
import logging
import signal
import sys
import time

import httpx
import pytest

from service.app import GIL_SWITCH_INTERVAL_S, YOUNG_GENERATION_THRESHOLD, create_app
from service.config import Settings

MNIST_ZERO = {"model": "mnist", "pixels": [0] * 784, "scale": 255}


def test_live_before_ready_while_models_warm_up(tmp_path, export_model, start_service):
    export_model(tmp_path, "mnist", layer_sizes=(512, 512))      # warm-up at batch 16 takes a second or more
    proc = start_service(tmp_path, "--max-batch-size", "16", wait=False)
    deadline = time.monotonic() + 120
    while True:
        assert time.monotonic() < deadline and proc.proc.poll() is None, proc.log()
        try:
            live = httpx.get(proc.url + "/health/live", timeout=5)
            break
        except httpx.TransportError:
            time.sleep(0.05)
    assert live.status_code == 200
    ready = httpx.get(proc.url + "/health/ready", timeout=5)
    assert ready.status_code == 503 and ready.json()["status"] == "not_ready"
    assert ready.json()["models"] == {"mnist": "loading"} and "retry-after" in ready.headers
    early = httpx.post(proc.url + "/classify", json=MNIST_ZERO, timeout=5)
    assert early.status_code == 503 and "still loading" in early.json()["detail"]
    assert "retry-after" in early.headers
    listed = httpx.get(proc.url + "/models", timeout=5).json()["models"][0]
    assert listed["status"] == "unavailable" and listed["reason"] == "loading"
    proc.wait_ready()
    assert httpx.post(proc.url + "/classify", json=MNIST_ZERO, timeout=30).status_code == 200


def test_sigterm_drains_in_flight_requests_then_logs_shutdown_complete(tmp_path, export_model, start_service):
    export_model(tmp_path, "mnist", layer_sizes=(256, 256))      # ~25 ms per forward pass
    proc = start_service(tmp_path, "--max-batch-size", "1")

    async def scenario():
        async with httpx.AsyncClient(base_url=proc.url, timeout=60) as ac:
            tasks = [asyncio.ensure_future(ac.post("/classify", json=MNIST_ZERO)) for _ in range(8)]
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            proc.proc.send_signal(signal.SIGTERM)                   # while the others are queued
            return await asyncio.gather(*tasks, return_exceptions=True)

    responses = asyncio.run(scenario())
    assert proc.proc.wait(60) == 0             # a clean drain after SIGTERM exits 0 (service.connections)
    codes = [getattr(r, "status_code", repr(r)) for r in responses]
    assert codes == [200] * 8, codes
    lines = [json.loads(line) for line in proc.log().splitlines() if line.strip()]   # every line is JSON
    messages = [entry["msg"] for entry in lines]
    assert "shutdown complete" in messages
    assert messages.index("shutdown complete") > max(
        i for i, entry in enumerate(lines) if entry.get("logger") == "service.access")
    assert all({"ts", "level", "logger", "msg"} <= set(entry) for entry in lines)


def test_start_up_heap_leaves_the_garbage_collector_once_the_models_are_loaded(tmp_path, export_model):
    """In process, through the app's own lifespan: nothing is frozen while models load; once every model
    is ready, the objects tracked at start-up (torch, the modules, the app) are frozen, so that full
    collections no longer scan them, and the young generation's threshold is raised; the GIL's switch
    interval is shortened. The loaded module holds its step coupling (computed once)."""
    export_model(tmp_path, "mnist")
    app = create_app(Settings(model_dir=tmp_path, log_level="warning"))
    handlers = logging.getLogger().handlers[:]

    async def run() -> tuple[int, int, dict[str, str], bool]:
        async with app.router.lifespan_context(app):
            registry = app.state.registry
            frozen_while_loading = gc.get_freeze_count()
            deadline = time.monotonic() + 60
            while gc.get_freeze_count() == 0 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            fixed = registry.models["mnist"].module.fixed_step_coupling is not None
            states = {n: e.state for n, e in registry.models.items()}
            return frozen_while_loading, gc.get_freeze_count(), states, fixed

    gc.unfreeze()
    thresholds, switch_interval = gc.get_threshold(), sys.getswitchinterval()
    gc.set_threshold(700, *thresholds[1:])
    sys.setswitchinterval(0.005)
    try:
        while_loading, after, states, coupling_fixed = asyncio.run(run())
        young_threshold, served_switch_interval = gc.get_threshold()[0], sys.getswitchinterval()
    finally:
        gc.unfreeze()
        gc.set_threshold(*thresholds)
        sys.setswitchinterval(switch_interval)
        logging.getLogger().handlers[:] = handlers
    assert states == {"mnist": "ready"}
    assert while_loading == 0
    assert after > 10_000          # torch alone tracks tens of thousands of objects
    assert young_threshold == YOUNG_GENERATION_THRESHOLD > 700
    assert served_switch_interval == pytest.approx(GIL_SWITCH_INTERVAL_S) and GIL_SWITCH_INTERVAL_S < 0.005
    assert coupling_fixed
