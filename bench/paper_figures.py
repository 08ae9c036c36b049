"""Regenerate the paper's Figs. 2–4 (and the spectra of D_t B) for ARNN, 2-ARNN, FRNN, AFRNN and LSTM.

Settings: the paper's pixel-MNIST configurations (``model.paper_model('mnist', variant)``: 128 units
per layer, ε = 0.01, γ = 0.001, 784 steps; the LSTM has one layer of 128), random weights from
``--seed``, like the paper's untrained-dynamics figures. The input is MNIST test image ``--sample``
(normalised as in training) when the data set is found (``--data-dir``, ``AFRNN_DATA_DIR`` or the
workspace's shared data), else seeded N(0, 1) noise; the JSON records which.

The second run of Fig. 3 starts at z_0 + δ·v with ‖v‖ = 1 and δ = ``--delta`` (default 1.0, i.e.
about 0.06 per neuron of the 256-dimensional state: small, but visible in a neuron plane).

    python bench/paper_figures.py                  # writes docs/figures/*.png and paper_figures.json
    python bench/paper_figures.py --quick          # 196 steps, fewer samples (< 45 s), to /tmp

Outputs (in ``--out``):
    fig2_activations.png            top-layer activations, (a) 2-ARNN (b) AFRNN
    fig3_divergence.png             two runs in a neuron plane, 2-ARNN and AFRNN, and the divergence of all
    fig4_gradient_propagation.png   mean |λ(∂z_T/∂z_t)| over t, all five models (linear axis as the paper)
    fig4_gradient_propagation_log.png   the same on a log axis, with ‖∂z_T/∂z_t‖₂ dashed
    eigenvalues.png                 eigenvalues of D_t B at t = 0, T/2, T−1 for the four AFRNN-family models
    paper_figures.json              the settings and each model's report summary
The last line of the output is one JSON object with the summary figures.
"""

import argparse
import json
import os
import sys
import time
from pathlib import Path

import torch
from matplotlib.figure import Figure

from model import paper_model
from model.stability import stability_report
from model.stability.plots import (
    LAYOUT,
    figure_activations,
    figure_divergence,
    figure_gradient_propagation,
    figure_to_png,
    plot_eigenvalues,
)

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine  # noqa: E402

VARIANTS = ("arnn", "2-arnn", "frnn", "afrnn", "lstm")
LABELS = {"arnn": "ARNN", "2-arnn": "2-ARNN", "frnn": "FRNN", "afrnn": "AFRNN", "lstm": "LSTM"}
REPO = Path(__file__).resolve().parents[1]


def mnist_sample(index: int, data_dir: str | None) -> tuple[torch.Tensor | None, str]:
    """(normalised test image as (784, 1), description), or (None, why not)."""
    try:
        from training.data.mnist import load_mnist
        from training.data.paths import resolve_data_dir
        test = load_mnist(resolve_data_dir(data_dir), "test")
    except (ImportError, FileNotFoundError, ValueError) as err:
        return None, f"MNIST unavailable ({err})"
    inputs, labels = test.batch(torch.tensor([index]))
    return inputs[0], f"MNIST test image {index} (label {int(labels[0])})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=None,
                        help="output directory (default docs/figures; --quick: /tmp/afrnn-paper-figures)")
    parser.add_argument("--seed", type=int, default=0, help="weight seed (default 0)")
    parser.add_argument("--sample", type=int, default=0, help="MNIST test image (default 0)")
    parser.add_argument("--data-dir", help="MNIST data directory (see training.data.paths)")
    parser.add_argument("--delta", type=float, default=1.0, help="Fig. 3 perturbation size (default 1.0)")
    parser.add_argument("--quick", action="store_true", help="196 steps and fewer samples (< 45 s)")
    args = parser.parse_args()
    out = args.out or (Path("/tmp/afrnn-paper-figures") if args.quick else REPO / "docs" / "figures")
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)        # LAPACK on a shared 2-core machine: see bench/stability_report.py

    x, source = mnist_sample(args.sample, args.data_dir)
    if x is None:
        x = torch.randn(784, 1, generator=torch.Generator().manual_seed(args.seed))
        source = f"N(0, 1) noise, seed {args.seed}; {source}"
    steps = 196 if args.quick else 784
    x = x[:steps]
    print(f"input: {source}, {steps} steps")

    reports, summaries = {}, {}
    for variant in VARIANTS:
        torch.manual_seed(args.seed)
        model = paper_model("mnist", variant).eval()
        start = time.perf_counter()
        report = stability_report(model, x, delta=args.delta, seed=args.seed, lyapunov_k=16,
                                   spectrum_samples=16 if args.quick else 64,
                                   gradient_samples=16 if args.quick else 64)
        elapsed = time.perf_counter() - start
        reports[LABELS[variant]] = report
        s = report.summary
        summaries[variant] = {**s.model_dump(), "report_s": round(elapsed, 2),
                              "max_abs_state": report.trajectory.max_abs_state,
                              "gradient_horizon": report.gradients.horizon_step,
                              "zero_derivative_units": (report.spectrum.zero_derivative_units
                                                        if report.spectrum is not None else None)}
        print(f"{LABELS[variant]:>6}: {s.verdict:<8} max Re λ = {s.max_real_eigenvalue}, "
              f"max ρ = {s.max_step_spectral_radius}, λ₁ = {s.top_lyapunov_exponent:.3g}, "
              f"‖∂z_T/∂z_0‖ = {s.gradient_norm_ratio:.3g}, divergence/δ = {s.divergence_ratio:.3g}, "
              f"max|z| = {report.trajectory.max_abs_state:.3g} ({elapsed:.1f} s)")

    pair = {k: reports[k] for k in ("2-ARNN", "AFRNN")}
    images = {
        "fig2_activations.png": figure_activations(pair),
        "fig3_divergence.png": figure_divergence(pair, divergence_reports=reports),
        "fig4_gradient_propagation.png": figure_gradient_propagation(reports, log_scale=False),
        "fig4_gradient_propagation_log.png": figure_gradient_propagation(reports, spectral_norm=True),
    }
    family = [k for k in reports if k != "LSTM"]
    eigen = Figure(figsize=(4.4 * len(family), 3.8), layout=LAYOUT)
    for ax, label in zip(eigen.subplots(1, len(family)), family, strict=True):
        plot_eigenvalues(reports[label], ax, label=label)
    images["eigenvalues.png"] = eigen
    for name, figure in images.items():
        (out / name).write_bytes(figure_to_png(figure))
    settings = {"task": "mnist", "steps": steps, "seed": args.seed, "input": source, "delta": args.delta,
                "epsilon": 0.01, "gamma": 0.001, "hidden": 128, "lyapunov_k": 16,
                "command": "python bench/paper_figures.py" + (" --quick" if args.quick else "")}
    (out / "paper_figures.json").write_text(json.dumps({"settings": settings, "models": summaries},
                                                       indent=1) + "\n")
    print(f"wrote {', '.join(sorted(images))} and paper_figures.json to {out}")
    print(json.dumps({v: {"verdict": s["verdict"], "gradient_norm_ratio": s["gradient_norm_ratio"],
                          "top_lyapunov_exponent": s["top_lyapunov_exponent"],
                          "max_real_eigenvalue": s["max_real_eigenvalue"],
                          "report_s": s["report_s"]} for v, s in summaries.items()}
                     | {"quick": args.quick, "machine": machine.describe()}))


if __name__ == "__main__":
    main()
