"""``afrnn-train --step-bound``: trains with ε‖A‖₂ ≤ β and exports the scale folded into the weights."""

import json

import numpy as np
import torch

from artifact.export import load_exported
from training.cli import main


def test_a_bounded_run_exports_a_plain_model_within_the_bound(tmp_path, mnist_dir):
    out = tmp_path / "bounded"
    assert main(["--task", "mnist", "--model", "afrnn", "--hidden-size", "8", "--batch-size", "16",
                 "--val-size", "16", "--epochs", "1", "--init-std", "6", "--step-bound", "0.05",
                 "--data-dir", str(mnist_dir), "--out-dir", str(out)]) == 0
    manifest = json.loads((out / "mnist.json").read_text())
    assert manifest["architecture"]["config"]["step_bound"] is None          # folded …
    assert manifest["training"]["hyperparameters"]["step_bound"] == 0.05     # … and recorded
    module, _ = load_exported(out / "mnist.json")
    with torch.no_grad():
        B = module.coupling_matrix().double().numpy()
    config = manifest["architecture"]["config"]
    epsilon, gamma = config["epsilon"], config["gamma"]
    A = B + gamma * np.eye(len(B))
    assert epsilon * np.linalg.norm(A, 2) <= 0.05 * (1 + 1e-5)
