"""POST /models/{name}/stability and GET /models/{name}/stability.png: the report is
``model.stability.stability_report`` of the served artifact, cached for the default input, computed
for a given sample with the same normalisation as /classify, and bad options are 422."""

import asyncio
import io

import numpy as np
import pytest
import torch
from PIL import Image

from artifact.export import export_torchscript, load_exported
from model import paper_model
from model.stability import stability_report
from physics.encoding import network_inputs
from service.errors import InputError
from service.registry import READY, ServedModel
from service.stability import StabilityReports
from service.tasks import build_task_api
from training.data import mnist


def test_default_report_is_the_analysis_of_the_served_model_and_is_cached(service, client, model_dir,
                                                                          read_metric):
    body = {"sections": ["theorem", "lyapunov"], "lyapunov_k": 4}
    first = client.post("/models/mnist/stability", json=body)
    assert first.status_code == 200, first.text
    report = first.json()
    module, manifest = load_exported(model_dir / "mnist.json")
    expected = stability_report(module, None, sections=["theorem", "lyapunov"], lyapunov_k=4,
                                sequence_length=784, input_size=1)
    assert report["summary"]["verdict"] == expected.summary.verdict
    assert report["summary"]["theorem_holds"] is True
    np.testing.assert_allclose(report["lyapunov"]["exponents"], expected.lyapunov.exponents, rtol=1e-6)
    assert report["model"]["steps"] == 784 and report["model"]["input"] == "zeros"
    hits = read_metric(service.client().get("/metrics").text, "afrnn_stability_reports_total",
                       {"model": "mnist", "cache": "hit"})
    second = client.post("/models/mnist/stability",
                         json={"lyapunov_k": 4, "sections": ["lyapunov", "theorem"]})
    assert second.json() == report                         # same key (sections in any order): cached
    after = read_metric(service.client().get("/metrics").text, "afrnn_stability_reports_total",
                        {"model": "mnist", "cache": "hit"})
    assert after == hits + 1


def test_a_given_image_is_normalised_as_for_classify(client, model_dir, oracle):
    image = oracle.random_image(5, (28, 28))
    r = client.post("/models/mnist/stability",
                    json={"pixels": image, "scale": 255, "sections": ["trajectory"]})
    assert r.status_code == 200, r.text
    report = r.json()
    assert report["model"]["input"] == "given"
    module, _ = load_exported(model_dir / "mnist.json")
    x = torch.tensor(image, dtype=torch.float32).reshape(1, 784, 1) / 255
    x = (x - mnist.MNIST_MEAN[0]) / mnist.MNIST_STD[0]
    expected = stability_report(module, x, sections=["trajectory"])
    assert report["summary"] == expected.summary.model_dump(mode="json")


def test_pendulum_report_uses_the_trained_protocol(client, model_dir):
    r = client.post("/models/pendulum/stability", json={"initial_state": {"theta1": 30, "theta2": -10,
                                                                          "omega1": 0, "omega2": 5},
                                                        "sections": ["gradients"]})
    assert r.status_code == 200, r.text
    module, _ = load_exported(model_dir / "pendulum.json")
    x0 = torch.tensor([[np.radians(30), np.radians(-10), 0.0, np.radians(5)]], dtype=torch.float32)
    expected = stability_report(module, network_inputs(x0, 29), sections=["gradients"])
    assert r.json()["summary"] == expected.summary.model_dump(mode="json")
    default = client.post("/models/pendulum/stability", json={"sections": ["gradients"]}).json()
    assert default["model"]["steps"] == 29 and default["model"]["input"] == "given"   # s₀ = 0, then 1.0


def test_stability_png_is_a_cached_png(client):
    r = client.get("/models/cifar10/stability.png", params={"lyapunov_k": 4})
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    image = Image.open(io.BytesIO(r.content))
    assert image.format == "PNG" and image.size[0] > 100
    assert client.get("/models/cifar10/stability.png", params={"lyapunov_k": 4}).content == r.content


@pytest.mark.parametrize("path, body, loc, rule", [
    ("/models/mnist/stability", {"sections": ["theorem", "vibes"]}, ["body", "sections"], "unknown section"),
    ("/models/mnist/stability", {"sections": []}, ["body", "sections"], "at least one"),
    ("/models/mnist/stability", {"lyapunov_k": 17}, ["body", "lyapunov_k"], "state size D = 16"),
    ("/models/mnist/stability", {"lyapunov_k": 0}, ["body", "lyapunov_k"], "greater than"),
    ("/models/mnist/stability", {"pixels": [0] * 10, "scale": 255}, ["body", "pixels"], "shape (10,)"),
    ("/models/mnist/stability", {"initial_state": {"theta1": 0, "theta2": 0, "omega1": 0, "omega2": 0}},
     ["body", "initial_state"], "classifier"),
    ("/models/pendulum/stability", {"pixels": [0] * 784, "scale": 255}, ["body", "pixels"], "pendulum"),
    ("/models/pendulum/stability", {"initial_state": {"theta1": 100, "theta2": 0, "omega1": 0, "omega2": 0}},
     ["body", "initial_state", "theta1"], "outside"),
])
def test_bad_options_are_422(client, path, body, loc, rule):
    r = client.post(path, json=body)
    assert r.status_code == 422, r.text
    issue = r.json()["detail"][0]
    assert issue["loc"][:len(loc)] == loc and rule in issue["msg"], issue


@pytest.mark.parametrize("model,body,field", [
    ("mnist", {"steps": 10}, "steps"),                                  # pendulum option on a classifier
    ("mnist", {"units": "radians", "pixels": [0] * 784, "scale": 255}, "units"),
    ("mnist", {"scale": 255}, "scale"),                                 # a sample option without the sample
    ("pendulum", {"scale": 255}, "scale"),
    ("pendulum", {"steps": 12}, "steps"),
])
def test_sample_options_that_do_not_apply_are_422(client, model, body, field):
    r = client.post(f"/models/{model}/stability", json=body)
    assert r.status_code == 422, r.text
    assert r.json()["detail"][0]["loc"][:2] == ["body", field]


def test_bad_png_query_is_422_and_unknown_model_404(client):
    r = client.get("/models/mnist/stability.png", params={"sections": "nope"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["query", "sections"]
    r = client.get("/models/mnist/stability.png", params={"sections": ["theorem", "discrete"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"][:2] == ["query", "sections"]
    assert "figure" in r.json()["detail"][0]["msg"]
    assert client.post("/models/none/stability", json={}).status_code == 404
    assert client.get("/models/corrupt/stability.png").status_code == 503


def test_a_rule_of_the_analysis_is_a_422_naming_the_request_field(tmp_path, manifest_fields):
    """The analysis's own rules (an LSTM has no spectrum; x must be finite) reach the client as
    InputErrors whose loc is the request field the argument came from."""
    torch.manual_seed(0)
    lstm = paper_model("mnist", "lstm", hidden_size=4, num_layers=1).eval()
    export_torchscript(lstm, tmp_path, manifest_fields(lstm, "mnist-lstm", "mnist"))
    module, manifest = load_exported(tmp_path / "mnist-lstm.json")
    entry = ServedModel(manifest.name, tmp_path / "mnist-lstm.json", manifest, state=READY,
                        api=build_task_api(manifest, module, torch.device("cpu")))
    reports = StabilityReports(cache_size=0)
    try:
        with pytest.raises(InputError, match=r"\['spectrum'\] do not apply to an LSTM") as caught:
            asyncio.run(reports.report(entry, ("spectrum",), 4))
        assert caught.value.loc == ("sections",)
        with pytest.raises(InputError, match="x must contain only finite values") as caught:
            asyncio.run(reports.report(entry, None, 4, torch.full((1, 784, 1), float("nan"))))
        assert caught.value.loc == ("pixels",)
    finally:
        reports.close()
