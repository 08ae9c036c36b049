"""The 10-second form of ``bench/soak.py`` against the shared test service: four small heavy requests
(physics references and stability reports), mixed load from 16 clients, a burst of 300 requests,
recovery. Asserted: the heavy requests are valid and served, no 5xx but 503, a Retry-After on every
503, clients arriving during the burst get 200 or 503, the service recovers, and its RSS grows by at
most 10 % after warm-up. (Latency goals are the bench script's, on a quiet machine:
docs/reliability.md.)"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.conftest import API_KEY

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_ten_second_soak_has_no_5xx_and_bounded_memory(service):
    run = subprocess.run(
        [sys.executable, str(REPO_ROOT / "bench" / "soak.py"), "--url", service.url, "--pid",
         str(service.proc.pid), "--api-key", API_KEY, "--clients", "16", "--duration", "10",
         "--burst", "300", "--heavy", "4", "--heavy-states", "4", "--heavy-steps", "29"],
        capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout.strip().splitlines()[-1])
    assert result["n_5xx"] == 0 and result["n_transport_errors"] == 0, result["status_total"]
    assert result["mixed"]["missing_retry_after"] == 0 and result["burst"]["missing_retry_after"] == 0
    assert sum(result["status_total"].values()) > result["burst_n"]          # the mixed phase ran too
    assert result["goals"]["recovered"], result["recovery"]
    # the canary (a client of its own arriving during the burst) got clean answers: 200 or 503
    canary = result["burst"]["canary_status"]
    assert sum(canary.values()) > 0 and set(canary) <= {"200", "503"}, canary
    # the isolation phase's heavy requests (references and stability reports) were valid and all served
    assert result["goals"]["heavy_requests_valid"], result["isolation"]
    assert result["isolation"]["heavy_status"] == {"200": 4}, result["isolation"]
    assert result["rss_growth_pct_after_warmup"] is not None
    assert result["rss_growth_pct_after_warmup"] <= 10.0, result["rss_bytes"]
    assert result["rss_growth_pct_idle"] is not None                         # idle to idle (trimmed)
    assert result["rss_growth_pct_idle"] <= 10.0, result["rss_bytes"]
