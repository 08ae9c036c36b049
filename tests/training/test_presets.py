"""Configuration resolution: --preset paper reproduces the paper's models and protocols, flags override
presets, presets override defaults, and --help names the source of each paper value."""

import math
from typing import get_args

import pytest

from artifact.manifest import Task, Variant
from model.paper import PAPER_PARAMETER_COUNTS, PAPER_TASKS, VARIANTS, build_model, count_parameters
from training.cli import build_parser, resolve
from training.config import RunOptions, TrainConfig


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


# -- one place per default (issue 11 §3) and defaults that follow the measurements (issue 13 §3) ------

@pytest.mark.parametrize("task", get_args(Task))
@pytest.mark.parametrize("model", get_args(Variant))
def test_the_cli_and_the_config_share_one_set_of_defaults(task, model):
    """What the CLI runs with no flags is exactly what ``TrainConfig`` builds with no values."""
    cli, _, _ = resolve(["--task", task, "--model", model])
    assert cli == TrainConfig(task=task, model=model)
    assert TrainConfig(**cli.model_dump()) == cli          # a saved config rebuilds unchanged


def test_cifar10_defaults_are_the_papers_settings_with_a_validation_split():
    """The measured winner on CIFAR-10 (science notes, "The paper's own settings on the image tasks")."""
    cfg = TrainConfig(task="cifar10")
    assert (cfg.optimizer, cfg.lr, cfg.epsilon, cfg.gamma) == ("adagrad", 1e-2, 0.01, 0.001)
    assert cfg.grad_clip is None
    assert cfg.init_std == pytest.approx(1 / math.sqrt(128))               # weight std 1/H
    assert (cfg.lr_schedule, cfg.plateau_patience, cfg.plateau_factor) == ("plateau", 10, 0.1)
    assert (cfg.batch_size, cfg.epochs, cfg.val_size) == (128, 100, 5000)
    # the same as the command of the measured run (--preset paper --val-size 5000)
    measured, _, _ = resolve(["--task", "cifar10", "--preset", "paper", "--val-size", "5000"])
    assert measured.model_dump(exclude={"preset"}) == cfg.model_dump(exclude={"preset"})


def test_mnist_keeps_the_fast_settings():
    cfg = TrainConfig(task="mnist")
    assert (cfg.optimizer, cfg.lr, cfg.epsilon, cfg.gamma, cfg.init_std, cfg.grad_clip) == \
        ("adam", 1e-3, 0.1, 0.01, 2.0, 5.0)
    assert (cfg.lr_schedule, cfg.plateau_patience, cfg.plateau_factor) == ("plateau", 2, 0.5)
    assert cfg.val_size == 5000


def test_help_says_which_defaults_were_measured_and_where():
    text = build_parser().format_help()
    defaults = text[text.index("Defaults per task"):text.index("--preset paper, with")]
    cifar = " ".join(defaults[defaults.index("cifar10:"):defaults.index("pendulum:")].split())
    assert "41.55 %" in cifar and "34.61 %" in cifar
    assert "docs/results.md 'Pixel CIFAR-10'" in cifar
    mnist = " ".join(defaults[defaults.index("mnist:"):defaults.index("cifar10:")].split())
    assert "docs/results.md 'Pixel MNIST'" in mnist and "epsilon = 0.1 [measured" in mnist
    # every task-dependent value is listed with its value
    assert "lr = 0.01 [paper]" in cifar and "val_size = 5000 [choice" in cifar


def test_help_states_the_field_defaults_of_the_config():
    text = " ".join(build_parser().format_help().split())
    assert f"(default {TrainConfig.model_fields['eval_batch_size'].default})" in text
    assert f"(default {RunOptions.model_fields['log_every'].default})" in text
    assert "--optimizer {adagrad,adam} default per task, see below" in text


def test_task_and_variant_names_come_from_the_manifest_vocabulary():
    parser = build_parser()
    choices = {a.dest: a.choices for a in parser._actions if a.choices}
    assert tuple(choices["task"]) == get_args(Task)
    assert tuple(choices["model"]) == get_args(Variant)
    # the model library keeps its own table (model/ imports nothing of ours); it names the same ones
    assert set(VARIANTS) == set(get_args(Variant)) and set(PAPER_TASKS) == set(get_args(Task))


def test_the_reference_init_resolves_at_the_models_width():
    cfg = TrainConfig(task="cifar10", hidden_size=64)
    assert cfg.init_std == pytest.approx(1 / 8)
    arnn = TrainConfig(task="pendulum", model="arnn", preset="paper")
    assert arnn.init_std == pytest.approx(1 / math.sqrt(200))
    assert TrainConfig(task="cifar10", init_std=0.5).init_std == 0.5         # a given value wins


def test_the_lstm_takes_no_afrnn_only_defaults():
    cfg = TrainConfig(task="cifar10", model="lstm")
    assert (cfg.epsilon, cfg.gamma, cfg.init_std) == (None, None, None)
    assert cfg.name == "cifar10-lstm"
    with pytest.raises(ValueError, match="apply to the AFRNN family only"):
        TrainConfig(task="cifar10", model="lstm", epsilon=0.1)


def test_a_saved_config_of_the_running_cifar10_job_still_loads():
    """The training state of ``results/cifar10-paper`` (written before the defaults moved) resumes."""
    saved = {"task": "cifar10", "model": "afrnn", "name": "cifar10", "preset": "paper", "hidden_size": None,
             "layers": None, "epsilon": 0.01, "gamma": 0.001, "init_std": 0.08838834764831843,
             "update": "simultaneous", "optimizer": "adagrad", "lr": 0.01, "lr_schedule": "plateau",
             "plateau_patience": 10, "plateau_factor": 0.1, "batch_size": 128, "epochs": 100,
             "grad_clip": None, "seed": 0, "val_size": 5000, "limit_train": None, "limit_test": None,
             "eval_batch_size": 256, "eval_every": 700, "data_dir": None, "cache_dir": None,
             "trajectories": None}
    cfg = TrainConfig(**saved)
    assert cfg.model_dump(include=set(saved)) == saved
    requested, _, explicit = resolve(["--task", "cifar10", "--model", "afrnn", "--preset", "paper",
                                      "--val-size", "5000", "--eval-every", "700"])
    assert {k: getattr(requested, k) for k in explicit if k in saved} == \
        {k: saved[k] for k in explicit if k in saved}


def test_damping_reaches_the_model_and_is_refused_for_the_lstm():
    config = TrainConfig(task="mnist", damping="euler").model_config_object()
    assert config.damping == "euler"
    assert TrainConfig(task="mnist").model_config_object().damping == "fixed"
    with pytest.raises(ValueError, match="damping apply to the AFRNN family only"):
        TrainConfig(task="mnist", model="lstm", damping="euler")
