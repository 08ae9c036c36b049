"""The non-learned pendulum predictors against hand-computed answers and the pendulum's own physics."""

import numpy as np
import pytest

from physics.pendulum import simulate
from training import pendulum_baselines as pb


@pytest.fixture(scope="module")
def states() -> np.ndarray:
    """160 real double-pendulum trajectories (160, 30, 4) from the generator, initial states seeded."""
    initial = np.deg2rad(np.random.default_rng(0).uniform(-90, 90, size=(160, 4)))
    return simulate(initial, 29)


def test_mean_trajectory_error_is_the_variance_about_the_training_mean(states):
    train, test = states[:40], states[40:48]
    metrics = pb.score(pb.mean_trajectory(train, test[:, 0]), test)
    expected = ((test[:, 1:] - train[:, 1:].mean(axis=0)) ** 2).mean()
    assert metrics["mse_rad2"] == pytest.approx(expected, rel=1e-12)
    assert len(metrics["mse_by_step"]) == 29
    assert np.mean(metrics["mse_by_step"]) == pytest.approx(expected, rel=1e-12)


def test_paper_metric_is_the_summed_error_of_a_batch_of_eight_when_batches_are_full(states):
    train, test = states[:40], states[40:56]                     # 16 test trajectories: two full batches
    metrics = pb.score(pb.hold_initial_state(train, test[:, 0]), test)
    assert metrics["paper_metric"] == pytest.approx(8 * 29 * 4 * metrics["mse_rad2"], rel=1e-12)


def test_one_nearest_neighbour_of_a_training_trajectory_is_itself(states):
    train = states[:30]
    predicted = pb.k_nearest_neighbours(train, train[:, 0], k=1)
    np.testing.assert_array_equal(predicted, train[:, 1:])


def test_k_nearest_neighbours_averages_the_k_closest_initial_states():
    train = np.zeros((4, 3, 4))
    train[:, 0, 0] = [0.0, 1.0, 2.0, 10.0]                     # initial θ1; later states = index
    train[:, 1:, :] = np.arange(4.0)[:, None, None]
    predicted = pb.k_nearest_neighbours(train, np.array([[1.2, 0, 0, 0]]), k=2)
    np.testing.assert_allclose(predicted, 1.5)                 # neighbours 1 and 2
    with pytest.raises(ValueError, match="k must be in"):
        pb.k_nearest_neighbours(train, train[:, 0], k=5)


def test_leave_one_out_never_lets_a_trajectory_predict_itself(states):
    train = states[:40]
    k, errors = pb.leave_one_out_k(train, grid=(1, 3))
    assert k in (1, 3)
    assert errors[1] > 0                                       # it would be exactly 0 with itself
    assert errors[k] == min(errors.values())


def test_nearest_neighbours_beat_knowing_nothing_on_real_trajectories(states):
    """Physics makes nearby initial states evolve alike over the first steps, so k-NN must beat the
    mean trajectory there: a check that the data, the predictor and the metric fit together."""
    rows = {row["predictor"]: row for row in pb.baselines(states[:140], states[140:])}
    assert rows["k-NN on the initial state"]["mse_rad2"] < rows["mean trajectory"]["mse_rad2"]
    assert rows["k-NN on the initial state"]["settings"]["k"] in pb.K_GRID
    assert "k = " in pb.render(list(rows.values()))


def test_mlp_recovers_a_linear_map_and_keeps_the_epoch_with_the_lowest_validation_error():
    """Trajectories that are an exact linear function of s₀ (an independent oracle): the MLP must
    learn them far better than the mean trajectory, and report the epoch of its minimum val MSE."""
    rng = np.random.default_rng(0)
    initial = rng.uniform(-1, 1, size=(120, 4))
    mixing = rng.normal(size=(4, 5 * 4))
    states = np.concatenate([initial[:, None, :], (initial @ mixing).reshape(120, 5, 4)], axis=1)
    train, test = states[:100], states[100:]
    settings = pb.MLPSettings(hidden=(32,), lr=1e-2, max_epochs=150, patience=150, val_size=20)
    predicted, record = pb.mlp_predictor(train, test[:, 0], settings)
    assert predicted.shape == (20, 5, 4)
    assert record["best_epoch"] == int(np.argmin(record["val_mse"])) + 1
    assert record["best_val_mse"] == min(record["val_mse"])
    mse = pb.score(predicted, test)["mse_rad2"]
    assert mse < 0.05 * pb.score(pb.mean_trajectory(train, test[:, 0]), test)["mse_rad2"]


def test_mlp_stops_after_patience_epochs_without_improvement_and_is_reproducible(states):
    settings = pb.MLPSettings(hidden=(8,), max_epochs=400, patience=3, val_size=10)
    predicted, record = pb.mlp_predictor(states[:40], states[40:44, 0], settings)
    assert record["epochs_run"] in (min(record["best_epoch"] + 3, 400), 400)
    assert record["best_epoch"] == int(np.argmin(record["val_mse"])) + 1
    # mlp_predictor gets only the test initial states; a second run with the same seed is identical
    again, _ = pb.mlp_predictor(states[:40], states[40:44, 0].copy(), settings)
    np.testing.assert_array_equal(predicted, again)
    with pytest.raises(ValueError, match="val_size must be in"):
        pb.mlp_predictor(states[:10], states[40:44, 0], pb.MLPSettings(val_size=10))


def test_score_reports_the_error_of_each_variable():
    test = np.zeros((2, 3, 4))
    predicted = np.zeros((2, 2, 4))
    predicted[..., 2] = 2.0                                   # ω1 off by 2 everywhere
    metrics = pb.score(predicted, test)
    assert metrics["mse_by_variable"] == pytest.approx([0.0, 0.0, 4.0, 0.0])
    assert metrics["mse_rad2"] == pytest.approx(1.0)
