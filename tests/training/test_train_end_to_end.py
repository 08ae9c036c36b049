"""A tiny run per task through the real CLI: a loadable TorchScript file, a valid manifest whose SHA-256
matches the file, a loaded model that reproduces the eager model, and test metrics that an
independent recomputation confirms."""

import hashlib
import json

import numpy as np
import pytest
import torch

from artifact.export import ArtifactIntegrityError, load_exported
from artifact.manifest import Manifest
from model.afrnn import AFRNNConfig
from model.lstm import LSTMConfig
from model.paper import build_model
from physics.pendulum import DT, STATE_NAMES
from training.cli import main
from training.data import cifar10, mnist, pendulum


def run_cli(*args) -> int:
    return main([str(a) for a in args])


def eager_model(manifest: Manifest, weights: dict) -> torch.nn.Module:
    config_cls = LSTMConfig if manifest.architecture.family == "lstm" else AFRNNConfig
    model = build_model(config_cls(**manifest.architecture.config))
    model.load_state_dict(weights)
    return model.eval()


def check_artifact(out_dir, name):
    """Manifest valid, SHA-256 of the file right, loaded TorchScript equal to the exported weights."""
    manifest_path = out_dir / f"{name}.json"
    manifest = Manifest.model_validate_json(manifest_path.read_text())
    artifact = out_dir / manifest.artifact.file
    assert hashlib.sha256(artifact.read_bytes()).hexdigest() == manifest.artifact.sha256
    assert artifact.stat().st_size == manifest.artifact.bytes
    loaded, _ = load_exported(manifest_path)
    assert isinstance(loaded, torch.jit.ScriptModule)
    state = torch.load(out_dir / f"{name}.train.pt", weights_only=True)
    weights = state["best_state"] if state["best_state"] is not None else state["model"]
    return manifest, loaded, eager_model(manifest, weights), state


@pytest.mark.parametrize("model_name", ["afrnn", "lstm"])
def test_mnist_tiny_run_exports_a_faithful_artifact(tmp_path, mnist_dir, model_name):
    out = tmp_path / "out"
    assert run_cli("--task", "mnist", "--model", model_name, "--data-dir", mnist_dir, "--out-dir", out,
                   "--hidden-size", 8, "--batch-size", 16, "--epochs", 2, "--val-size", 16,
                   "--seed", 3) == 0
    name = "mnist" if model_name == "afrnn" else "mnist-lstm"
    manifest, loaded, eager, state = check_artifact(out, name)
    assert manifest.task == "mnist" and manifest.architecture.variant == model_name
    assert manifest.input.sequence_length == 16 and manifest.input.channels == 1
    assert manifest.input.normalization_mean == list(mnist.MNIST_MEAN)
    assert manifest.output.class_names == list(mnist.CLASS_NAMES)
    assert manifest.parameters == sum(p.numel() for p in eager.parameters())
    assert manifest.training.command.endswith("--seed 3")
    assert manifest.torch_version == torch.__version__

    # the loaded artifact reproduces the eager model with the exported (best-by-validation) weights
    test = mnist.load_mnist(mnist_dir, "test")
    x, y = test.batch(torch.arange(len(test)))
    with torch.no_grad():
        want, got = eager(x), loaded(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    # the manifest's test metrics are those of that model on the whole test split
    accuracy = float((want.argmax(1) == y).double().mean())
    loss = float(torch.nn.functional.cross_entropy(want, y))
    assert manifest.metrics["test_accuracy"] == pytest.approx(accuracy, abs=1e-9)
    assert manifest.metrics["test_loss"] == pytest.approx(loss, rel=1e-5)
    assert manifest.metrics["test_samples"] == len(test)

    lines = [json.loads(s) for s in (out / f"{name}.metrics.jsonl").read_text().splitlines()]
    assert [r["kind"] for r in lines] == ["epoch", "epoch", "test"]
    assert (out / f"{name}.curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert state["progress"]["epoch"] == 2


def test_the_description_goes_into_the_manifest_and_may_change_on_resume(tmp_path, mnist_dir):
    out = tmp_path / "out"
    common = ("--task", "mnist", "--data-dir", mnist_dir, "--out-dir", out, "--hidden-size", 8,
              "--batch-size", 16, "--val-size", 16, "--seed", 3)
    assert run_cli(*common, "--epochs", 1, "--description", "a first try") == 0
    first = Manifest.model_validate_json((out / "mnist.json").read_text())
    assert first.description == "a first try"
    assert "description" not in first.training.hyperparameters     # said once, at the top
    assert run_cli(*common, "--epochs", 2, "--resume", "--description", "two epochs now") == 0
    assert Manifest.model_validate_json((out / "mnist.json").read_text()).description == "two epochs now"


def test_cifar10_tiny_run_exports_a_faithful_artifact(tmp_path, cifar_dir):
    out = tmp_path / "out"
    assert run_cli("--task", "cifar10", "--model", "frnn", "--data-dir", cifar_dir, "--out-dir", out,
                   "--hidden-size", 6, "--batch-size", 20, "--epochs", 1, "--val-size", 0,
                   "--limit-test", 10) == 0
    manifest, loaded, eager, state = check_artifact(out, "cifar10-frnn")
    assert state["best_state"] is None                       # no validation split: the last model
    assert manifest.input.channels == 3 and manifest.input.sequence_length == 4
    assert manifest.output.class_names == list(cifar10.CLASS_NAMES)
    assert manifest.input.normalization_std == list(cifar10.CIFAR10_STD)
    assert manifest.metrics["test_samples"] == 10
    x, _ = cifar10.load_cifar10(cifar_dir, "test").batch(torch.arange(10))
    with torch.no_grad():
        torch.testing.assert_close(loaded(x), eager(x), rtol=1e-5, atol=1e-5)


def test_pendulum_tiny_run_reports_paper_metric_and_mse(tmp_path):
    out = tmp_path / "out"
    cache = tmp_path / "cache"
    assert run_cli("--task", "pendulum", "--model", "afrnn", "--trajectories", 30, "--cache-dir", cache,
                   "--out-dir", out, "--hidden-size", 8, "--epochs", 2, "--val-size", 5) == 0
    manifest, loaded, eager, _ = check_artifact(out, "pendulum")
    assert manifest.output.kind == "states" and manifest.output.dt == DT
    assert manifest.output.state_names == list(STATE_NAMES)
    assert manifest.output.units == ["rad", "rad", "rad/s", "rad/s"]
    assert manifest.input.sequence_length == 29 and manifest.input.channels == 4

    spec = pendulum.PendulumDataSpec(trajectories=30, train=27)
    _, test, digest = pendulum.load_pendulum(cache, spec)
    assert manifest.dataset_hash == digest
    x, y = test.batch(torch.arange(len(test)))
    with torch.no_grad():
        want = eager(x, every_step=True)
        torch.testing.assert_close(loaded(x, every_step=True), want, rtol=1e-5, atol=1e-5)
    # oracle: the reference code's MSELoss(reduction='sum') over test batches of 8, averaged
    criterion = torch.nn.MSELoss(reduction="sum")
    batch_losses = [float(criterion(want[i:i + 8], y[i:i + 8])) for i in range(0, len(test), 8)]
    assert manifest.metrics["paper_metric"] == pytest.approx(np.mean(batch_losses), rel=1e-5)
    assert manifest.metrics["mse_rad2"] == pytest.approx(float(((want - y) ** 2).mean()), rel=1e-5)


def test_tampered_artifact_is_refused(tmp_path, mnist_dir):
    out = tmp_path / "out"
    assert run_cli("--task", "mnist", "--model", "arnn", "--data-dir", mnist_dir, "--out-dir", out,
                   "--hidden-size", 4, "--epochs", 1, "--val-size", 0, "--limit-train", 16) == 0
    artifact = out / "mnist-arnn.pt"
    artifact.write_bytes(artifact.read_bytes() + b"\0")
    with pytest.raises(ArtifactIntegrityError, match="does not match the manifest"):
        load_exported(out / "mnist-arnn.json")


def test_bad_options_fail_with_the_option_named(tmp_path, mnist_dir, capsys):
    with pytest.raises(SystemExit):
        run_cli("--task", "mnist", "--model", "lstm", "--epsilon", "0.1", "--data-dir", mnist_dir)
    assert "epsilon" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        run_cli("--task", "mnist", "--lr", "-1", "--data-dir", mnist_dir)
    assert "--lr: Input should be greater than 0" in capsys.readouterr().err
    code = run_cli("--task", "mnist", "--data-dir", tmp_path / "nowhere", "--out-dir", tmp_path / "o")
    assert code == 2 and "does not exist" in capsys.readouterr().err
