"""GET /models and /models/{name}: the wire shape, load status, checksum verification, and the models
that must not be served (a corrupted artifact, an unparsable manifest). All but the wire-shape test go
through ``afrnn_client``."""

import json

import pytest

from afrnn_client import NO_RETRY, AfrnnClient, ApiError
from model import count_parameters


@pytest.fixture(scope="module")
def api(service):
    with AfrnnClient(service.url, api_key="test-key", retry=NO_RETRY) as c:
        yield c

WIRE_KEYS = {"name", "task", "variant", "parameters", "status", "reason", "device", "metrics"}


def test_models_lists_every_manifest_with_its_status(client, tiny_models):
    r = client.get("/models")
    assert r.status_code == 200
    models = {m["name"]: m for m in r.json()["models"]}
    assert set(models) == {"mnist", "cifar10", "pendulum", "corrupt", "garbled"}
    for entry in models.values():
        assert WIRE_KEYS <= set(entry)
    for name in ("mnist", "cifar10", "pendulum"):
        entry = models[name]
        assert entry["status"] == "ready" and entry["reason"] is None
        assert entry["task"] == name and entry["variant"] == "afrnn" and entry["device"] == "cpu"
        assert entry["parameters"] == count_parameters(tiny_models[name])
        assert entry["checksum_verified"] is True
        assert entry["metrics"] == {"test_accuracy": 0.1}
        assert entry["description"] == f"a tiny {name} model with random weights"    # from its manifest


def test_a_corrupted_artifact_is_refused_and_reported_unavailable(api):
    corrupt = {m.name: m for m in api.models().models}["corrupt"]
    assert corrupt.status == "unavailable"
    assert corrupt.checksum_verified is False
    assert "SHA-256" in corrupt.reason and "refusing to load" in corrupt.reason
    with pytest.raises(ApiError) as err:
        api.classify(model="corrupt", pixels=[0] * 784, scale=255)
    assert err.value.status == 503
    assert "unavailable" in err.value.detail and "SHA-256" in err.value.detail


def test_an_unparsable_manifest_is_reported_unavailable(api):
    garbled = api.model("garbled")
    assert garbled.status == "unavailable" and garbled.manifest is None
    assert garbled.reason.startswith("invalid manifest garbled.json")


def test_model_detail_is_the_manifest_plus_load_status(api, model_dir):
    body = api.model("pendulum")
    assert body.manifest == json.loads((model_dir / "pendulum.json").read_text())
    assert body.status == "ready" and body.checksum_verified is True and body.device == "cpu"
    assert body.load_seconds > 0 and body.queue_depth == 0


def test_unknown_model_detail_is_404(api):
    with pytest.raises(ApiError) as err:
        api.model("nope")
    assert err.value.status == 404
    assert "served models" in err.value.detail
