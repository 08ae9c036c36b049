"""Learning: on a small synthetic task (the label is the image's brightness band) the loss falls."""

import json

from training.cli import main


def test_afrnn_learns_the_brightness_task(tmp_path, make_mnist):
    data = make_mnist(tmp_path / "data", n_train=160, n_test=40, seed=11)
    out = tmp_path / "out"
    assert main(["--task", "mnist", "--model", "afrnn", "--data-dir", str(data), "--out-dir", str(out),
                 "--hidden-size", "16", "--epochs", "15", "--batch-size", "16", "--val-size", "0",
                 "--lr", "0.01", "--lr-schedule", "none", "--seed", "0"]) == 0
    records = [json.loads(s) for s in (out / "mnist.metrics.jsonl").read_text().splitlines()]
    losses = [r["train_loss"] for r in records if r["kind"] == "epoch"]
    test = records[-1]
    assert len(losses) == 15
    assert losses[-1] < 0.5 * losses[0], losses           # chance level is ln 10 ≈ 2.30
    assert sum(b < a for a, b in zip(losses, losses[1:], strict=False)) >= 11, losses
    assert test["test_accuracy"] >= 0.8, test
