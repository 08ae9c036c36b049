"""Non-learned reference predictors for the double-pendulum task, scored like the trained models.

They put the Table 3 numbers on a scale. Each predictor maps the initial state s₀ of a test
trajectory to the 29 next states ŝ₁ … ŝ₂₉, using only the 900 training trajectories:

- ``mean trajectory``: ŝ_t = the training mean of s_t (ignores s₀; the error of knowing nothing);
- ``hold initial state``: ŝ_t = s₀ (what a model that never moves would score);
- ``k-NN on s₀``: ŝ_t = the mean of s_t over the k training trajectories whose initial states are
  nearest to s₀ (Euclidean, in rad and rad/s); k is chosen by leave-one-out on the training set,
  never on the test set.

The scores come from :class:`training.objectives.TrajectoryObjective`, the code that scores the
trained models: per-value MSE (rad²) and the paper's metric (summed squared error over each test
batch of 8, averaged over the batches). ::

    python -m training.pendulum_baselines            # markdown table, then one JSON line
"""

import argparse
import json

import numpy as np
import torch

from training.data import pendulum
from training.data.paths import resolve_cache_dir
from training.objectives import TrajectoryObjective

K_GRID = (1, 2, 3, 5, 8, 10, 15, 20, 30)


def mean_trajectory(train: np.ndarray, test_initial: np.ndarray) -> np.ndarray:
    """(N, T, 4): the training mean of every later state, the same for every test trajectory."""
    return np.broadcast_to(train[:, 1:].mean(axis=0), (len(test_initial), *train[:, 1:].shape[1:])).copy()


def hold_initial_state(train: np.ndarray, test_initial: np.ndarray) -> np.ndarray:
    """(N, T, 4): ŝ_t = s₀ at every step."""
    steps = train.shape[1] - 1
    return np.repeat(test_initial[:, None, :], steps, axis=1)


def _neighbour_order(train_initial: np.ndarray, query: np.ndarray) -> np.ndarray:
    distances = ((query[:, None, :] - train_initial[None, :, :]) ** 2).sum(axis=-1)
    return np.argsort(distances, axis=1, kind="stable")


def k_nearest_neighbours(train: np.ndarray, test_initial: np.ndarray, k: int) -> np.ndarray:
    """(N, T, 4): the mean later states of the k training trajectories nearest in initial state."""
    if not 1 <= k <= len(train):
        raise ValueError(f"k must be in [1, {len(train)}], got {k}")
    nearest = _neighbour_order(train[:, 0], test_initial)[:, :k]
    return train[:, 1:][nearest].mean(axis=1)


def leave_one_out_k(train: np.ndarray, grid: tuple[int, ...] = K_GRID) -> tuple[int, dict[int, float]]:
    """(best k, per-value MSE of each k): each training trajectory predicted from the other ones."""
    order = _neighbour_order(train[:, 0], train[:, 0])[:, 1:]          # drop the trajectory itself
    targets = train[:, 1:]
    errors = {k: float(((targets[order[:, :k]].mean(axis=1) - targets) ** 2).mean())
              for k in grid if k < len(train)}
    return min(errors, key=errors.get), errors


def score(predicted: np.ndarray, test: np.ndarray) -> dict:
    """The trained models' test metrics (``TrajectoryObjective``) of a prediction of ``test[:, 1:]``,
    plus ``mse_by_step``: the per-value MSE at each predicted step (how the error grows with time)."""
    objective = TrajectoryObjective()
    per_sample = objective.per_sample(torch.from_numpy(predicted).double(),
                                      torch.from_numpy(test[:, 1:]).double())
    by_step = ((predicted - test[:, 1:]) ** 2).mean(axis=(0, 2))
    return {**objective.summarise(per_sample), "mse_by_step": [float(v) for v in by_step]}


def baselines(train: np.ndarray, test: np.ndarray) -> list[dict]:
    """One row per predictor: name, settings, and its test metrics."""
    k, loo = leave_one_out_k(train)
    rows = [dict(predictor="mean trajectory", settings={}, **score(mean_trajectory(train, test[:, 0]), test)),
            dict(predictor="hold initial state", settings={},
                 **score(hold_initial_state(train, test[:, 0]), test)),
            dict(predictor="k-NN on the initial state", settings={"k": k, "leave_one_out_mse": loo},
                 **score(k_nearest_neighbours(train, test[:, 0], k), test))]
    return rows


def render(rows: list[dict]) -> str:
    lines = ["| predictor | paper metric | MSE (rad²) | MSE at the first / last step |", "|---|---|---|---|"]
    for row in rows:
        k = row["settings"].get("k")
        name = row["predictor"] + (f" (k = {k}, by leave-one-out)" if k is not None else "")
        lines.append(f"| {name} | {row['paper_metric']:.1f} | {row['mse_rad2']:.4f} | "
                     f"{row['mse_by_step'][0]:.3f} / {row['mse_by_step'][-1]:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", default=None,
                        help="generated pendulum data (default: $AFRNN_CACHE_DIR, else ~/.cache/afrnn)")
    args = parser.parse_args(argv)
    spec = pendulum.PendulumDataSpec()
    states, digest = pendulum.load_or_generate(resolve_cache_dir(args.cache_dir), spec)
    rows = baselines(states[:spec.train], states[spec.train:])
    print(render(rows))
    print(json.dumps({"dataset_hash": digest, "rows": rows}))


if __name__ == "__main__":
    main()
