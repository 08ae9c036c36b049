"""The model repository against a real server: ``<name>/<version>/`` folders beside the flat layout,
explicit load and unload (through Triton's own client too), a failed load that leaves the serving version
untouched, streams that end on the version they began on, no failed request while versions swap, the
admin key's rules, and what a load may name."""

import shutil
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.service.conftest import API_KEY, export_tiny

ADMIN_KEY = "admin-test-key"
ADMIN = {"X-API-Key": ADMIN_KEY}
EXPLICIT = {"AFRNN_MODEL_CONTROL": "explicit", "AFRNN_ADMIN_KEY": ADMIN_KEY}


def version_folder(root: Path, name: str, version: int, seed: int, task: str = "mnist") -> Path:
    folder = root / name / str(version)
    folder.mkdir(parents=True, exist_ok=True)
    export_tiny(folder, task, name=name, seed=seed)
    return folder


def _pixels(seed: int = 3) -> list[int]:
    return np.random.default_rng(seed).integers(0, 256, size=784).tolist()


def _classify(client: httpx.Client, version: int | None = None, seed: int = 3) -> httpx.Response:
    path = "/v2/models/digits/infer" if version is None else f"/v2/models/digits/versions/{version}/infer"
    return client.post(path, json={"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 784],
                                               "data": _pixels(seed)}]})


def _probabilities(response: httpx.Response) -> list[float]:
    assert response.status_code == 200, response.text
    return next(o["data"] for o in response.json()["outputs"] if o["name"] == "probabilities")


@pytest.fixture(scope="module")
def repository(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("repository")
    version_folder(root, "digits", 1, seed=11)
    version_folder(root, "digits", 2, seed=12)
    export_tiny(root, "pendulum", seed=3)                      # the flat layout: version 1
    return root


@pytest.fixture(scope="module")
def explicit(repository, start_service):
    return start_service(repository, api_key=API_KEY, env=EXPLICIT)


@pytest.fixture()
def admin(explicit):
    with explicit.client(api_key=ADMIN_KEY) as c:
        yield c


@pytest.fixture()
def user(explicit):
    with explicit.client() as c:
        yield c


def test_the_highest_version_serves_and_every_version_answers(user):
    models = {m["name"]: m for m in user.get("/models").json()["models"]}
    assert models["digits"]["served_version"] == 2
    assert [v["version"] for v in models["digits"]["versions"]] == [1, 2]
    assert models["pendulum"]["served_version"] == 1                 # flat layout
    latest, first = _classify(user), _classify(user, version=1)
    assert latest.json()["model_version"] == "2" and first.json()["model_version"] == "1"
    assert _probabilities(latest) == _probabilities(_classify(user, version=2))
    assert _probabilities(latest) != _probabilities(first)            # two different models
    assert user.get("/v2/models/digits").json()["versions"] == ["1", "2"]


def test_load_switches_to_a_new_version_and_a_failed_load_leaves_it_serving(repository, admin, user,
                                                                           read_metric):
    version_folder(repository, "digits", 3, seed=13)
    r = admin.post("/v2/repository/models/digits/load")
    assert r.status_code == 200, r.text
    assert r.json()["loaded"] == ["3"] and r.json()["serving_version"] == "3"
    serving = _probabilities(_classify(user))
    assert _classify(user).json()["model_version"] == "3"

    broken = version_folder(repository, "digits", 4, seed=14)
    artifact = broken / "digits.pt"
    data = bytearray(artifact.read_bytes())
    data[len(data) // 2] ^= 0xFF
    artifact.write_bytes(bytes(data))
    r = admin.post("/v2/repository/models/digits/load")
    assert r.status_code == 400
    assert "version 4" in r.json()["error"] and "SHA-256" in r.json()["error"]
    assert r.json()["serving_version"] == "3"
    assert _probabilities(_classify(user)) == serving                # untouched
    index = {(e["name"], e["version"]): e for e in admin.post("/v2/repository/index").json()}
    assert index[("digits", "4")]["state"] == "UNAVAILABLE" and "SHA-256" in index[("digits", "4")]["reason"]
    assert index[("digits", "3")]["state"] == "READY"
    shutil.rmtree(broken)
    metrics = user.get("/metrics").text
    assert read_metric(metrics, "afrnn_model_loads_total", {"model": "digits", "outcome": "failed"}) >= 1
    assert read_metric(metrics, "afrnn_http_request_duration_seconds_count",
                       {"model": "digits", "version": "3"}) >= 1


def test_unload_then_requests_get_404_and_load_brings_it_back(admin, user):
    r = admin.post("/v2/repository/models/pendulum/unload")
    assert r.status_code == 200 and r.json()["unloaded"] == ["1"]
    gone = user.post("/pendulum/predict", json={"model": "pendulum", "initial_states": [
        {"theta1": 0.1, "theta2": 0.0, "omega1": 0.0, "omega2": 0.0}]})
    assert gone.status_code in (404, 422)
    assert user.get("/v2/models/pendulum").status_code == 404
    assert admin.post("/v2/repository/models/pendulum/load").status_code == 200
    assert user.get("/v2/models/pendulum/ready").status_code == 200


def test_a_stream_ends_on_the_version_it_began_on(repository, admin, user):
    opened = user.post("/models/digits/streams", json={"scale": 255})
    assert opened.status_code == 201, opened.text
    stream = opened.json()["stream_id"]
    assert user.post(f"/models/digits/streams/{stream}", json={"values": _pixels()[:100]}).status_code == 200
    served = max(int(v) for v in user.get("/v2/models/digits").json()["versions"])
    shutil.rmtree(repository / "digits" / str(served))
    version_folder(repository, "digits", served, seed=99)            # the same number, other weights
    r = admin.post("/v2/repository/models/digits/load")
    assert r.status_code == 200 and r.json()["loaded"] == [str(served)], r.text
    assert str(served) in r.json()["retired"]
    rest = user.post(f"/models/digits/streams/{stream}", json={"values": _pixels()[100:]})
    assert rest.status_code == 200, rest.text
    final = user.post(f"/models/digits/streams/{stream}/end")
    assert final.status_code == 200 and final.json()["steps"] == 784


def test_no_request_fails_while_versions_swap(repository, admin, explicit):
    failures: list[str] = []
    stop = threading.Event()

    def classify():
        with explicit.client() as c:
            while not stop.is_set():
                r = _classify(c)
                if r.status_code != 200:
                    failures.append(f"{r.status_code} {r.text[:200]}")

    threads = [threading.Thread(target=classify) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        for version in (5, 6, 7):
            version_folder(repository, "digits", version, seed=version)
            assert admin.post("/v2/repository/models/digits/load").status_code == 200
            time.sleep(0.2)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert failures == []
    with explicit.client() as c:
        assert _classify(c).json()["model_version"] == "7"


def test_tritonclient_drives_the_repository(explicit):
    client = triton.InferenceServerClient(url=explicit.url.removeprefix("http://"))
    try:
        names = {(m["name"], m["version"]) for m in client.get_model_repository_index(headers=dict(ADMIN))}
        assert ("digits", "1") in names
        client.unload_model("pendulum", headers=dict(ADMIN))
        assert not client.is_model_ready("pendulum", headers={"X-API-Key": API_KEY})
        client.load_model("pendulum", headers=dict(ADMIN))
        assert client.is_model_ready("pendulum", headers={"X-API-Key": API_KEY})
    finally:
        client.close()


def test_the_admin_key_rules(explicit):
    with explicit.client(api_key=None) as anonymous:
        r = anonymous.post("/v2/repository/models/digits/load")
        assert r.status_code == 401 and "error" in r.json()
    with explicit.client() as inference_key:
        r = inference_key.post("/v2/repository/models/digits/unload")
        assert r.status_code == 403 and "admin key" in r.json()["error"]
        assert inference_key.post("/v2/repository/index").status_code == 403
    with explicit.client(api_key=ADMIN_KEY) as admin_key:
        assert admin_key.post("/v2/models/digits/infer", json={"inputs": []}).status_code == 401


@pytest.mark.parametrize("name", ["..%2F..%2Fetc%2Fpasswd", "%2E%2E", "http:%2F%2Fevil.example%2Fm",
                                  "a%2Fb", "x" * 65, "Digits", "a%5Cb", "%2Ftmp%2Fm"])
def test_a_load_names_a_model_never_a_path_or_a_url(admin, name):
    r = admin.post(f"/v2/repository/models/{name}/load")
    assert r.status_code == 400, r.text
    assert "not a model name" in r.json()["error"]


def test_unknown_names_get_404(admin):
    assert admin.post("/v2/repository/models/nothing-here/load").status_code == 404
    assert admin.post("/v2/repository/models/nothing-here/unload").status_code == 404


def test_explicit_control_refuses_to_start_without_an_admin_key(repository, start_service):
    proc = start_service(repository, "--model-control", "explicit", wait=False)
    assert proc.proc.wait(timeout=60) != 0
    assert "admin_key" in proc.log()


def test_without_explicit_control_load_and_unload_are_refused(repository, start_service):
    server = start_service(repository, env={"AFRNN_ADMIN_KEY": ADMIN_KEY})
    with server.client(api_key=ADMIN_KEY) as admin:
        r = admin.post("/v2/repository/models/digits/load")
        assert r.status_code == 400 and "explicit" in r.json()["error"]
        assert admin.post("/v2/repository/index").status_code == 200
    with server.client(api_key=None) as c:
        assert c.post("/v2/repository/models/digits/load", headers=ADMIN).status_code == 400


def test_a_client_that_leaves_mid_body_is_one_info_line_and_a_499(service, read_metric):
    with socket.create_connection(("127.0.0.1", service.port)) as s:
        s.sendall(b"POST /classify HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                  b"X-API-Key: " + API_KEY.encode() + b"\r\nContent-Length: 5000\r\n\r\n{\"pixels\": [1, 2")
    deadline = time.monotonic() + 10
    while "client disconnected" not in service.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = service.log()
    assert "client disconnected before its request body was complete" in log
    assert "Exception in ASGI application" not in log and "unhandled error" not in log
    with service.client() as c:
        metrics = c.get("/metrics").text
    assert read_metric(metrics, "afrnn_http_requests_total", {"route": "/classify", "status": "499"}) >= 1
    assert read_metric(metrics, "afrnn_errors_total", {"kind": "client_disconnected"}) >= 1


def test_a_triton_error_is_an_inference_server_exception(explicit):
    client = triton.InferenceServerClient(url=explicit.url.removeprefix("http://"))
    try:
        with pytest.raises(InferenceServerException, match="not a model name"):
            client.load_model("..", headers=dict(ADMIN))
    finally:
        client.close()


def test_the_typed_client_drives_the_repository(explicit, repository):
    from afrnn_client import AfrnnClient, ApiError

    with AfrnnClient(explicit.url, api_key=ADMIN_KEY) as admin:
        assert any(e.name == "digits" and e.state == "READY" for e in admin.index())
        result = admin.load("pendulum")
        assert result.serving_version == "1" and result.error is None
        assert admin.unload("pendulum").unloaded == ["1"]
        assert admin.load("pendulum").loaded == ["1"]
        with pytest.raises(ApiError) as err:
            admin.load("../etc")
        assert err.value.status == 400 and "not a model name" in str(err.value)
    with AfrnnClient(explicit.url, api_key=API_KEY) as user:
        versions = user.versions("digits")
        assert versions and all(v.status == "ready" for v in versions)
        assert [v.version for v in versions] == sorted(v.version for v in versions)
