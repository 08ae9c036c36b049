"""Heavy work (physics references, stability reports) under admission control on live services: the
request timeout stops it, a burst is queued or refused (never a 500), a report cut at its deadline
frees its lane slot, and the in-flight limit refuses before the body is read.

These need real time: a service process, its worker threads and its clocks. The lane's rules
themselves are tested on a manual clock in ``test_admission.py``."""

import asyncio
import time

import httpx
import pytest
import torch

from service.app import HEAVY_MAX_QUEUE_LENGTH

PENDULUM_HEAVY = {"model": "pendulum", "units": "radians", "steps": 290, "include_reference": True,
                  "initial_states": [{"theta1": 0.1 * i, "theta2": -0.1, "omega1": 0.0, "omega2": 0.2}
                                     for i in range(16)]}


@pytest.fixture(scope="module")
def tight_service(tmp_path_factory, export_model, start_service):
    """1 s request timeout; the heavy lane's fixed limits (one job at a time, HEAVY_MAX_QUEUE_LENGTH
    waiting)."""
    models = tmp_path_factory.mktemp("admission-models")
    export_model(models, "mnist")
    export_model(models, "pendulum")
    proc = start_service(models, "--request-timeout-s", "1")
    yield proc
    proc.stop()


def test_a_worst_case_physics_reference_stops_at_the_request_timeout(tight_service):
    with httpx.Client(base_url=tight_service.url, timeout=60) as c:
        started = time.perf_counter()
        r = c.post("/pendulum/predict", json=PENDULUM_HEAVY)
        elapsed = time.perf_counter() - started
    assert r.status_code == 504, r.text[:300]
    assert "request_timeout_s = 1" in r.json()["detail"]
    assert elapsed < 30, elapsed          # it ran 46-48 s before the deadline checks; the limit is 1 s
    metrics = httpx.get(tight_service.url + "/metrics").text
    assert 'afrnn_errors_total{kind="timeout"}' in metrics


def test_concurrent_heavy_requests_are_queued_or_refused_never_500(tight_service):
    sample = {"pixels": [[(i * 7 + j) % 256 for j in range(28)] for i in range(28)], "scale": 255,
              "sections": ["spectrum"]}

    async def burst():
        async with httpx.AsyncClient(base_url=tight_service.url, timeout=60) as ac:
            return await asyncio.gather(*(ac.post("/models/mnist/stability", json=sample)
                                          for _ in range(HEAVY_MAX_QUEUE_LENGTH + 4)))

    codes = [r.status_code for r in asyncio.run(burst())]
    assert set(codes) <= {200, 503, 504}, codes
    assert 503 in codes, codes              # 1 running + HEAVY_MAX_QUEUE_LENGTH queued: the rest are refused
    responses = asyncio.run(burst())
    for r in responses:
        if r.status_code == 503:
            detail = r.json()["detail"]         # a full queue, or a wait longer than the time left
            assert int(r.headers["retry-after"]) >= 1
            assert "jobs queued (the limit is" in detail or "job would finish in about" in detail
    lane = httpx.get(tight_service.url + "/metrics").text
    assert "afrnn_work_lane_queue_depth 0.0" in lane


def test_a_stability_report_past_its_deadline_stops_and_frees_its_slot(tmp_path, export_model, start_service):
    """A report cut at the request's deadline stops in its worker too: the lane slot is free within a
    step, not when the report would have finished. The oracle is the same computation done here,
    uninterrupted (paper-size CIFAR-10 AFRNN, 1024 steps, all 256 Lyapunov exponents: seconds)."""
    from model.stability import stability_report

    model = export_model(tmp_path, "cifar10", layer_sizes=(128, 128))
    pixels = [[[(i * 7 + j * 3 + c) % 256 for c in range(3)] for j in range(32)] for i in range(32)]
    request = {"pixels": pixels, "scale": 255, "sections": ["lyapunov"], "lyapunov_k": 256}
    timeout_s = 1.0
    proc = start_service(tmp_path, "--request-timeout-s", str(timeout_s))
    with httpx.Client(base_url=proc.url, timeout=60) as c:
        started = time.perf_counter()
        r = c.post("/models/cifar10/stability", json=request)
        answered = time.perf_counter()
        assert r.status_code == 504, r.text[:300]
        while "afrnn_work_lane_running 0.0" not in c.get("/metrics").text:
            assert time.perf_counter() - answered < 60
            time.sleep(0.01)
        freed_after_s = time.perf_counter() - answered
    x = torch.tensor(pixels, dtype=torch.float32).reshape(1, 1024, 3) / 255
    tick = time.perf_counter()
    stability_report(model, x, sections=["lyapunov"], lyapunov_k=256)
    full_s = time.perf_counter() - tick
    left_s = full_s - (answered - started)             # what the report would still have run
    assert left_s > 0.5, (full_s, "the oracle report is too fast to tell: make it longer")
    assert freed_after_s < 0.25 * left_s, (freed_after_s, full_s)


def test_the_inflight_limit_refuses_before_reading_the_body(tmp_path, export_model, start_service):
    export_model(tmp_path, "mnist")
    proc = start_service(tmp_path, "--max-inflight-requests", "1", "--body-timeout-s", "5")

    async def scenario():
        reader, writer = await asyncio.open_connection("127.0.0.1", proc.port)
        writer.write(b"POST /classify HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                     b"content-length: 50\r\n\r\n{")                  # admitted, body pending
        await writer.drain()
        await asyncio.sleep(0.3)
        async with httpx.AsyncClient(base_url=proc.url, timeout=10) as ac:
            refused = await ac.post("/classify", json={"model": "mnist", "pixels": [0] * 784, "scale": 255})
        writer.close()
        await asyncio.sleep(0.3)
        async with httpx.AsyncClient(base_url=proc.url, timeout=10) as ac:
            served = await ac.post("/classify", json={"model": "mnist", "pixels": [0] * 784, "scale": 255})
        return refused, served

    refused, served = asyncio.run(scenario())
    assert refused.status_code == 503 and int(refused.headers["retry-after"]) >= 1
    assert "max_inflight_requests = 1" in refused.json()["detail"]
    assert served.status_code == 200
