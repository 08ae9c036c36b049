"""``bench/loadgen.py``, the benchmarks' load generator, run as a program against a real service: each
generator (wrk, httpx) reports the answers the service itself counted in ``/metrics`` (the oracle),
no errors, and the server's CPU per request. CI installs wrk (``.ci/run``); without it the wrk case is
skipped unless ``AFRNN_REQUIRE_WRK=1``."""

import json
import os
import shutil
import subprocess
import sys

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.service.conftest import REPO_ROOT


def answered(url: str) -> float:
    """POST /classify answers with status 200, from the service's /metrics."""
    text = httpx.get(url + "/metrics").text
    return sum(sample.value for family in text_string_to_metric_families(text)
               for sample in family.samples
               if sample.name == "afrnn_http_requests_total" and sample.labels.get("route") == "/classify"
               and sample.labels.get("status") == "200")


@pytest.fixture(scope="module")
def open_service(tmp_path_factory, export_model, start_service):
    models = tmp_path_factory.mktemp("loadgen-models")
    export_model(models, "mnist")
    service = start_service(models)             # no API key: the generators send none
    yield service
    service.stop()


@pytest.mark.parametrize("generator", ["wrk", "httpx"])
def test_the_generator_counts_what_the_service_answered(open_service, generator, tmp_path):
    if generator == "wrk" and not shutil.which("wrk"):
        if os.environ.get("AFRNN_REQUIRE_WRK") == "1":
            pytest.fail("wrk is not installed and AFRNN_REQUIRE_WRK=1")
        pytest.skip("wrk is not installed")
    body = tmp_path / "body.json"
    body.write_text(json.dumps({"model": "mnist", "scale": 255, "pixels": [7] * 784}))
    before = answered(open_service.url)
    run = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "loadgen.py"), open_service.url + "/classify",
         "--body-file", str(body), "--clients", "4", "--seconds", "1", "--warmup-s", "0",
         "--generator", generator, "--server-pid", str(open_service.proc.pid)],
        capture_output=True, text=True, timeout=120, check=True)
    figures = json.loads(run.stdout.splitlines()[-1])
    counted = answered(open_service.url) - before
    assert figures["generator"] == generator
    assert figures["errors"] == 0 and figures["requests"] > 0
    # the window's answers are among those the service counted; beyond them only the warm-up
    # connections' first requests (httpx) and what was in flight at the end
    assert figures["requests"] <= counted <= figures["requests"] + 2 * 4
    assert figures["mean_batch_size"] >= 1
    assert 0 < figures["loop_cpu_ms_per_request"] <= figures["server_cpu_ms_per_request"]
    assert figures["p50_ms"] <= figures["p99_ms"]
