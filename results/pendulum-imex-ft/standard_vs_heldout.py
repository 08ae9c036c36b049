"""Is the standard 100-trajectory test set harder than the held-out set, or only small? (issue 29 §3)

Per-trajectory MSE (per value, first 2.9 s) of an exported pendulum model on the standard 100 test
trajectories and on the 5 000 held-out trajectories of its own training data (seed 1, the last 5 000 of
50 000); then the distribution of the mean over 100 trajectories drawn from the 5 000 (10 000 draws
without replacement), and where the standard set's mean falls in it. Last line: JSON.

    python results/pendulum-imex-ft/standard_vs_heldout.py results/pendulum-imex-ft/pendulum-imex-ft.json
"""

import json
import sys

import numpy as np
import torch

from artifact.export import load_exported
from training.data import pendulum
from training.data.paths import resolve_cache_dir
from training.pendulum_horizon import PAPER_STEPS, rollout

torch.set_num_threads(1)
module, manifest = load_exported(sys.argv[1])
cache = resolve_cache_dir(None)


def per_trajectory(spec: pendulum.PendulumDataSpec) -> np.ndarray:
    states, _ = pendulum.load_or_generate(cache, spec)
    test = states[spec.train:]
    predicted = rollout(module, manifest, test[:, 0], PAPER_STEPS)
    return ((predicted - test[:, 1:1 + PAPER_STEPS]) ** 2).mean(axis=(1, 2))


standard = per_trajectory(pendulum.PendulumDataSpec())
heldout = per_trajectory(pendulum.PendulumDataSpec(trajectories=50000, seed=1, train=45000, solver="joint"))
rng = np.random.default_rng(0)
means = np.array([rng.choice(heldout, 100, replace=False).mean() for _ in range(10000)])
top = np.sort(standard)[::-1]
result = {
    "standard_mean": float(standard.mean()), "standard_median": float(np.median(standard)),
    "standard_top5_share": float(top[:5].sum() / top.sum()),
    "heldout_mean": float(heldout.mean()), "heldout_median": float(np.median(heldout)),
    "heldout_top5pct_share": float(np.sort(heldout)[::-1][:250].sum() / heldout.sum()),
    "means_of_100_p5_p50_p95": [float(x) for x in np.percentile(means, [5, 50, 95])],
    "fraction_of_100_draws_at_or_above_standard": float((means >= standard.mean()).mean()),
    "standard_without_its_top3": float(top[3:].mean()),
}
print(f"standard 100: mean {result['standard_mean']:.4f}, median {result['standard_median']:.4f}, "
      f"its 5 worst trajectories {result['standard_top5_share']:.0%} of the error; held-out 5000: mean "
      f"{result['heldout_mean']:.4f}, median {result['heldout_median']:.4f}; means of 100 held-out "
      f"trajectories: 5/50/95th percentile " + " / ".join(f"{x:.4f}" for x in result["means_of_100_p5_p50_p95"])
      + f"; {result['fraction_of_100_draws_at_or_above_standard']:.2%} of the draws ≥ the standard set's mean")
print(json.dumps(result))
