"""Reference predictors for the double-pendulum task, scored like the trained models.

They put the Table 3 numbers on a scale. Each predictor maps the initial state s₀ of a test
trajectory to the 29 next states ŝ₁ … ŝ₂₉, using only the 900 training trajectories:

- ``mean trajectory``: ŝ_t = the training mean of s_t (ignores s₀; the error of knowing nothing);
- ``hold initial state``: ŝ_t = s₀ (what a model that never moves would score);
- ``k-NN on s₀``: ŝ_t = the mean of s_t over the k training trajectories whose initial states are
  nearest to s₀ (Euclidean, in rad and rad/s); k is chosen by leave-one-out on the training set,
  never on the test set;
- ``MLP on s₀``: a plain feed-forward network ŝ₁…ŝ₂₉ = f(s₀) (4 → 256 → 256 → 29·4, tanh),
  trained with Adam on the summed squared error of the raw states (the same loss as the recurrent
  models); s₀ is standardised with the training statistics. A seeded random ``val_size`` of the
  training trajectories is held out and the epoch with the lowest validation MSE is kept (early
  stopping after ``patience`` epochs without improvement); the test set is never looked at.

The scores come from :class:`training.objectives.TrajectoryObjective`, the code that scores the
trained models: per-value MSE (rad²) and the paper's metric (summed squared error over each test
batch of 8, averaged over the batches). ::

    python -m training.pendulum_baselines            # markdown table, then one JSON line
    python -m training.pendulum_baselines --mlp-seeds 0 1 2     # the MLP over three seeds
"""

import argparse
import json
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

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


@dataclass(frozen=True)
class MLPSettings:
    hidden: tuple[int, ...] = (256, 256)
    lr: float = 1e-3
    batch_size: int = 32
    max_epochs: int = 1000
    patience: int = 100              # epochs without a better validation MSE before stopping
    val_size: int = 90               # held out of the training trajectories (seeded)
    seed: int = 0


def _mlp(inputs: int, hidden: tuple[int, ...], outputs: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    width = inputs
    for h in hidden:
        layers += [nn.Linear(width, h), nn.Tanh()]
        width = h
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


def mlp_predictor(train: np.ndarray, test_initial: np.ndarray, settings: MLPSettings = MLPSettings()
                  ) -> tuple[np.ndarray, dict]:
    """(predicted (N, T, 4), training record): an MLP s₀ → [s₁ … s_T] fitted on ``train`` with the
    epoch chosen by the MSE on a held-out part of ``train``. The record lists the validation MSE of
    every epoch (``val_mse``) and the chosen epoch (``best_epoch``, 1-based)."""
    if not 1 <= settings.val_size < len(train):
        raise ValueError(f"val_size must be in [1, {len(train) - 1}], got {settings.val_size}")
    generator = torch.Generator().manual_seed(settings.seed)
    torch.manual_seed(settings.seed)
    order = torch.randperm(len(train), generator=generator)
    fit_idx, val_idx = order[settings.val_size:], order[:settings.val_size]
    states = torch.from_numpy(train).float()
    steps = states.shape[1] - 1
    mean, std = states[fit_idx, 0].mean(dim=0), states[fit_idx, 0].std(dim=0)

    def features(initial: torch.Tensor) -> torch.Tensor:
        return (initial - mean) / std

    x_fit, y_fit = features(states[fit_idx, 0]), states[fit_idx, 1:].flatten(1)
    x_val, y_val = features(states[val_idx, 0]), states[val_idx, 1:].flatten(1)
    model = _mlp(4, settings.hidden, steps * 4)
    optimizer = torch.optim.Adam(model.parameters(), lr=settings.lr)
    best, best_epoch, best_weights, val_history = float("inf"), 0, None, []
    for epoch in range(1, settings.max_epochs + 1):
        model.train()
        for batch in torch.randperm(len(fit_idx), generator=generator).split(settings.batch_size):
            loss = (model(x_fit[batch]) - y_fit[batch]).pow(2).sum()
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        model.eval()
        with torch.no_grad():
            val_mse = float((model(x_val) - y_val).pow(2).mean())
        val_history.append(val_mse)
        if val_mse < best:
            best, best_epoch = val_mse, epoch
            best_weights = {k: v.clone() for k, v in model.state_dict().items()}
        elif epoch - best_epoch >= settings.patience:
            break
    model.load_state_dict(best_weights)
    model.eval()
    with torch.no_grad():
        predicted = model(features(torch.from_numpy(test_initial).float())).double()
    record = {**asdict(settings), "best_epoch": best_epoch, "epochs_run": len(val_history),
              "best_val_mse": best, "val_mse": val_history,
              "parameters": sum(p.numel() for p in model.parameters())}
    return predicted.reshape(len(test_initial), steps, 4).numpy(), record


def score(predicted: np.ndarray, test: np.ndarray) -> dict:
    """The trained models' test metrics (``TrajectoryObjective``) of a prediction of ``test[:, 1:]``,
    plus ``mse_by_step``: the per-value MSE at each predicted step (how the error grows with time), and
    ``mse_by_variable``: the MSE of θ1, θ2 (rad²), ω1, ω2 (rad²/s²) over all steps."""
    objective = TrajectoryObjective()
    per_sample = objective.per_sample(torch.from_numpy(predicted).double(),
                                      torch.from_numpy(test[:, 1:]).double())
    squared = (predicted - test[:, 1:]) ** 2
    return {**objective.summarise(per_sample), "mse_by_step": [float(v) for v in squared.mean(axis=(0, 2))],
            "mse_by_variable": [float(v) for v in squared.mean(axis=(0, 1))]}


def baselines(train: np.ndarray, test: np.ndarray, mlp_seeds: tuple[int, ...] = (0,),
              mlp_settings: MLPSettings = MLPSettings()) -> list[dict]:
    """One row per predictor: name, settings, and its test metrics (one MLP row per seed)."""
    k, loo = leave_one_out_k(train)
    rows = [dict(predictor="mean trajectory", settings={}, **score(mean_trajectory(train, test[:, 0]), test)),
            dict(predictor="hold initial state", settings={},
                 **score(hold_initial_state(train, test[:, 0]), test)),
            dict(predictor="k-NN on the initial state", settings={"k": k, "leave_one_out_mse": loo},
                 **score(k_nearest_neighbours(train, test[:, 0], k), test))]
    for seed in mlp_seeds:
        predicted, record = mlp_predictor(train, test[:, 0], MLPSettings(**{**asdict(mlp_settings),
                                                                            "seed": seed}))
        rows.append(dict(predictor="MLP on the initial state", settings=record, **score(predicted, test)))
    return rows


def render(rows: list[dict]) -> str:
    lines = ["| predictor | MSE (rad²) | MSE θ1 / θ2 / ω1 / ω2 | paper metric "
             "| MSE at the first / last step |",
             "|---|---|---|---|---|"]
    for row in rows:
        k, seed = row["settings"].get("k"), row["settings"].get("seed")
        name = row["predictor"] + (f" (k = {k}, by leave-one-out)" if k is not None else "")
        if seed is not None:
            name += (f" (seed {seed}, epoch {row['settings']['best_epoch']} by validation, "
                     f"{row['settings']['parameters']} parameters)")
        by_var = " / ".join(f"{v:.3f}" for v in row["mse_by_variable"])
        lines.append(f"| {name} | {row['mse_rad2']:.4f} | {by_var} | {row['paper_metric']:.1f} | "
                     f"{row['mse_by_step'][0]:.3f} / {row['mse_by_step'][-1]:.3f} |")
    mlp = [row["mse_rad2"] for row in rows if row["predictor"].startswith("MLP")]
    if len(mlp) > 1:
        lines.append(f"\nMLP over {len(mlp)} seeds: MSE {np.mean(mlp):.4f} ± {np.std(mlp, ddof=1):.4f} "
                     f"(mean ± sample std)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cache-dir", default=None,
                        help="generated pendulum data (default: $AFRNN_CACHE_DIR, else ~/.cache/afrnn)")
    parser.add_argument("--mlp-seeds", type=int, nargs="*", default=[0],
                        help="one MLP row per seed (default: 0; none: skip the MLP)")
    parser.add_argument("--mlp-max-epochs", type=int, default=MLPSettings.max_epochs)
    parser.add_argument("--threads", type=int, default=None, help="torch threads for the MLP")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    spec = pendulum.PendulumDataSpec()
    states, digest = pendulum.load_or_generate(resolve_cache_dir(args.cache_dir), spec)
    rows = baselines(states[:spec.train], states[spec.train:], tuple(args.mlp_seeds),
                     MLPSettings(max_epochs=args.mlp_max_epochs))
    print(render(rows))
    print(json.dumps({"dataset_hash": digest, "rows": rows}))


if __name__ == "__main__":
    main()
