"""The health port (service.health_port): probes answered by a thread, not by the event loop."""

import asyncio
import json
import signal
import threading
import time
import urllib.request

import httpx
import pytest
from pydantic import ValidationError

from service.config import Settings
from service.health_port import HealthServer, _ProbeHandler
from tests.service.conftest import free_port

MNIST_ZERO = {"model": "mnist", "pixels": [0] * 784, "scale": 255}


def test_probes_on_the_health_port_match_the_main_port(tmp_path, export_model, start_service):
    export_model(tmp_path, "mnist")
    health = free_port()
    proc = start_service(tmp_path, "--health-port", str(health))
    base = f"http://127.0.0.1:{health}"
    live = httpx.get(base + "/health/live", timeout=5)
    assert live.status_code == 200 and live.json() == {"status": "alive"}
    ready, main_ready = httpx.get(base + "/health/ready", timeout=5), httpx.get(proc.url + "/health/ready")
    assert ready.status_code == main_ready.status_code == 200
    assert ready.json() == main_ready.json() and ready.json()["models"] == {"mnist": "ready"}
    head = httpx.head(base + "/health/ready", timeout=5)
    assert head.status_code == 200 and head.content == b""
    other = httpx.get(base + "/classify", timeout=5)
    assert other.status_code == 404 and "/health/live" in other.json()["detail"]
    assert httpx.post(proc.url + "/classify", json=MNIST_ZERO).status_code == 200   # the main port serves


def test_readiness_turns_503_at_sigterm_while_requests_drain(tmp_path, export_model, start_service):
    export_model(tmp_path, "mnist", layer_sizes=(256, 256))      # ~25 ms per forward pass
    health = free_port()
    proc = start_service(tmp_path, "--health-port", str(health), "--max-batch-size", "1")
    seen = []

    async def scenario():
        async with httpx.AsyncClient(base_url=proc.url, timeout=60) as ac:
            tasks = [asyncio.ensure_future(ac.post("/classify", json=MNIST_ZERO)) for _ in range(24)]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            proc.proc.send_signal(signal.SIGTERM)
            async with httpx.AsyncClient(timeout=5) as probe:
                while not all(t.done() for t in tasks):
                    r = await probe.get(f"http://127.0.0.1:{health}/health/ready")
                    seen.append((r.status_code, r.json()["reason"]))
                    await asyncio.sleep(0.005)
            return await asyncio.gather(*tasks)

    responses = asyncio.run(scenario())
    assert [r.status_code for r in responses] == [200] * 24          # the drain answers every request
    assert seen and all(code == 503 and "shutting down" in reason for code, reason in seen), seen
    assert proc.proc.wait(60) == 0


def test_the_probe_thread_answers_while_the_event_loop_is_blocked():
    """The event loop blocked (a synchronous sleep in a coroutine): the main port could not answer, the
    health port does, and its answer arrives before the loop is free again."""
    server = HealthServer("127.0.0.1", free_port(), lambda: (200, {"status": "ready"})).start()
    answered = {}

    def probe():
        url = f"http://127.0.0.1:{server.server_address[1]}/health/live"
        with urllib.request.urlopen(url, timeout=5) as response:
            answered["body"] = json.loads(response.read())
            answered["at"] = time.monotonic()

    async def blocked_loop():
        thread = threading.Thread(target=probe)
        thread.start()
        time.sleep(1.0)                              # blocks the loop (and releases the GIL, as torch does)
        return time.monotonic(), thread

    try:
        unblocked_at, thread = asyncio.run(blocked_loop())
        thread.join(5)
    finally:
        server.stop()
    assert answered["body"] == {"status": "alive"}
    assert answered["at"] < unblocked_at


def test_a_probe_that_sends_nothing_is_dropped_and_the_port_keeps_answering(monkeypatch):
    monkeypatch.setattr(_ProbeHandler, "timeout", 0.2)
    server = HealthServer("127.0.0.1", free_port(), lambda: (503, {"status": "not_ready"})).start()
    try:
        import socket
        silent = socket.create_connection(server.server_address)
        r = httpx.get(f"http://127.0.0.1:{server.server_address[1]}/health/ready", timeout=5)
        assert r.status_code == 503 and r.headers["retry-after"] == "2"
        time.sleep(0.5)
        assert silent.recv(1) == b""                 # closed by the server after its timeout
        silent.close()
    finally:
        server.stop()


def test_the_health_port_must_differ_from_the_port():
    with pytest.raises(ValidationError, match="health_port must differ from port"):
        Settings(port=8000, health_port=8000)
    assert Settings(health_port="").health_port is None
