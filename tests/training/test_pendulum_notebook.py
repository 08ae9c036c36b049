"""The notebook-protocol runner: its split, its test-selected minimum, and the summary over seeds."""

import numpy as np
import pytest
import torch

from training import pendulum_notebook as nb


def test_split_is_a_seeded_90_10_partition_of_the_first_100_trajectories():
    states = torch.arange(120, dtype=torch.float32)[:, None, None].expand(120, 3, 4)
    train, test = nb.notebook_split(states, seed=3)
    ids = sorted(train[:, 0, 0].long().tolist() + test[:, 0, 0].long().tolist())
    assert ids == list(range(100)) and len(test) == 10
    again_train, again_test = nb.notebook_split(states, seed=3)
    torch.testing.assert_close(test, again_test)
    other = nb.notebook_split(states, seed=4)[1]
    assert set(test[:, 0, 0].tolist()) != set(other[:, 0, 0].tolist())
    with pytest.raises(ValueError, match="needs 100 trajectories"):
        nb.notebook_split(states[:50], seed=0)


def test_the_model_is_the_paper_preset_afrnn():
    config = nb.notebook_model_config()
    assert config.layer_sizes == (100, 100) and config.update == "sequential"
    assert (config.epsilon, config.gamma, config.initial_state) == (0.1, 0.15, 1.0)
    assert config.init_std == pytest.approx(0.1)                # recurrent std 1/H = init_std/√H


def test_the_reported_score_is_the_minimum_over_epochs_of_the_test_metric():
    states = torch.randn(100, 30, 4, generator=torch.Generator().manual_seed(0))   # any (N, 30, 4) data
    run = nb.run_seed(states, seed=0, epochs=2, log_every=0)
    scores = [r["paper_metric"] for r in run["history"]]
    assert run["min_test_paper_metric"] == min(scores)
    assert run["min_epoch"] == int(np.argmin(scores)) + 1
    assert run["last_paper_metric"] == scores[-1]
    summary = nb.summarise([run, {**run, "min_test_paper_metric": run["min_test_paper_metric"] + 2}])
    s = summary["min_test_paper_metric"]
    assert s["mean"] == pytest.approx(run["min_test_paper_metric"] + 1)
    assert s["std"] == pytest.approx(np.sqrt(2))                 # sample std of (a, a + 2)
