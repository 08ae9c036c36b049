"""``training.step_penalty``: the step Jacobians against autograd, the norms against numpy, and the
penalty in a training run (``afrnn-train --step-norm-penalty``)."""

import json

import numpy as np
import pytest
import torch
from pydantic import ValidationError

from artifact.export import load_exported
from model.afrnn import AFRNN, AFRNNConfig
from training.cli import main
from training.config import TrainConfig
from training.step_penalty import step_jacobians, step_norm_penalty


def _model(init_std: float = 4.0, epsilon: float = 0.3, gamma: float = 0.05) -> AFRNN:
    torch.manual_seed(0)
    config = AFRNNConfig(input_size=2, layer_sizes=(5, 4), output_size=3, epsilon=epsilon, gamma=gamma,
                         init_std=init_std)
    return AFRNN(config).double()


def test_step_jacobians_are_the_derivative_of_the_models_own_step():
    model = _model()
    x = torch.randn(3, 6, 2, dtype=torch.float64)
    _, states = model.forward_with_states(x)                            # (N, T+1, D), z_0 first
    drive = model.input_drive(x)
    rows, steps = torch.tensor([0, 2, 1, 2]), torch.tensor([0, 5, 3, 1])
    got = step_jacobians(model, list(states.unbind(1)), drive, rows, steps).detach()
    for k in range(len(rows)):
        n, t = int(rows[k]), int(steps[k])
        u = drive[n, t].detach().unsqueeze(0)
        want = torch.autograd.functional.jacobian(
            lambda z, u=u: model.step(z.unsqueeze(0), u).squeeze(0), states[n, t].detach())
        torch.testing.assert_close(got[k], want, rtol=1e-10, atol=1e-12)


def test_the_hinge_is_the_mean_squared_excess_of_numpys_2_norm():
    model = _model()
    x = torch.randn(4, 7, 2, dtype=torch.float64)
    generator = torch.Generator().manual_seed(5)
    outputs, hinge, norms = step_norm_penalty(model, x, samples=6, generator=generator)
    torch.testing.assert_close(outputs, model(x))                       # the same run as forward
    generator = torch.Generator().manual_seed(5)                         # the same pairs again
    rows, steps = torch.randint(4, (6,), generator=generator), torch.randint(7, (6,), generator=generator)
    _, states = model.forward_with_states(x)
    jacobians = step_jacobians(model, list(states.unbind(1)), model.input_drive(x), rows, steps)
    jacobians = jacobians.detach().numpy()
    want_norms = np.array([np.linalg.norm(J, 2) for J in jacobians])
    np.testing.assert_allclose(norms.numpy(), want_norms, rtol=1e-10)
    assert want_norms.max() > 1.0                                        # the hinge is active here
    want_hinge = np.mean(np.maximum(want_norms - 1.0, 0.0) ** 2)
    np.testing.assert_allclose(float(hinge.detach()), want_hinge, rtol=1e-10)


def test_a_contractive_model_pays_nothing():
    model = _model(init_std=0.1, epsilon=0.05, gamma=2.0)     # damping well above the weak coupling
    _, hinge, norms = step_norm_penalty(model, torch.randn(2, 5, 2, dtype=torch.float64), samples=8)
    assert float(norms.max()) <= 1.0
    assert float(hinge.detach()) == 0.0


def test_descending_the_penalty_shrinks_the_step_norms():
    model = _model(init_std=6.0)
    x = torch.randn(8, 10, 2, dtype=torch.float64)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.2)
    first = None
    for _ in range(30):
        _, hinge, norms = step_norm_penalty(model, x, samples=16, generator=torch.Generator().manual_seed(1))
        first = float(hinge.detach()) if first is None else first
        optimizer.zero_grad()
        hinge.backward()
        optimizer.step()
    _, last, _ = step_norm_penalty(model, x, samples=16, generator=torch.Generator().manual_seed(1))
    assert first > 0.01
    assert float(last.detach()) < 0.6 * first


def test_a_penalised_run_records_the_step_norm_and_exports_a_plain_model(tmp_path, mnist_dir):
    out = tmp_path / "penalised"
    assert main(["--task", "mnist", "--model", "afrnn", "--hidden-size", "8", "--batch-size", "16",
                 "--val-size", "16", "--epochs", "1", "--init-std", "6", "--step-norm-penalty", "10",
                 "--data-dir", str(mnist_dir), "--out-dir", str(out)]) == 0
    manifest = json.loads((out / "mnist.json").read_text())
    assert manifest["training"]["hyperparameters"]["step_norm_penalty"] == 10
    records = [json.loads(s) for s in (out / "mnist.metrics.jsonl").read_text().splitlines()]
    epoch = next(r for r in records if r["kind"] == "epoch")
    assert epoch["train_step_norm"] > 1.0                         # init std 6: expansive steps sampled
    module, _ = load_exported(out / "mnist.json")
    assert not any("penalty" in key for key in module.state_dict())


@pytest.mark.parametrize("fields, rule", [
    ({"model": "lstm"}, "AFRNN family only"),
    ({"update": "sequential"}, "simultaneous update"),
    ({"task": "pendulum"}, "classification tasks"),
])
def test_the_penalty_refuses_models_it_does_not_describe(fields, rule):
    with pytest.raises(ValidationError, match=rule):
        TrainConfig(**{"task": "mnist", "step_norm_penalty": 1.0, **fields})
