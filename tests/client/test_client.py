"""``afrnn_client`` against real uvicorn servers: every endpoint typed, sync and async; errors carry the
status and the field; the API key from the argument or the environment; retries on 503 honour
Retry-After within the time budget and never happen on a 4xx; connection errors are retried; the
package imports without torch."""

import asyncio
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from afrnn_client import (
    NO_RETRY,
    AfrnnClient,
    ApiError,
    AsyncAfrnnClient,
    RetryPolicy,
    TransportError,
)
from afrnn_schemas import (
    ClassifyResponse,
    Liveness,
    ModelDetail,
    ModelList,
    PendulumResponse,
    Readiness,
    StabilityReport,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
KEY = "client-key"
ZERO = [0] * 784
READY_TIMEOUT_S = 300          # model loading alone has taken over 100 s on the loaded 2-core CI machine


@pytest.fixture(scope="module")
def server(tmp_path_factory, export_model, start_service):
    out = tmp_path_factory.mktemp("client-models")
    export_model(out, "mnist", seed=1)
    export_model(out, "pendulum", seed=3)
    proc = start_service(out, api_key=KEY, wait=False)
    yield proc.wait_ready(timeout_s=READY_TIMEOUT_S)
    proc.stop()


def requests_with_status(read_metric, url: str, status: str) -> float:
    """POST /classify requests answered with ``status``, from the server's own counter."""
    return read_metric(httpx.get(url + "/metrics").text, "afrnn_http_requests_total",
                       {"route": "/classify", "status": status})


def test_client_imports_without_torch():
    # torch, numpy, fastapi and the server's packages are made unimportable: importing one raises
    code = ("import sys\n"
            "for name in ('torch', 'numpy', 'fastapi', 'service', 'model'): sys.modules[name] = None\n"
            "import afrnn_client, afrnn_schemas as s\n"
            "c = afrnn_client.AfrnnClient('http://127.0.0.1:1', api_key='k'); c.close()\n"
            "assert s.StabilityReport.model_json_schema()['title'] == 'StabilityReport'\n")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_every_endpoint_returns_the_service_schema(server):
    # timeout: the stability figures have taken over 60 s on the loaded 2-core CI machine
    with AfrnnClient(server.url, api_key=KEY, timeout_s=600) as api, server.client(api_key=KEY) as raw:
        models = api.models()
        assert isinstance(models, ModelList) and {m.name for m in models.models} == {"mnist", "pendulum"}
        detail = api.model("mnist")
        assert isinstance(detail, ModelDetail) and detail.manifest["task"] == "mnist"
        answer = api.classify(model="mnist", pixels=ZERO, scale=255, top_k=2)
        assert isinstance(answer, ClassifyResponse)
        expected = raw.post("/classify", json={"model": "mnist", "pixels": ZERO, "scale": 255,
                                               "top_k": 2}).json()["predictions"]
        assert [p.model_dump() for p in answer.predictions] == expected
        rollout = api.predict_pendulum(initial_state={"theta1": 30, "theta2": -10, "omega1": 0, "omega2": 5},
                                       steps=5)
        assert isinstance(rollout, PendulumResponse) and len(rollout.trajectories[0].predicted) == 5
        report = api.stability("mnist", sections=["theorem"])
        assert isinstance(report, StabilityReport) and report.theorem is not None
        png = api.stability_png("mnist", sections=["spectrum"], lyapunov_k=2)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        assert isinstance(api.health_live(), Liveness)
        ready = api.health_ready()
        assert isinstance(ready, Readiness) and ready.status == "ready"
        assert "afrnn_http_requests_total" in api.metrics()


def test_async_client_answers_like_the_sync_one(server):
    async def run():
        async with AsyncAfrnnClient(server.url, api_key=KEY) as api:
            return await asyncio.gather(api.classify(model="mnist", pixels=ZERO, scale=255),
                                        api.models(), api.model("pendulum"), api.health_ready())

    answer, models, detail, ready = asyncio.run(run())
    with AfrnnClient(server.url, api_key=KEY) as api:
        assert answer.predictions == api.classify(model="mnist", pixels=ZERO, scale=255).predictions
    assert len(models.models) == 2 and detail.name == "pendulum" and ready.status == "ready"


def test_errors_carry_status_and_field_and_4xx_is_never_retried(server, read_metric):
    with AfrnnClient(server.url, api_key=KEY) as api:
        before = requests_with_status(read_metric, server.url, "422")
        with pytest.raises(ApiError) as err:
            api.classify(model="mnist", pixels=[0] * 783, scale=255)
        assert err.value.status == 422 and err.value.field == ("pixels",)
        assert "shape (783,)" in err.value.detail
        assert requests_with_status(read_metric, server.url, "422") == before + 1       # one attempt
        with pytest.raises(ApiError) as err:
            api.classify(model="mnist", pixels=ZERO, scale=255, top_k=11)
        assert err.value.field == ("top_k",)
        with pytest.raises(ApiError) as err:
            api.model("mnistt")
        assert err.value.status == 404 and "unknown model 'mnistt'" in err.value.detail
    with AfrnnClient(server.url, api_key="wrong") as api, pytest.raises(ApiError) as err:
        api.models()
    assert err.value.status == 401 and "wrong API key" in err.value.detail


def test_api_key_from_the_environment_unless_given(server, monkeypatch):
    monkeypatch.setenv("AFRNN_API_KEY", KEY)
    with AfrnnClient(server.url) as api:
        assert api.models().models
    monkeypatch.setenv("AFRNN_API_KEY", "not-it")
    with AfrnnClient(server.url, api_key=KEY) as api:
        assert api.models().models
    with AfrnnClient(server.url) as api, pytest.raises(ApiError) as err:
        api.models()
    assert err.value.status == 401


# -- retries on a really overloaded server ---------------------------------------------------------
@pytest.fixture(scope="module")
def overloaded(tmp_path_factory, export_model, start_service):
    """A 2×512 MNIST AFRNN (~0.1 s per forward pass), batch size 1 and a 1-deep queue: a burst of
    concurrent requests overflows the queue and gets 503 + Retry-After. The request timeout is long,
    so that on a loaded machine a queued request is slow rather than a 504."""
    out = tmp_path_factory.mktemp("overloaded-models")
    export_model(out, "mnist", layer_sizes=(512, 512))
    proc = start_service(out, "--max-batch-size", "1", "--max-queue-length", "1",
                         "--request-timeout-s", "600", wait=False)      # slow, but never a 504
    yield proc.wait_ready(timeout_s=READY_TIMEOUT_S)
    proc.stop()


def burst(url: str, n: int, retry: RetryPolicy) -> list:
    async def run():
        async with AsyncAfrnnClient(url, retry=retry) as api:
            return await asyncio.gather(*(api.classify(model="mnist", pixels=ZERO, scale=255)
                                          for _ in range(n)), return_exceptions=True)
    return asyncio.run(run())


def test_without_retries_a_burst_meets_503_with_retry_after(overloaded):
    results = burst(overloaded.url, 8, NO_RETRY)
    refused = [r for r in results if isinstance(r, ApiError)]
    assert refused and all(r.status == 503 and r.retry_after_s >= 1 for r in refused), results
    assert all(isinstance(r, (ApiError, ClassifyResponse)) for r in results)


def test_retries_honour_retry_after_until_every_request_is_served(overloaded, read_metric):
    before_503 = requests_with_status(read_metric, overloaded.url, "503")
    before_200 = requests_with_status(read_metric, overloaded.url, "200")
    results = burst(overloaded.url, 8, RetryPolicy(max_total_s=120, max_attempts=50))
    assert all(isinstance(r, ClassifyResponse) for r in results), results
    refused = requests_with_status(read_metric, overloaded.url, "503") - before_503
    assert refused >= 1                                           # the server did refuse, and we retried
    assert requests_with_status(read_metric, overloaded.url, "200") - before_200 == 8


def test_a_retry_after_past_the_time_budget_is_not_waited_for(overloaded):
    started = time.monotonic()
    results = burst(overloaded.url, 8, RetryPolicy(max_total_s=0.5))
    refused = [r for r in results if isinstance(r, ApiError)]
    assert refused and all(r.status == 503 and r.retry_after_s >= 1 for r in refused), results
    assert time.monotonic() - started < 30                        # nobody slept out a Retry-After loop


def test_connection_errors_are_retried_until_the_server_is_up(tmp_path_factory, export_model,
                                                              start_service):
    out = tmp_path_factory.mktemp("late-models")
    export_model(out, "mnist", seed=5)
    proc = start_service(out, wait=False)                         # not listening yet: connections refused
    try:
        with AfrnnClient(proc.url, retry=RetryPolicy(max_total_s=120, max_attempts=1000,
                                                     max_backoff_s=0.2)) as api:
            assert api.health_live().status == "alive"
        with AfrnnClient("http://127.0.0.1:9", retry=RetryPolicy(max_total_s=0.3)) as api, \
                pytest.raises(TransportError, match="ConnectError"):
            api.health_live()
    finally:
        proc.stop()
