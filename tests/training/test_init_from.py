"""``--init-from``: a new run that starts from another run's weights (fine-tuning, a curriculum)."""

import json

import pytest
import torch

from artifact.export import load_exported
from training.cli import main

COMMON = ["--task", "mnist", "--model", "afrnn", "--hidden-size", "8", "--batch-size", "16",
          "--val-size", "16", "--seed", "5"]


def run(out, data, *extra) -> int:
    return main(COMMON + ["--data-dir", str(data), "--out-dir", str(out)] + [str(e) for e in extra])


def state_weights(out) -> dict:
    return torch.load(out / "mnist.train.pt", weights_only=True)


@pytest.mark.parametrize("source", ["mnist.json", "mnist.train.pt"])
def test_a_run_starts_from_the_weights_of_an_exported_model_or_a_training_state(tmp_path, mnist_dir, source):
    first, second = tmp_path / "first", tmp_path / "second"
    assert run(first, mnist_dir, "--epochs", 1, "--val-size", 0) == 0       # exports the last weights
    trained = state_weights(first)["model"]
    # zero steps of the second run: its exported model is its initial weights
    assert run(second, mnist_dir, "--epochs", 1, "--max-steps", 1, "--lr", 1e-12, "--val-size", 0,
               "--init-from", first / source) == 0
    module, _ = load_exported(second / "mnist.json")
    for key, tensor in module.state_dict().items():
        torch.testing.assert_close(tensor, trained[key], rtol=0, atol=1e-9, msg=key)
    record = json.loads((second / "mnist.json").read_text())
    assert str(first / source) in json.dumps(record["training"])          # the manifest says where from
    # a fresh run with the same seed starts elsewhere: the weights really came from the source
    fresh = tmp_path / "fresh"
    assert run(fresh, mnist_dir, "--epochs", 1, "--max-steps", 1, "--lr", 1e-12, "--val-size", 0) == 0
    fresh_module, _ = load_exported(fresh / "mnist.json")
    assert not torch.allclose(fresh_module.state_dict()["weight_in"], module.state_dict()["weight_in"])


def test_weights_of_another_architecture_are_refused_by_name(tmp_path, mnist_dir, capsys):
    first = tmp_path / "first"
    assert run(first, mnist_dir, "--epochs", 1, "--max-steps", 1) == 0
    assert main(["--task", "mnist", "--model", "afrnn", "--hidden-size", "12", "--batch-size", "16",
                 "--val-size", "16", "--epochs", "1", "--max-steps", "1", "--data-dir", str(mnist_dir),
                 "--out-dir", str(tmp_path / "wider"), "--init-from", str(first / "mnist.json")]) == 2
    err = capsys.readouterr().err
    assert "--init-from" in err and "size mismatch for layers.0.weight_rec" in err and "[12, 12]" in err
    assert main(COMMON + ["--data-dir", str(mnist_dir), "--out-dir", str(tmp_path / "x"),
                          "--init-from", str(tmp_path / "nowhere.json")]) == 2
    assert "no such file" in capsys.readouterr().err
