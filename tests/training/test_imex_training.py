"""``afrnn-train --discretisation imex``: a run that exports an IMEX model the service's loader rebuilds
with the same step, and the refusals of the combinations it does not describe."""

import json

import pytest
import torch
from pydantic import ValidationError

from artifact.export import load_exported
from training.cli import main
from training.config import TrainConfig


def test_an_imex_run_exports_a_model_that_loads_with_its_step(tmp_path, mnist_dir):
    out = tmp_path / "imex"
    assert main(["--task", "mnist", "--model", "afrnn", "--hidden-size", "8", "--batch-size", "16",
                 "--val-size", "16", "--epochs", "1", "--epsilon", "0.5", "--init-std", "6",
                 "--discretisation", "imex", "--data-dir", str(mnist_dir), "--out-dir", str(out)]) == 0
    manifest = json.loads((out / "mnist.json").read_text())
    assert manifest["architecture"]["config"]["discretisation"] == "imex"
    records = [json.loads(s) for s in (out / "mnist.metrics.jsonl").read_text().splitlines()]
    # the trainer's growth factor with D = I: the Cayley transform's modulus, ≤ 1 (explicit Euler at
    # ε = 0.5 and init std 6 would be far above)
    factors = [r["euler_factor"] for r in records if r.get("euler_factor") is not None]
    assert factors and max(factors) <= 1.0 + 1e-6
    module, _ = load_exported(out / "mnist.json")
    assert bool(module.imex)
    B = module.coupling_matrix().double()
    implicit = torch.eye(B.shape[0], dtype=torch.float64) - 0.5 * float(module.epsilon) * B
    torch.testing.assert_close(module.step_coupling().double(), torch.linalg.solve(implicit, B),
                               rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("fields, rule", [
    ({"model": "lstm"}, "AFRNN family only"),
    ({"update": "sequential"}, "sequential"),
])
def test_imex_refuses_models_it_does_not_describe(fields, rule):
    with pytest.raises(ValidationError, match=rule):
        TrainConfig(**{"task": "mnist", "discretisation": "imex", **fields})
