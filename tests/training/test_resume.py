"""Resume: a run stopped mid-epoch and resumed ends exactly where the uninterrupted run ends, with the
same optimizer state; the budget stops cleanly and still exports; a resumed run keeps its config."""

import json
import random

import numpy as np
import pytest
import torch

from training.cli import main
from training.config import ConfigError
from training.state import STATE_VERSION, capture_rng, read_state, restore_rng, write_state

COMMON = ["--task", "mnist", "--model", "afrnn", "--hidden-size", "8", "--batch-size", "16",
          "--val-size", "16", "--seed", "5", "--lr-schedule", "plateau", "--plateau-patience", "0"]


def run(out, data, *extra) -> int:
    return main(COMMON + ["--data-dir", str(data), "--out-dir", str(out)] + [str(e) for e in extra])


def load_state(out):
    return torch.load(out / "mnist.train.pt", weights_only=True)


def assert_same_tensors(a, b, path="state"):
    if isinstance(a, torch.Tensor):
        assert torch.equal(a, b), f"{path} differs"
    elif isinstance(a, dict):
        assert a.keys() == b.keys(), f"{path} keys differ"
        for key in a:
            assert_same_tensors(a[key], b[key], f"{path}.{key}")
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            assert_same_tensors(x, y, f"{path}[{i}]")
    else:
        assert a == b, f"{path}: {a} != {b}"


def test_mid_epoch_resume_matches_the_uninterrupted_run(tmp_path, mnist_dir):
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert run(straight, mnist_dir, "--epochs", 2) == 0

    assert run(resumed, mnist_dir, "--epochs", 2, "--max-steps", 3) == 0      # 5 steps per epoch
    stopped = load_state(resumed)
    assert stopped["progress"]["epoch"] == 0 and stopped["progress"]["step_in_epoch"] == 3
    assert stopped["progress"]["global_step"] == 3
    assert all(s["step"] == 3 for s in stopped["optimizer"]["state"].values())
    assert (resumed / "mnist.json").is_file()                     # a stopped run is still exported

    assert run(resumed, mnist_dir, "--epochs", 2, "--resume") == 0
    a, b = load_state(straight), load_state(resumed)
    assert_same_tensors(a["model"], b["model"], "model")
    assert_same_tensors(a["optimizer"], b["optimizer"], "optimizer")
    # (best_state may differ: the stopped run validated its step-3 weights as one more candidate)
    assert a["scheduler"] == b["scheduler"]
    assert a["progress"]["global_step"] == b["progress"]["global_step"] == 10
    assert stopped["progress"]["resumes"] == 0 and b["progress"]["resumes"] == 1
    epochs_a = [r for r in a["history"] if r["kind"] == "epoch"]
    epochs_b = [r for r in b["history"] if r["kind"] == "epoch"]
    for ra, rb in zip(epochs_a, epochs_b, strict=True):
        for key in ("train_loss", "train_accuracy", "val_loss", "val_accuracy", "lr", "step"):
            assert ra[key] == rb[key], key
    # the metrics file holds the stop record of the first run, then the epochs, then the test
    kinds = [json.loads(s)["kind"] for s in (resumed / "mnist.metrics.jsonl").read_text().splitlines()]
    assert kinds == ["stop", "epoch", "epoch", "test"]
    # wall time accumulates across resumes into the manifest
    manifest = json.loads((resumed / "mnist.json").read_text())
    assert manifest["training"]["wall_time_s"] == pytest.approx(b["progress"]["elapsed_s"], abs=1e-3)
    assert manifest["training"]["wall_time_s"] >= stopped["progress"]["elapsed_s"]


def test_more_epochs_on_resume_continue_the_same_trajectory(tmp_path, mnist_dir):
    straight, extended = tmp_path / "straight", tmp_path / "extended"
    assert run(straight, mnist_dir, "--epochs", 3) == 0
    assert run(extended, mnist_dir, "--epochs", 2) == 0
    assert run(extended, mnist_dir, "--epochs", 3, "--resume") == 0
    assert_same_tensors(load_state(straight)["model"], load_state(extended)["model"], "model")


def test_budget_stops_cleanly_then_evaluates_and_exports(tmp_path, mnist_dir):
    out = tmp_path / "out"
    assert run(out, mnist_dir, "--epochs", 50, "--max-minutes", 1e-6) == 0
    state = load_state(out)
    assert state["progress"]["global_step"] == 0          # the budget was spent before the first step
    manifest = json.loads((out / "mnist.json").read_text())
    assert manifest["training"]["hyperparameters"]["stop_reason"].startswith("max_minutes")
    assert manifest["training"]["epochs"] == 0
    assert "test_accuracy" in manifest["metrics"]


def test_resume_with_a_spent_budget_trains_no_further_step(tmp_path, mnist_dir):
    out = tmp_path / "out"
    assert run(out, mnist_dir, "--epochs", 50, "--max-steps", 2) == 0
    assert run(out, mnist_dir, "--epochs", 50, "--max-steps", 2, "--resume") == 0
    assert load_state(out)["progress"]["global_step"] == 2
    manifest = json.loads((out / "mnist.json").read_text())
    assert manifest["training"]["hyperparameters"]["stop_reason"].startswith("max_steps")


def test_resume_refuses_to_change_the_model(tmp_path, mnist_dir, capsys):
    out = tmp_path / "out"
    assert run(out, mnist_dir, "--epochs", 1, "--max-steps", 1) == 0
    assert run(out, mnist_dir, "--epochs", 1, "--resume", "--epsilon", 0.5) == 2
    assert "--epsilon 0.5 differs from the resumed run's 0.1" in capsys.readouterr().err


def test_lr_on_resume_is_a_step_decay_that_keeps_the_optimizer_state(tmp_path, mnist_dir):
    """``--lr`` on ``--resume`` sets every parameter group's learning rate and keeps Adam's moments:
    the first resumed step equals a hand-made Adam step at the new rate from the saved moments."""
    out = tmp_path / "out"
    assert run(out, mnist_dir, "--epochs", 2, "--max-steps", 3) == 0
    before = load_state(out)
    assert run(out, mnist_dir, "--epochs", 2, "--max-steps", 4, "--resume", "--lr", 1e-4) == 0
    after = load_state(out)
    assert after["config"]["lr"] == 1e-4
    assert all(g["lr"] == 1e-4 for g in after["optimizer"]["param_groups"])
    assert all(s["step"] == 4 for s in after["optimizer"]["state"].values())   # moments continued
    # Adam's step at the new rate: |Δθ| <= lr·(bias-corrected ratio) ≈ lr, far below the old 1e-3
    moved = [(after["model"][k] - before["model"][k]).abs().max().item() for k in before["model"]]
    assert 0 < max(moved) < 3e-4


def _draws() -> tuple:
    return torch.rand(4), np.random.rand(4), [random.random() for _ in range(4)], np.random.randn(1)


def test_rng_states_saved_and_loaded_weights_only_give_the_same_draws(tmp_path):
    """``capture_rng`` → the state file (weights-only) → ``restore_rng`` continues every generator
    (torch, numpy including its cached Gaussian, Python) exactly where it was captured."""
    np.random.seed(3)
    np.random.randn(1)                               # leaves a cached Gaussian in numpy's legacy state
    write_state(tmp_path / "s.train.pt", {"rng": capture_rng(torch.device("cpu"))})
    want = _draws()
    _draws()                                         # move every generator on
    restore_rng(read_state(tmp_path / "s.train.pt")["rng"], torch.device("cpu"))
    got = _draws()
    assert torch.equal(want[0], got[0]) and np.array_equal(want[1], got[1])
    assert want[2] == got[2] and np.array_equal(want[3], got[3])


def test_a_training_state_of_another_format_version_is_refused(tmp_path):
    path = tmp_path / "old.train.pt"
    torch.save({"version": STATE_VERSION + 1}, path)
    message = f"training-state version {STATE_VERSION + 1}, expected {STATE_VERSION}"
    with pytest.raises(ConfigError, match=message):
        read_state(path)


def test_a_state_saved_with_the_old_sessions_counter_still_loads():
    """States written before ``resumes`` counted every start of the run (``sessions``)."""
    from training.state import Progress

    old = {"epoch": 3, "step_in_epoch": 0, "global_step": 120, "elapsed_s": 61.5, "sessions": 3,
           "best_value": 0.9, "best_epoch": 2.0, "best_step": 80}
    progress = Progress.from_saved(old)
    assert progress.resumes == 2 and progress.global_step == 120 and progress.elapsed_s == 61.5
    assert Progress.from_saved({"sessions": 1}).resumes == 0
    assert Progress.from_saved({"resumes": 4}).resumes == 4


def test_the_shipped_state_written_with_sessions_loads_as_resumes():
    from pathlib import Path

    from training.state import Progress, read_state

    state = read_state(Path(__file__).resolve().parents[2] / "checkpoints" / "mnist-frnn.train.pt")
    assert "sessions" in state["progress"]                   # written before the rename
    progress = Progress.from_saved(state["progress"])
    assert progress.resumes == state["progress"]["sessions"] - 1
    assert progress.global_step == state["progress"]["global_step"]
