"""The Open Inference Protocol (KServe V2) against a real server, through Triton's own client
(``tritonclient.http``) and raw httpx: metadata, configuration, JSON and binary tensors for both model
kinds equal to our routes' answers bit for bit, sequences, and the protocol's error form."""

import numpy as np
import pytest
import tritonclient.http as triton
from tritonclient.utils import InferenceServerException

from tests.service.conftest import API_KEY


def key() -> dict[str, str]:
    """A fresh header dict per call: tritonclient adds Inference-Header-Content-Length to the dict given."""
    return {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def triton_client(service):
    client = triton.InferenceServerClient(url=service.url.removeprefix("http://"), network_timeout=60)
    yield client
    client.close()


def _images(seed: int, n: int, width: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, size=(n, width), dtype=np.uint8)


def _classify(client, model: str, images: np.ndarray, scale: int) -> dict:
    values = images.tolist() if scale == 255 else [[float(v) for v in row] for row in images]
    r = client.post("/classify", json={"model": model, "images": values, "scale": scale})
    assert r.status_code == 200, r.text
    return r.json()


def test_server_metadata_health_and_the_extensions(triton_client):
    assert triton_client.is_server_live() and triton_client.is_server_ready()
    meta = triton_client.get_server_metadata()
    assert meta["name"] == "afrnn-serving"
    assert {"binary_tensor_data", "sequence", "model_repository"} <= set(meta["extensions"])


def test_model_metadata_and_config_describe_the_tensors(triton_client):
    meta = triton_client.get_model_metadata("mnist", headers=key())
    assert meta["versions"] == ["1"]
    assert meta["inputs"] == [{"name": "pixels", "datatype": "UINT8", "shape": [-1, 784]}]
    outputs = {o["name"]: o for o in meta["outputs"]}
    assert outputs["label"]["datatype"] == "INT64" and outputs["probabilities"]["shape"] == [-1, 10]
    assert triton_client.is_model_ready("mnist", headers=key())
    config = triton_client.get_model_config("mnist", headers=key())
    assert config["max_batch_size"] >= 1
    assert config["input"] == [{"name": "pixels", "data_type": "TYPE_UINT8", "dims": [784]}]
    pendulum = triton_client.get_model_metadata("pendulum", headers=key())
    assert pendulum["inputs"] == [{"name": "initial_state", "datatype": "FP32", "shape": [-1, 4]}]


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
@pytest.mark.parametrize("model,width", [("mnist", 784), ("cifar10", 3072)])
def test_uint8_pixels_answer_exactly_what_classify_answers(triton_client, client, binary, model, width):
    images = _images(7, 3, width)
    pixels = triton.InferInput("pixels", list(images.shape), "UINT8")
    pixels.set_data_from_numpy(images, binary_data=binary)
    outputs = [triton.InferRequestedOutput(n, binary_data=binary) for n in ("label", "probabilities")]
    result = triton_client.infer(model, [pixels], outputs=outputs, headers=key())
    ours = _classify(client, model, images, 255)
    probabilities = result.as_numpy("probabilities")
    assert probabilities.dtype == np.float32 and probabilities.shape[0] == 3
    expected = np.array([p["probabilities"] for p in ours["predictions"]], dtype=np.float32)
    assert np.array_equal(probabilities, expected)                      # bit for bit
    assert result.as_numpy("label").tolist() == [p["label"] for p in ours["predictions"]]


def test_fp32_pixels_in_0_1_answer_what_classify_answers_at_scale_1(triton_client, client):
    images = (_images(8, 2, 784) / np.float32(255)).astype(np.float32)
    pixels = triton.InferInput("pixels", list(images.shape), "FP32")
    pixels.set_data_from_numpy(images)
    result = triton_client.infer("mnist", [pixels], headers=key())
    ours = _classify(client, "mnist", images, 1)
    expected = np.array([p["probabilities"] for p in ours["predictions"]], dtype=np.float32)
    assert np.array_equal(result.as_numpy("probabilities"), expected)


def test_the_anytime_outputs_on_request(triton_client, client):
    images = _images(9, 1, 784)
    pixels = triton.InferInput("pixels", [1, 784], "UINT8")
    pixels.set_data_from_numpy(images)
    outputs = [triton.InferRequestedOutput("sequence_labels"), triton.InferRequestedOutput("label")]
    result = triton_client.infer("mnist", [pixels], outputs=outputs, headers=key())
    r = client.post("/classify", json={"model": "mnist", "pixels": images[0].tolist(), "scale": 255,
                                       "return_sequence": True})
    assert result.as_numpy("sequence_labels").tolist() == [r.json()["predictions"][0]["sequence"]["labels"]]
    assert result.as_numpy("probabilities") is None                    # not asked for


def test_pendulum_trajectory_equals_the_json_route(triton_client, client):
    states = np.array([[0.5, -0.25, 0.125, 0.0], [-1.0, 0.75, 0.0, -0.5]], dtype=np.float32)
    x0 = triton.InferInput("initial_state", [2, 4], "FP32")
    x0.set_data_from_numpy(states)
    result = triton_client.infer("pendulum", [x0], parameters={"steps": 40}, headers=key())
    trajectory = result.as_numpy("trajectory")
    assert trajectory.shape == (2, 40, 4)
    names = ("theta1", "theta2", "omega1", "omega2")
    r = client.post("/pendulum/predict", json={
        "model": "pendulum", "steps": 40, "units": "radians",
        "initial_states": [dict(zip(names, map(float, row), strict=True)) for row in states]})
    assert r.status_code == 200, r.text
    expected = np.array([t["predicted"] for t in r.json()["trajectories"]])
    assert np.array_equal(trajectory.astype(np.float64), expected)
    assert np.allclose(result.as_numpy("times"), r.json()["times"])


def test_a_sequence_in_two_parts_equals_the_whole(triton_client, client):
    image = _images(11, 1, 784)
    answers = []
    for part, (start, end) in enumerate([(0, 300), (300, 784)]):
        chunk = triton.InferInput("pixels", [1, end - start], "UINT8")
        chunk.set_data_from_numpy(np.ascontiguousarray(image[:, start:end]))
        answers.append(triton_client.infer("mnist", [chunk], sequence_id=4242, sequence_start=part == 0,
                                           sequence_end=part == 1, headers=key()))
    whole = _classify(client, "mnist", image, 255)["predictions"][0]
    final = answers[-1]
    assert final.as_numpy("label").tolist() == [whole["label"]]
    np.testing.assert_allclose(final.as_numpy("probabilities")[0], whole["probabilities"], atol=1e-5)
    # the sequence has ended: its id is unknown now
    chunk = triton.InferInput("pixels", [1, 4], "UINT8")
    chunk.set_data_from_numpy(image[:, :4])
    with pytest.raises(InferenceServerException, match="unknown sequence_id"):
        triton_client.infer("mnist", [chunk], sequence_id=4242, headers=key())


def test_string_sequence_ids_and_unknown_ids(triton_client):
    chunk = triton.InferInput("pixels", [1, 28], "UINT8")
    chunk.set_data_from_numpy(_images(12, 1, 28))
    with pytest.raises(InferenceServerException) as err:
        triton_client.infer("mnist", [chunk], sequence_id="never-started", headers=key())
    assert err.value.status() == "400"
    first = triton_client.infer("mnist", [chunk], sequence_id="s-1", sequence_start=True, headers=key())
    assert first.get_response()["parameters"]["sequence_steps"] == 28


@pytest.mark.parametrize("body,rule", [
    ({"inputs": [{"name": "image", "datatype": "UINT8", "shape": [1, 784], "data": [0] * 784}]}, "pixels"),
    ({"inputs": [{"name": "pixels", "datatype": "INT7", "shape": [1, 784], "data": [0] * 784}]}, "datatype"),
    ({"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 783], "data": [0] * 783}]}, "[n, 784]"),
    ({"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 784], "data": [0] * 5}]}, "needs 784"),
    ({"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 784], "data": [300] * 784}]},
     "[0, 255]"),
    ({"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 784], "data": [2.0] * 784}]}, "[0, 1]"),
    ({"inputs": []}, "inputs"),
    ({"inputs": [{"name": "pixels", "datatype": "UINT8", "shape": [1, 784], "data": [0] * 784}],
      "outputs": [{"name": "logits"}]}, "unknown outputs"),
])
def test_bad_requests_get_400_with_an_error_naming_the_rule(client, body, rule):
    r = client.post("/v2/models/mnist/infer", json=body)
    assert r.status_code == 400, r.text
    assert rule in r.json()["error"]


def test_binary_header_length_and_sizes_are_checked(client):
    header = b'{"inputs":[{"name":"pixels","datatype":"UINT8","shape":[1,784],' \
             b'"parameters":{"binary_data_size":784}}]}'
    ok = client.post("/v2/models/mnist/infer", content=header + bytes(784),
                     headers={"Inference-Header-Content-Length": str(len(header))})
    assert ok.status_code == 200, ok.text
    short = client.post("/v2/models/mnist/infer", content=header + bytes(700),
                        headers={"Inference-Header-Content-Length": str(len(header))})
    assert short.status_code == 400 and "passes the end of the body" in short.json()["error"]
    wrong = client.post("/v2/models/mnist/infer", content=header + bytes(784),
                        headers={"Inference-Header-Content-Length": "99999"})
    assert wrong.status_code == 400 and "Inference-Header-Content-Length" in wrong.json()["error"]


def test_unknown_models_versions_and_keys_use_the_protocols_error_form(client, service):
    assert client.post("/v2/models/nope/infer", json={"inputs": []}).status_code == 404
    missing = client.get("/v2/models/mnist/versions/7")
    assert missing.status_code == 404 and "no version 7" in missing.json()["error"]
    assert client.get("/v2/models/mnist/versions/x").status_code == 400
    with service.client(api_key=None) as anonymous:
        r = anonymous.post("/v2/models/mnist/infer", json={"inputs": []})
        assert r.status_code == 401 and "API key" in r.json()["error"]
        assert anonymous.get("/v2/health/ready").status_code == 200        # probes stay open
    unavailable = client.get("/v2/models/corrupt")
    assert unavailable.status_code == 503 and "unavailable" in unavailable.json()["error"]


def test_the_protocol_guides_python_examples_run(model_dir, start_service):
    """docs/open-inference-protocol.md's tritonclient examples, as written, against a server without a key
    (the shared tiny models stand in for the shipped ones)."""
    import re
    from pathlib import Path

    server = start_service(model_dir, "--readiness-policy", "any")
    guide = (Path(__file__).resolve().parents[2] / "docs" / "open-inference-protocol.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", guide, re.S)
    namespace: dict = {}
    for block in blocks[:2]:                       # infer, then the sequence (it reuses the first's names)
        exec(block.replace("127.0.0.1:8000", server.url.removeprefix("http://")), namespace)
    assert namespace["result"].as_numpy("label").shape == (1,)


@pytest.mark.parametrize("model", ["mnist", "pendulum"])
def test_the_declared_outputs_are_the_signatures(triton_client, model):
    """V2_OUTPUTS, which the infer route checks requests against, is what the metadata declares."""
    meta = triton_client.get_model_metadata(model, headers=key())
    from service.tasks import TASK_APIS
    declared = {o["name"] for o in meta["outputs"]}
    assert any(api.V2_OUTPUTS == declared for api in TASK_APIS.values())


def test_a_sequence_start_with_values_out_of_range_is_refused_and_opens_nothing(client):
    body = {"inputs": [{"name": "pixels", "datatype": "FP32", "shape": [1, 3], "data": [0.5, 2.0, 0.1]}],
            "parameters": {"sequence_id": "refused-start", "sequence_start": True}}
    r = client.post("/v2/models/mnist/infer", json=body)
    assert r.status_code == 400 and "[0, 1]" in r.json()["error"] and "flat index 1" in r.json()["error"]
    body["parameters"] = {"sequence_id": "refused-start"}
    body["inputs"][0]["data"] = [0.5, 0.5, 0.1]
    after = client.post("/v2/models/mnist/infer", json=body)
    assert after.status_code == 400 and "unknown sequence_id" in after.json()["error"]
