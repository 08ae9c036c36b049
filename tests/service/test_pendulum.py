"""POST /pendulum/predict against a real uvicorn process: the model's rollout in both unit systems,
the physics reference, mixed-length batching, and each 422."""

import asyncio
import math

import numpy as np
import pytest
import torch

from physics.pendulum import simulate, total_energy

STATE = {"theta1": 30.0, "theta2": -10.0, "omega1": 0.0, "omega2": 5.0}
NAMES = ("theta1", "theta2", "omega1", "omega2")


def radians(state: dict) -> list[float]:
    return [math.radians(state[n]) for n in NAMES]


def test_rollout_in_degrees_is_the_models_prediction(client, oracle):
    r = client.post("/pendulum/predict", json={"initial_state": STATE, "units": "degrees", "steps": 29,
                                               "model": "pendulum"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "pendulum" and body["units"] == "degrees" and body["dt"] == pytest.approx(0.1)
    np.testing.assert_allclose(body["times"], 0.1 * np.arange(1, 30), atol=1e-9)
    assert body["trained_steps"] == 29 and body["extrapolated"] is False
    (trajectory,) = body["trajectories"]
    assert trajectory["reference"] is None and trajectory["mse"] is None
    expected = np.degrees(oracle.pendulum([radians(STATE)], 29)[0].numpy())
    np.testing.assert_allclose(trajectory["predicted"], expected, atol=1e-3)   # degrees: 1e-5 rad × 57
    # the prediction's energy comes without the reference (no solver run): its drift is visible
    energy = trajectory["energy"]
    assert energy["reference"] is None
    assert energy["initial"] == pytest.approx(float(total_energy(np.asarray(radians(STATE)))))
    np.testing.assert_allclose(energy["predicted"], total_energy(np.radians(expected)), rtol=1e-4, atol=1e-4)


def test_radians_and_degrees_agree(client):
    deg = client.post("/pendulum/predict", json={"initial_state": STATE}).json()
    rad_state = dict(zip(NAMES, radians(STATE), strict=True))
    rad = client.post("/pendulum/predict", json={"initial_state": rad_state, "units": "radians"}).json()
    assert (rad["units"], rad["mse_units"], deg["mse_units"]) == ("radians", "radians²", "degrees²")
    np.testing.assert_allclose(np.degrees(rad["trajectories"][0]["predicted"]),
                               deg["trajectories"][0]["predicted"], atol=1e-6)
    assert len(deg["times"]) == 29                      # the default is the trained horizon


def test_include_reference_is_the_physics_solution(client):
    r = client.post("/pendulum/predict", json={"initial_state": STATE, "steps": 12,
                                               "include_reference": True})
    assert r.status_code == 200, r.text
    (trajectory,) = r.json()["trajectories"]
    x0 = np.asarray(radians(STATE))
    physics = simulate(x0[None], 12, 0.1)[0]                           # rows 0 … 12, radians
    np.testing.assert_allclose(trajectory["reference"], np.degrees(physics[1:]), rtol=1e-7, atol=1e-7)
    predicted = np.asarray(trajectory["predicted"])
    step_mse = ((predicted - np.degrees(physics[1:])) ** 2).mean(axis=1)
    np.testing.assert_allclose(trajectory["step_mse"], step_mse, rtol=1e-6)
    assert trajectory["mse"] == pytest.approx(step_mse.mean(), rel=1e-6)
    assert r.json()["mse_units"] == "degrees²"                          # the default units: degrees
    energy = trajectory["energy"]
    assert energy["initial"] == pytest.approx(float(total_energy(x0)))
    np.testing.assert_allclose(energy["reference"], total_energy(physics[1:]), rtol=1e-9)
    np.testing.assert_allclose(energy["predicted"], total_energy(np.radians(predicted)), rtol=1e-6, atol=1e-6)
    # the integrator conserves energy: a check that the reference is a real solution
    np.testing.assert_allclose(energy["reference"], energy["initial"], atol=1e-6)


def test_mixed_lengths_batched_together_equal_their_single_rollouts(service, client, oracle):
    rng = np.random.default_rng(7)
    requests = [{"initial_states": [dict(zip(NAMES, rng.uniform(-80, 80, 4).tolist(), strict=True))
                                    for _ in range(n)], "steps": steps}
                for n, steps in ((1, 29), (3, 40), (2, 5), (1, 60))]

    async def burst():
        async with service.async_client() as ac:
            return await asyncio.gather(*(ac.post("/pendulum/predict", json=q) for q in requests))

    responses = asyncio.run(burst())
    assert all(r.status_code == 200 for r in responses), [r.text for r in responses]
    for request, response in zip(requests, responses, strict=True):
        body = response.json()
        assert len(body["trajectories"]) == len(request["initial_states"])
        assert body["extrapolated"] is (request["steps"] > 29)
        alone = client.post("/pendulum/predict", json=request).json()
        for batched, single, state in zip(body["trajectories"], alone["trajectories"],
                                          request["initial_states"], strict=True):
            assert len(batched["predicted"]) == request["steps"]
            np.testing.assert_allclose(batched["predicted"], single["predicted"], atol=1e-3)
            expected = np.degrees(oracle.pendulum([radians(state)], request["steps"])[0].numpy())
            np.testing.assert_allclose(batched["predicted"], expected, atol=1e-3)


def test_a_longer_rollout_starts_with_the_shorter_one(client):
    short = client.post("/pendulum/predict", json={"initial_state": STATE, "steps": 10}).json()
    long = client.post("/pendulum/predict", json={"initial_state": STATE, "steps": 100}).json()
    assert long["extrapolated"] is True
    np.testing.assert_allclose(long["trajectories"][0]["predicted"][:10],
                               short["trajectories"][0]["predicted"], atol=1e-3)
    assert torch.isfinite(torch.tensor(long["trajectories"][0]["predicted"])).all()


@pytest.mark.parametrize("body, loc, rule", [
    ({"initial_state": {**STATE, "theta1": 120}}, ["body", "initial_state", "theta1"], "[-90, 90] degrees"),
    ({"initial_state": {"theta1": 0.1, "theta2": 0.2, "omega1": 0.3, "omega2": -2.0}, "units": "radians"},
     ["body", "initial_state", "omega2"], "radians/s"),
    ({"initial_states": [STATE, {**STATE, "theta2": 91}]}, ["body", "initial_states", 1, "theta2"],
     "outside"),
    ({"initial_state": STATE, "units": "gradians"}, ["body", "units"], "'degrees' or 'radians'"),
    ({"initial_state": STATE, "steps": 0}, ["body", "steps"], "greater than or equal to 1"),
    ({"initial_state": STATE, "steps": 291}, ["body", "steps"], "pendulum_max_steps = 290"),
    ({"initial_states": [STATE] * 257}, ["body", "initial_states"], "pendulum_max_batch = 256"),
    ({"initial_states": [STATE] * 17, "include_reference": True}, ["body", "include_reference"],
     "pendulum_reference_max_batch = 16"),
    ({"initial_state": {"theta1": 1, "theta2": 2, "omega1": 3}}, ["body", "initial_state", "omega2"],
     "required"),
    ({"initial_state": STATE, "initial_states": [STATE]}, ["body"], "exactly one"),
    ({"initial_state": STATE, "model": "mnist"}, ["body", "model"],
     "its output.kind is 'classes', this endpoint serves output.kind 'states'"),
    # strict request models: JSON true is not the number 1, nor "5" the number 5
    ({"initial_state": {**STATE, "theta1": True}}, ["body", "initial_state", "theta1"], "valid number"),
    ({"initial_state": STATE, "steps": True}, ["body", "steps"], "valid integer"),
    ({"initial_state": STATE, "steps": "5"}, ["body", "steps"], "valid integer"),
    ({"initial_state": STATE, "include_reference": 1}, ["body", "include_reference"], "valid boolean"),
])
def test_invalid_input_gets_422_naming_field_and_rule(client, body, loc, rule):
    r = client.post("/pendulum/predict", json=body)
    assert r.status_code == 422, r.text
    issue = r.json()["detail"][0]
    assert issue["loc"][:len(loc)] == loc, issue
    assert rule in issue["msg"], issue


def test_nan_state_is_rejected(client):
    body = '{"initial_state": {"theta1": NaN, "theta2": 0, "omega1": 0, "omega2": 0}}'
    r = client.post("/pendulum/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422
    issue = r.json()["detail"][0]
    assert issue["loc"] == ["body", "initial_state", "theta1"] and "finite" in issue["msg"]


def test_unknown_pendulum_model_is_404(client):
    r = client.post("/pendulum/predict", json={"initial_state": STATE, "model": "double"})
    assert r.status_code == 404


def _tiny_pendulum():
    from model import paper_model

    torch.manual_seed(1)
    return paper_model("pendulum", "afrnn", layer_sizes=(8, 8), epsilon=0.1, gamma=0.1).eval()


def test_manifest_output_scale_and_offset_are_undone_by_the_predictor(tmp_path, manifest_fields):
    """A standardised model (manifest ``output.scale/offset``, ``input.normalization_*``): the
    service's rollout is the network's output × scale + offset on the normalised initial state."""
    from artifact import specs
    from artifact.export import export_torchscript, load_exported
    from physics.encoding import network_inputs
    from service.tasks.pendulum import PendulumAPI

    model = _tiny_pendulum()
    fields = manifest_fields(model, "pstd", "pendulum")
    mean, std = [0.1, -0.2, 0.3, 0.0], [0.5, 0.9, 1.7, 2.6]
    scale, offset = [0.6, 1.0, 1.7, 2.6], [0.0, -0.01, 0.03, -0.08]
    fields["input"] = {**specs.pendulum_input_spec(29), "normalization_mean": mean, "normalization_std": std}
    fields["output"] = {**specs.pendulum_output_spec(), "scale": scale, "offset": offset}
    export_torchscript(model, tmp_path, fields)
    module, manifest = load_exported(tmp_path / "pstd.json")
    api = PendulumAPI(manifest, module, torch.device("cpu"))
    x0 = torch.tensor([radians(STATE)], dtype=torch.float32)
    with torch.inference_mode():
        got = api.predict(x0, 29)
        raw = model(network_inputs((x0 - torch.tensor(mean)) / torch.tensor(std), 29), every_step=True)
    torch.testing.assert_close(got, raw * torch.tensor(scale) + torch.tensor(offset), rtol=1e-5, atol=1e-6)


def test_manifest_with_scale_but_no_offset_is_refused(tmp_path, manifest_fields):
    from artifact import specs
    from artifact.export import export_torchscript, load_exported
    from service.tasks.pendulum import PendulumAPI

    model = _tiny_pendulum()
    fields = manifest_fields(model, "pbad", "pendulum")
    fields["output"] = {**specs.pendulum_output_spec(), "scale": [1.0] * 4}
    export_torchscript(model, tmp_path, fields)
    module, manifest = load_exported(tmp_path / "pbad.json")
    with pytest.raises(ValueError, match="output.scale and output.offset come together"):
        PendulumAPI(manifest, module, torch.device("cpu"))


def test_trained_horizon_in_the_manifest_sets_the_trained_steps(tmp_path, manifest_fields):
    """A model trained on 10 s (100 steps) is not extrapolating before step 100, whatever its
    manifest's input length; without the field the input length is the horizon (old manifests)."""
    from artifact import specs
    from artifact.export import export_torchscript, load_exported
    from service.tasks.pendulum import PendulumAPI

    model = _tiny_pendulum()
    for name, horizon, want in (("plong", 10.0, 100), ("pold", None, 29)):
        fields = manifest_fields(model, name, "pendulum")
        fields["output"] = {**specs.pendulum_output_spec(), "trained_horizon_s": horizon}
        export_torchscript(model, tmp_path, fields)
        module, manifest = load_exported(tmp_path / f"{name}.json")
        assert PendulumAPI(manifest, module, torch.device("cpu")).trained_steps == want


def test_model_may_be_omitted_when_one_pendulum_model_is_named_pendulum(tmp_path, export_model,
                                                                         start_service):
    """With `pendulum` and `pendulum-10s` served (the shipped pair), an omitted model means
    `pendulum`; with two pendulum models and neither named so, the request must name one."""
    both, neither = tmp_path / "both", tmp_path / "neither"
    export_model(both, "pendulum", seed=3)
    export_model(both, "pendulum", name="pendulum-10s", seed=4)
    export_model(neither, "pendulum", name="pendulum-a", seed=3)
    export_model(neither, "pendulum", name="pendulum-b", seed=4)
    with start_service(both).client(api_key=None) as client:
        default = client.post("/pendulum/predict", json={"initial_state": STATE}).json()
        named = client.post("/pendulum/predict", json={"initial_state": STATE, "model": "pendulum"}).json()
        paper = client.post("/pendulum/predict", json={"initial_state": STATE,
                                                       "model": "pendulum-10s"}).json()
    assert default["model"] == "pendulum" and default["trajectories"] == named["trajectories"]
    assert paper["model"] == "pendulum-10s" and paper["trajectories"] != default["trajectories"]
    with start_service(neither).client(api_key=None) as client:
        r = client.post("/pendulum/predict", json={"initial_state": STATE})
    assert r.status_code == 422, r.text
    assert "model is required" in r.text and "pendulum-a" in r.text
    assert "output.kind 'states'" in r.text and "none of them named 'pendulum'" in r.text
