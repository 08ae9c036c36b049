"""The pendulum training levers (training.pendulum_recipe) against hand-computed values, and a short
standardised run whose manifest and metrics must agree with the raw-unit physics."""

import math

import numpy as np
import pytest
import torch

from artifact.export import load_exported
from model.paper import build_model, paper_config
from physics.encoding import network_inputs
from training import pendulum_recipe as recipe
from training.config import RunOptions, TrainConfig
from training.data.pendulum import PendulumTrajectories
from training.objectives import TrajectoryObjective


def test_cosine_schedule_hits_hand_computed_points():
    assert recipe.cosine_lr(2e-3, 0, 100) == pytest.approx(2e-3)
    assert recipe.cosine_lr(2e-3, 50, 100) == pytest.approx(1e-3)
    assert recipe.cosine_lr(2e-3, 25, 100) == pytest.approx(1e-3 * (1 + math.sqrt(0.5)))
    assert recipe.cosine_lr(2e-3, 100, 100) == pytest.approx(0.0, abs=1e-18)
    assert recipe.cosine_lr(2e-3, 150, 100) == pytest.approx(0.0, abs=1e-18)     # clamped after the end
    with pytest.raises(ValueError, match="total_steps must be positive"):
        recipe.cosine_lr(1e-3, 0, 0)


def test_scheduled_lr_is_set_only_for_cosine():
    param = torch.nn.Parameter(torch.zeros(1))
    cfg = TrainConfig(task="pendulum", model="afrnn", name="x", lr=1e-2, lr_schedule="cosine")
    optimizer = recipe.make_optimizer(cfg, [param])
    recipe.set_scheduled_lr(cfg, optimizer, 50, 100)
    assert optimizer.param_groups[0]["lr"] == pytest.approx(5e-3)
    plain = TrainConfig(task="pendulum", model="afrnn", name="x", lr=1e-2)
    optimizer = recipe.make_optimizer(plain, [param])
    recipe.set_scheduled_lr(plain, optimizer, 50, 100)
    assert optimizer.param_groups[0]["lr"] == 1e-2


def test_weight_decay_selects_adamw_and_shrinks_a_weight_without_gradient():
    param = torch.nn.Parameter(torch.ones(3))
    cfg = TrainConfig(task="pendulum", model="afrnn", name="x", lr=0.1, weight_decay=0.5)
    optimizer = recipe.make_optimizer(cfg, [param])
    assert isinstance(optimizer, torch.optim.AdamW)
    param.grad = torch.zeros(3)
    optimizer.step()                                    # decoupled decay: w ← w (1 − lr·λ)
    torch.testing.assert_close(param.detach(), torch.full((3,), 1 - 0.1 * 0.5))


def test_notebook_init_draws_the_described_standard_deviations():
    torch.manual_seed(0)
    model = build_model(paper_config("pendulum", "afrnn", layer_sizes=(300, 300)))
    recipe.notebook_init(model)
    params = {name: p.detach() for name, p in model.named_parameters()}
    assert float(params["layers.0.weight_rec"].std()) == pytest.approx(0.25, rel=0.02)
    assert float(params["couplings.0.weight_ff"].std()) == pytest.approx(0.25, rel=0.02)
    assert float(params["head.weight"].std()) == pytest.approx(1 / 300, rel=0.05)
    assert float(params["weight_in"].std()) == pytest.approx(1.0, rel=0.1)     # 1200 draws
    assert float(params["layers.1.bias"].abs().max()) == 0.0


def test_weighted_objective_weights_the_loss_but_not_the_metrics():
    outputs = torch.zeros(2, 3, 4)
    targets = torch.ones(2, 3, 4)
    weighted = recipe.WeightedTrajectoryObjective(weights=torch.tensor([1.0, 1.0, 0.0, 0.0]))
    assert float(weighted.loss(outputs, targets)) == pytest.approx(2 * 3 * 2)      # only θ1, θ2 count
    assert float(weighted.per_sample(outputs, targets)["mse_rad2"].mean()) == pytest.approx(1.0)


def test_standardised_metrics_equal_the_raw_metrics():
    """A prediction scored in the network's standardised space must get the raw-unit numbers."""
    gen = torch.Generator().manual_seed(0)
    raw_out, raw_target = torch.randn(5, 7, 4, generator=gen), torch.randn(5, 7, 4, generator=gen)
    scale, offset = torch.tensor([0.5, 1.0, 2.0, 3.0]), torch.tensor([0.1, -0.2, 0.3, 0.0])
    scaled = recipe.WeightedTrajectoryObjective(scale, offset)
    got = scaled.summarise(scaled.per_sample((raw_out - offset) / scale, (raw_target - offset) / scale))
    want = TrajectoryObjective().summarise(TrajectoryObjective().per_sample(raw_out, raw_target))
    for key in ("mse_rad2", "paper_metric", "loss"):
        assert got[key] == pytest.approx(want[key], rel=1e-5)


def test_normalised_batches_standardise_the_initial_state_and_targets_only():
    states = torch.arange(2 * 5 * 4, dtype=torch.float32).reshape(2, 5, 4)
    stats = recipe.standardisation(PendulumTrajectories(states))
    data = PendulumTrajectories(states).with_normalisation(**stats).subset(torch.tensor([1, 0]))
    x, y = data.batch(torch.tensor([0]))
    torch.testing.assert_close(x[0, 0], (states[1, 0] - stats["input_mean"]) / stats["input_std"])
    assert bool((x[0, 1:] == 1.0).all())                 # the placeholder is not normalised
    torch.testing.assert_close(y[0], (states[1, 1:] - stats["target_mean"]) / stats["target_std"])
    # hand-computed: initial states are [0..3] and [20..23], so mean 10..13 and std 10·√2
    torch.testing.assert_close(stats["input_mean"], torch.tensor([10.0, 11.0, 12.0, 13.0]))
    torch.testing.assert_close(stats["input_std"], torch.full((4,), 10 * math.sqrt(2)))
    with pytest.raises(ValueError, match="input_std must be positive"):
        PendulumTrajectories(states, input_mean=stats["input_mean"], input_std=torch.zeros(4))


@pytest.mark.parametrize("bad, match", [
    (dict(task="mnist", standardize=True), "standardize applies to the pendulum task only"),
    (dict(loss_weights=(0, 0, 0, 0)), "loss_weights must be >= 0 and not all 0"),
    (dict(loss_weights=(1, -1, 1, 1)), "loss_weights must be >= 0 and not all 0"),
    (dict(model="lstm", init="notebook"), "init 'notebook' applies to the AFRNN family only"),
    (dict(task="mnist", data_seed=1), "data_seed applies to the pendulum task only"),
    (dict(task="cifar10", solver="joint"), "solver applies to the pendulum task only"),
    (dict(solver="rk4"), "solver"),
    (dict(task="mnist", pendulum_input="initial-every-step"), "pendulum_input applies to the pendulum"),
])
def test_config_rejects_levers_that_do_not_apply(bad, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**{**dict(task="pendulum", model="afrnn", name="x"), **bad})


def test_standardised_run_exports_a_manifest_that_undoes_the_standardisation(tmp_path):
    """A short standardised, cosine, weighted run: the manifest stores the training statistics, and
    the exported network's output, de-normalised with them, scores the test metric in raw units."""
    from training.trainer import train

    cfg = TrainConfig(task="pendulum", model="afrnn", name="pstd", trajectories=20, epochs=2,
                      batch_size=4, val_size=4, standardize=True, lr_schedule="cosine", lr=1e-3,
                      weight_decay=1e-4, loss_weights=(1, 1, 0.5, 0.5), init="notebook",
                      hidden_size=8, cache_dir=str(tmp_path / "cache"))
    manifest = train(cfg, RunOptions(out_dir=tmp_path, threads=1, progress=False))
    states = np.load(next((tmp_path / "cache").glob("*.npz")))["states"]
    train_states = torch.from_numpy(states[:18].astype(np.float32))
    order = np.random.default_rng(0).permutation(18)           # trainer.split_indices, seed 0
    fit = train_states[np.sort(order[4:])]
    np.testing.assert_allclose(manifest.input.normalization_mean, fit[:, 0].mean(0).numpy(), rtol=1e-5)
    np.testing.assert_allclose(manifest.output.scale, fit[:, 1:].reshape(-1, 4).std(0).numpy(), rtol=1e-4)
    module, _ = load_exported(tmp_path / "pstd.json")
    test = torch.from_numpy(states[18:].astype(np.float32))
    x0 = (test[:, 0] - torch.tensor(manifest.input.normalization_mean)) / torch.tensor(
        manifest.input.normalization_std)
    with torch.no_grad():
        out = module(network_inputs(x0, 29), None, True)
    predicted = out * torch.tensor(manifest.output.scale) + torch.tensor(manifest.output.offset)
    mse = float(((predicted - test[:, 1:]) ** 2).mean())
    assert manifest.metrics["mse_rad2"] == pytest.approx(mse, rel=1e-4)


def test_the_two_input_encodings_by_hand():
    s0 = torch.tensor([[0.1, -0.2, 0.3, -0.4], [1.0, 2.0, 3.0, 4.0]])
    paper = network_inputs(s0, 5)
    every = network_inputs(s0, 5, "initial-every-step")
    assert paper.shape == every.shape == (2, 5, 4)
    torch.testing.assert_close(paper[:, 0], s0)
    assert bool((paper[:, 1:] == 1.0).all())                          # the placeholder
    for t in range(5):
        torch.testing.assert_close(every[:, t], s0)                   # s0 at every step
    torch.testing.assert_close(network_inputs(s0, 5, "initial-then-placeholder"), paper)
    with pytest.raises(ValueError, match="encoding must be one of"):
        network_inputs(s0, 5, "sometimes")


def test_every_step_run_records_its_encoding_and_the_service_rolls_out_with_it(tmp_path):
    """A short run with ``pendulum_input='initial-every-step'``: the manifest says so, its test metric
    is the exported network's on s₀-at-every-step inputs (and not on the paper's), and the service's
    predictor builds exactly those inputs."""
    from service.tasks.pendulum import PendulumAPI
    from training.trainer import train

    cfg = TrainConfig(task="pendulum", model="afrnn", name="pevery", trajectories=20, epochs=2,
                      batch_size=4, val_size=4, lr=1e-2, pendulum_input="initial-every-step",
                      hidden_size=8, cache_dir=str(tmp_path / "cache"))
    manifest = train(cfg, RunOptions(out_dir=tmp_path, threads=1, progress=False))
    assert manifest.input.encoding == "initial-every-step" and "every step" in manifest.input.layout
    states = np.load(next((tmp_path / "cache").glob("*.npz")))["states"]
    test = torch.from_numpy(states[18:].astype(np.float32))
    module, loaded = load_exported(tmp_path / "pevery.json")
    with torch.no_grad():
        every = module(network_inputs(test[:, 0], 29, "initial-every-step"), None, True)
        paper = module(network_inputs(test[:, 0], 29), None, True)
    assert manifest.metrics["mse_rad2"] == pytest.approx(float(((every - test[:, 1:]) ** 2).mean()), rel=1e-4)
    assert not torch.allclose(every, paper)
    api = PendulumAPI(loaded, module, torch.device("cpu"))
    with torch.inference_mode():
        torch.testing.assert_close(api.predict(test[:, 0], 29), every, rtol=1e-5, atol=1e-6)


def test_a_larger_set_needs_its_own_data_seed(tmp_path):
    """--trajectories 2000 with the standard seed would train on the standard test trajectories."""
    from training.tasks import TASKS

    cfg = TrainConfig(task="pendulum", model="afrnn", name="x", trajectories=2000, cache_dir=str(tmp_path))
    with pytest.raises(ValueError, match="standard test trajectories"):
        TASKS["pendulum"].load(cfg)
    cfg = TrainConfig(task="pendulum", model="afrnn", name="x", trajectories=20, points=4, data_seed=7,
                      solver="joint", cache_dir=str(tmp_path))
    data = TASKS["pendulum"].load(cfg)
    assert (len(data.train), data.train.sequence_length) == (18, 3)
    assert "seed 7" in data.train.description and "jointly" in data.train.description
