"""Configuration resolution: --preset paper reproduces the paper's models and protocols, flags override
presets, presets override defaults, and --help names the source of each paper value."""

import math

import pytest

from model.paper import PAPER_PARAMETER_COUNTS, build_model, count_parameters
from training.cli import build_parser, resolve


@pytest.mark.parametrize(("task", "variant"), sorted(PAPER_PARAMETER_COUNTS))
def test_paper_preset_builds_the_paper_parameter_counts(task, variant):
    cfg, _, _ = resolve(["--task", task, "--model", variant, "--preset", "paper"])
    assert count_parameters(build_model(cfg.model_config_object())) == PAPER_PARAMETER_COUNTS[(task, variant)]


def test_paper_preset_protocols():
    mnist, _, _ = resolve(["--task", "mnist", "--preset", "paper"])
    assert (mnist.optimizer, mnist.lr, mnist.batch_size, mnist.epochs) == ("adagrad", 1e-2, 128, 100)
    assert (mnist.epsilon, mnist.gamma, mnist.val_size) == (0.01, 0.001, 0)
    assert mnist.init_std == pytest.approx(1 / math.sqrt(128))       # weight std 1/H
    pend, _, _ = resolve(["--task", "pendulum", "--preset", "paper"])
    assert (pend.optimizer, pend.lr, pend.batch_size, pend.epochs) == ("adam", 1e-3, 8, 1000)
    assert (pend.epsilon, pend.gamma) == (0.1, 0.15)
    config = pend.model_config_object()
    assert config.initial_state == 1.0 and config.layer_sizes == (100, 100)
    arnn, _, _ = resolve(["--task", "pendulum", "--model", "arnn", "--preset", "paper"])
    assert arnn.model_config_object().layer_sizes == (200,)
    assert arnn.init_std == pytest.approx(1 / math.sqrt(200))


def test_flags_override_preset_and_preset_overrides_defaults():
    default, _, _ = resolve(["--task", "mnist"])
    assert (default.optimizer, default.epsilon, default.val_size) == ("adam", 0.1, 5000)
    cfg, run, explicit = resolve(["--task", "mnist", "--preset", "paper", "--lr", "0.05", "--epsilon", "0.2",
                                  "--threads", "2", "--max-minutes", "30"])
    assert (cfg.optimizer, cfg.lr, cfg.epsilon, cfg.gamma) == ("adagrad", 0.05, 0.2, 0.001)
    assert run.threads == 2 and run.max_minutes == 30
    assert {"lr", "epsilon", "preset", "threads", "max_minutes"} <= explicit


def test_default_names_follow_the_served_names():
    assert resolve(["--task", "mnist"])[0].name == "mnist"
    assert resolve(["--task", "mnist", "--model", "frnn"])[0].name == "mnist-frnn"
    assert resolve(["--task", "cifar10", "--name", "cifar-best"])[0].name == "cifar-best"


def test_help_names_the_source_of_each_paper_value():
    text = build_parser().format_help()
    assert "lr_schedule = plateau  [reference code" in text
    assert "optimizer = adagrad  [paper]" in text
    assert "epsilon = 0.1  [reference code]" in text                  # the pendulum


def test_options_that_do_not_apply_are_refused(capsys):
    with pytest.raises(SystemExit):
        resolve(["--task", "mnist", "--trajectories", "50"])
    assert "trajectories applies to the pendulum task only" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        resolve(["--task", "mnist", "--model", "arnn", "--layers", "2"])
    assert "the ARNN has exactly 1 layer" in capsys.readouterr().err
