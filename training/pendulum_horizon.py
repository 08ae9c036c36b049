"""How a served pendulum model's error grows with time, on the standard 100 test trajectories.

The standard data set's last 100 initial states (``PendulumDataSpec()``, the test split every table
uses) are integrated with the data's own solver (``physics.pendulum.simulate``) out to
``--seconds``, and the exported model (TorchScript + manifest, the way the service runs it: input
normalisation on s₀, output ``scale/offset`` undone) rolls out the same number of steps. Reported,
in rad² and rad²/s² per value:

* ``mse_first_2.9s``: the per-value MSE over the first 29 steps (the paper's horizon; for a model
  trained on 2.9 s this equals its test ``mse_rad2``), and per variable;
* ``per_second``: the per-value MSE over each second (steps in (k−1, k] s), with ``extrapolated``
  set where the second lies beyond the manifest's trained horizon;
* the energy drift: mean |E(ŝ_t) − E(s₀)| in joules at the end of each second.

::

    python -m training.pendulum_horizon checkpoints/pendulum.json --seconds 10 --figure docs/figures/x.png

The last line of output is one JSON object.
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from artifact.export import load_exported
from physics.encoding import network_inputs
from physics.pendulum import simulate, total_energy
from training.data import pendulum
from training.data.paths import resolve_cache_dir

PAPER_STEPS = 29


def rollout(module, manifest, initial: np.ndarray, steps: int) -> np.ndarray:
    """(N, steps, 4) states predicted by an exported model from (N, 4) initial states (rad, rad/s)."""
    spec, out = manifest.input, manifest.output
    x0 = torch.from_numpy(initial.astype(np.float32))
    x0 = (x0 - torch.tensor(spec.normalization_mean)) / torch.tensor(spec.normalization_std)
    with torch.no_grad():
        predicted = module(network_inputs(x0, steps, spec.encoding), None, True).float()
    if out.scale is not None:
        predicted = predicted * torch.tensor(out.scale) + torch.tensor(out.offset)
    return predicted.double().numpy()


def error_growth(predicted: np.ndarray, reference: np.ndarray, initial: np.ndarray, dt: float,
                 trained_horizon_s: float) -> dict:
    """The module docstring's figures from predicted and true states (N, T, 4) at t = dt … T·dt."""
    squared = (predicted - reference) ** 2
    steps = predicted.shape[1]
    times = (np.arange(steps) + 1) * dt
    first = squared[:, :PAPER_STEPS]
    energy0 = total_energy(initial)[:, None]
    drift = np.abs(total_energy(predicted) - energy0)
    true_drift = np.abs(total_energy(reference) - energy0)
    rows = []
    for second in range(1, int(np.ceil(times[-1] - 1e-9)) + 1):
        mask = (times > second - 1 + 1e-9) & (times <= second + 1e-9)
        if not mask.any():
            continue
        last = np.nonzero(mask)[0][-1]
        rows.append({"second": second, "mse": float(squared[:, mask].mean()),
                     "mse_by_variable": [float(v) for v in squared[:, mask].mean(axis=(0, 1))],
                     "energy_drift_j": float(drift[:, last].mean()),
                     "reference_energy_drift_j": float(true_drift[:, last].mean()),
                     "extrapolated": bool(second > trained_horizon_s + 1e-9)})
    return {"mse_first_2.9s": float(first.mean()),
            "mse_first_2.9s_by_variable": [float(v) for v in first.mean(axis=(0, 1))],
            "mse_by_step": [float(v) for v in squared.mean(axis=(0, 2))], "per_second": rows}


def plot(result: dict, path: Path, title: str) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = result["mse_by_step"]
    times = (np.arange(len(steps)) + 1) * result["dt"]
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.semilogy(times, steps, label="per-value MSE at each step")
    ax.axvline(result["trained_horizon_s"], color="grey", linestyle="--", label="trained horizon")
    ax.set_xlabel("time after the initial state (s)")
    ax.set_ylabel("MSE (rad², rad²/s²)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("manifest", help="<name>.json of an exported pendulum model")
    parser.add_argument("--seconds", type=float, default=10.0, help="rollout length (10 s = 100 steps)")
    parser.add_argument("--figure", default=None, help="write the error-growth figure here (PNG)")
    parser.add_argument("--cache-dir", default=None)
    parser.add_argument("--threads", type=int, default=None)
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    module, manifest = load_exported(args.manifest)
    dt = float(manifest.output.dt)
    steps = int(round(args.seconds / dt))
    if steps < PAPER_STEPS:
        parser.error(f"--seconds must cover the paper's {PAPER_STEPS} steps ({PAPER_STEPS * dt:g} s)")
    spec = pendulum.PendulumDataSpec()
    states, digest = pendulum.load_or_generate(resolve_cache_dir(args.cache_dir), spec)
    initial = states[spec.train:, 0]
    reference = simulate(initial, steps, dt)[:, 1:]
    np.testing.assert_allclose(reference[:, :PAPER_STEPS], states[spec.train:, 1:], atol=1e-8)
    horizon = manifest.output.trained_horizon_s or manifest.input.sequence_length * dt
    result = {"model": manifest.name, "version": manifest.version, "dataset_hash": digest, "dt": dt,
              "trained_horizon_s": horizon, "training_data": manifest.output.training_data,
              **error_growth(rollout(module, manifest, initial, steps), reference, initial, dt, horizon)}
    print(f"{manifest.name}: per-value MSE over the first 2.9 s of the standard 100 test trajectories "
          f"{result['mse_first_2.9s']:.4f} (θ1 / θ2 / ω1 / ω2: "
          + " / ".join(f"{v:.3f}" for v in result["mse_first_2.9s_by_variable"]) + ")")
    print("| second | MSE | θ1 / θ2 / ω1 / ω2 | mean energy drift (J) | physics' drift (J) |")
    print("|---|---|---|---|---|")
    for row in result["per_second"]:
        mark = " (extrapolated)" if row["extrapolated"] else ""
        print(f"| {row['second']}{mark} | {row['mse']:.4f} | "
              + " / ".join(f"{v:.3f}" for v in row["mse_by_variable"])
              + f" | {row['energy_drift_j']:.3f} | {row['reference_energy_drift_j']:.2e} |")
    if args.figure:
        plot(result, Path(args.figure),
             f"{manifest.name}: error growth on the 100 standard test trajectories")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
