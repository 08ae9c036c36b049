"""POST /classify against a real uvicorn process: every input layout, batching, and each 422/404. The
layout tests go through ``afrnn_client``; the error tests check the raw wire bodies."""

import asyncio
import base64
import io

import numpy as np
import pytest
import torch
from PIL import Image

from afrnn_client import AfrnnClient


@pytest.fixture(scope="module")
def api(service):
    with AfrnnClient(service.url, api_key="test-key") as c:
        yield c


def png_base64(pixels_255, shape: tuple[int, ...]) -> str:
    mode = "L" if len(shape) == 2 else "RGB"
    image = Image.fromarray(np.asarray(pixels_255, dtype=np.uint8).reshape(shape), mode)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return base64.b64encode(buffer.getvalue()).decode()


def assert_matches(prediction: dict, expected: torch.Tensor, class_names=None) -> None:
    got = torch.tensor(prediction["probabilities"])
    torch.testing.assert_close(got, expected.float(), rtol=0, atol=1e-5)
    assert prediction["label"] == int(expected.argmax())
    if class_names:
        assert prediction["class_name"] == class_names[prediction["label"]]


def test_one_mnist_image_in_every_layout_gives_the_models_probabilities(api, oracle):
    flat = oracle.random_image(10, (784,))
    expected = oracle.probabilities("mnist", flat)
    grid = np.asarray(flat).reshape(28, 28)
    layouts = [
        {"pixels": flat, "scale": 255},
        {"pixels": grid.tolist(), "scale": 255},
        {"pixels": grid[..., None].tolist(), "scale": 255},
        {"pixels": (np.asarray(flat) / 255.0).tolist(), "scale": 1},
        {"pixels": png_base64(flat, (28, 28))},
        {"pixels": "data:image/png;base64," + png_base64(flat, (28, 28))},
    ]
    for layout in layouts:
        body = api.classify(model="mnist", **layout)
        assert body.model == "mnist" and body.version == "0.1.0-test"
        assert len(body.predictions) == 1
        assert_matches(body.predictions[0].model_dump(), expected, [str(d) for d in range(10)])
        assert body.latency_ms > 0 and body.inference_ms > 0 and body.batch_size >= 1


def test_cifar10_layouts_interleave_rgb_per_pixel(api, oracle):
    hwc = oracle.random_image(11, (32, 32, 3))
    expected = oracle.probabilities("cifar10", hwc)
    arr = np.asarray(hwc)
    layouts = (arr.reshape(-1).tolist(), arr.reshape(1024, 3).tolist(), hwc, png_base64(hwc, (32, 32, 3)))
    for pixels in layouts:
        prediction = api.classify(model="cifar10", pixels=pixels, scale=255).predictions[0]
        names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
        assert_matches(prediction.model_dump(), expected, names)


def test_a_batch_keeps_request_order(client, oracle):
    images = [oracle.random_image(20 + i, (784,)) for i in range(5)]
    r = client.post("/classify", json={"model": "mnist", "images": images, "scale": 255})
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    assert len(predictions) == 5
    for prediction, image in zip(predictions, images, strict=True):
        assert_matches(prediction, oracle.probabilities("mnist", image))


def test_top_k_and_the_anytime_sequence(client, oracle):
    image = oracle.random_image(30, (784,))
    r = client.post("/classify", json={"model": "mnist", "pixels": image, "scale": 255, "top_k": 3,
                                       "return_sequence": True})
    assert r.status_code == 200, r.text
    prediction = r.json()["predictions"][0]
    every = oracle.probabilities("mnist", image, every_step=True)          # (784, 10)
    top = torch.topk(every[-1], 3)
    assert [c["label"] for c in prediction["top_k"]] == top.indices.tolist()
    np.testing.assert_allclose([c["probability"] for c in prediction["top_k"]], top.values, atol=1e-5)
    sequence = prediction["sequence"]
    assert len(sequence["labels"]) == len(sequence["confidence"]) == 784
    agree = np.mean(np.asarray(sequence["labels"]) == every.argmax(dim=1).numpy())
    assert agree > 0.99                                     # ties within 1e-5 may flip an argmax
    np.testing.assert_allclose(sequence["confidence"], every.max(dim=1).values, atol=1e-5)
    assert sequence["labels"][-1] == prediction["label"]


def test_concurrent_requests_are_batched_and_equal_single_requests(service, client, oracle):
    images = [oracle.random_image(100 + i, (784,)) for i in range(12)]
    single = [client.post("/classify", json={"model": "mnist", "pixels": im, "scale": 255}).json()
              for im in images]

    async def burst():
        async with service.async_client() as ac:
            return await asyncio.gather(*(ac.post("/classify", json={"model": "mnist", "pixels": im,
                                                                      "scale": 255}) for im in images))

    responses = asyncio.run(burst())
    assert all(r.status_code == 200 for r in responses)
    assert max(r.json()["batch_size"] for r in responses) > 1, "the burst was never batched"
    for r, alone, image in zip(responses, single, images, strict=True):
        batched = torch.tensor(r.json()["predictions"][0]["probabilities"])
        torch.testing.assert_close(batched, torch.tensor(alone["predictions"][0]["probabilities"]),
                                   rtol=0, atol=1e-5)
        assert_matches(r.json()["predictions"][0], oracle.probabilities("mnist", image))


def test_model_may_be_omitted_only_when_one_classifier_is_served(client):
    r = client.post("/classify", json={"pixels": [0] * 784, "scale": 255})
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "model"]
    assert "model is required" in r.json()["detail"][0]["msg"]
    assert "output.kind 'classes'" in r.json()["detail"][0]["msg"]


def _rule(response) -> tuple[list, str]:
    assert response.status_code == 422, response.text
    issue = response.json()["detail"][0]
    return issue["loc"], issue["msg"]


@pytest.mark.parametrize("body, loc, rule", [
    ({"model": "mnist", "pixels": [0] * 783, "scale": 255}, ["body", "pixels"], "shape (783,)"),
    ({"model": "mnist", "pixels": [[0] * 27] * 28, "scale": 255}, ["body", "pixels"], "accepted shapes"),
    ({"model": "mnist", "pixels": [0] * 783 + [256], "scale": 255}, ["body", "pixels"], "lie in [0, 255]"),
    ({"model": "mnist", "pixels": [0] * 783 + [1.5], "scale": 1}, ["body", "pixels"], "must lie in [0, 1]"),
    ({"model": "mnist", "pixels": [0] * 783 + [-1], "scale": 255}, ["body", "pixels"], "must lie in"),
    ({"model": "mnist", "pixels": [0] * 784}, ["body", "scale"], "scale is required"),
    ({"model": "mnist", "pixels": [0] * 784, "scale": 100}, ["body", "scale"], "255"),
    ({"model": "mnist", "pixels": ["a"] * 784, "scale": 255}, ["body", "pixels"], "array of numbers"),
    ({"model": "mnist", "pixels": [[0] * 784, [0]], "scale": 255}, ["body", "pixels"], "rectangular"),
    ({"model": "mnist", "pixels": [0] * 783 + [True], "scale": 255}, ["body", "pixels"], "a boolean"),
    ({"model": "mnist", "pixels": [[0.5] * 28] * 27 + [[0.5] * 27 + [False]], "scale": 1}, ["body", "pixels"],
     "a boolean"),
    ({"model": "mnist", "images": [[0] * 784, [1] * 783 + [True]], "scale": 255}, ["body", "images", 1],
     "a boolean"),
    ({"model": "mnist", "pixels": "not base64!", "scale": 255}, ["body", "pixels"], "base64"),
    ({"model": "mnist", "pixels": base64.b64encode(b"GIF89a...").decode()}, ["body", "pixels"], "PNG"),
    ({"model": "mnist", "images": [[0] * 784, [0] * 10], "scale": 255}, ["body", "images", 1], "shape (10,)"),
    ({"model": "mnist", "images": [[0] * 784] * 65, "scale": 255}, ["body", "images"], "at most"),
    ({"model": "mnist", "images": [], "scale": 255}, ["body", "images"], "at least 1"),
    ({"model": "mnist", "pixels": [0] * 784, "images": [[0] * 784], "scale": 255}, ["body"], "exactly one"),
    ({"model": "mnist", "scale": 255}, ["body"], "exactly one"),
    ({"model": "mnist", "pixels": [0] * 784, "scale": 255, "top_k": 11}, ["body", "top_k"], "≤ the number"),
    ({"model": "mnist", "pixels": [0] * 784, "scale": 255, "top_k": 0}, ["body", "top_k"], "greater than"),
    ({"model": "mnist", "pixels": [0] * 784, "scale": 255, "top_k": True}, ["body", "top_k"], "integer"),
    ({"model": "mnist", "pixels": [0] * 784, "scale": 255, "colour": 1}, ["body", "colour"], "Extra inputs"),
    ({"model": "pendulum", "pixels": [0] * 784, "scale": 255}, ["body", "model"],
     "its output.kind is 'states', this endpoint serves output.kind 'classes'"),
])
def test_invalid_input_gets_422_naming_field_and_rule(client, body, loc, rule):
    got_loc, msg = _rule(client.post("/classify", json=body))
    assert got_loc[:len(loc)] == loc, (got_loc, msg)
    assert rule in msg, msg


def test_png_of_the_wrong_size_is_rejected(client, oracle):
    png = png_base64(oracle.random_image(1, (32, 32, 3)), (32, 32, 3))
    loc, msg = _rule(client.post("/classify", json={"model": "mnist", "pixels": png}))
    assert loc == ["body", "pixels"] and "32×32" in msg and "28×28" in msg


def test_png_bomb_header_is_a_422_not_a_500(client):
    """An 88-byte PNG whose header claims 20000×20000 pixels (Pillow's decompression-bomb guard)."""
    import base64
    import struct
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 20000, 20000, 8, 0, 0, 0, 0)
    png = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\0")) + \
        chunk(b"IEND", b"")
    loc, msg = _rule(client.post("/classify", json={"model": "mnist",
                                                    "pixels": base64.b64encode(png).decode()}))
    assert loc == ["body", "pixels"] and "pixels" in msg and "28×28" in msg


def test_nan_and_infinity_are_rejected(client):
    for token in ("NaN", "Infinity", "-Infinity"):
        body = '{"model": "mnist", "scale": 1, "pixels": [' + "0, " * 783 + token + "]}"
        loc, msg = _rule(client.post("/classify", content=body, headers={"content-type": "application/json"}))
        assert loc == ["body", "pixels"] and "finite" in msg


def test_malformed_json_is_a_422_not_a_500(client):
    r = client.post("/classify", content=b'{"model": "mnist", "pixels": [0, 1', headers={
        "content-type": "application/json"})
    assert r.status_code == 422


def test_unknown_model_is_404(client):
    r = client.post("/classify", json={"model": "mnistt", "pixels": [0] * 784, "scale": 255})
    assert r.status_code == 404
    assert r.json()["detail"].startswith("unknown model 'mnistt'")
