"""Benchmark of the stability report (target: < 5 s for the pixel-MNIST AFRNN, 784 steps, batch 1,
state 256, with k = 16 Lyapunov exponents, on this 2-core CPU).

Times ``model.stability.stability_report`` on the served form of the model (``torch.jit.script``,
saved and loaded) with every section, per intra-op thread count, and reports the per-part split
(forward, Jacobians, spectrum, gradients, Lyapunov, trajectory). Also times the LSTM and FRNN
reports, the eager model, the PNG rendering, and one dense 256 × 256 float64 eigensolve, to show what
an exact spectrum at every one of the 784 steps would cost (784 × that, once for D_t B and once for
∂z_T/∂z_t) against the sampled exact steps plus per-step bounds the report uses.

    python bench/stability_report.py            # full run: 5 repeats, 1 and 2 threads (≈ 1–2 min)
    python bench/stability_report.py --quick    # one repeat, 1 thread, < 45 s
    python bench/stability_report.py --threads 2 --force

The machine is shared: the 1-minute load average before and after is printed and goes into the JSON.
With more runnable threads than cores, 2-thread MKL/OpenMP kernels stall at their barriers and slow
down many times over (measured here at load 6 on 2 cores: 106 s instead of 4 s for the AFRNN
report), which measures the contention, not the code; so a multi-thread setting is skipped while
the load average is at or above the CPU count, unless ``--force``. The last line of the output is
one JSON object with the figures; ``report_s`` is the median full report of the scripted AFRNN with
the fastest thread setting measured.
"""

import argparse
import io
import json
import os
import statistics
import sys
import time

import torch

from model import paper_model
from model.stability import stability_report
from model.stability.plots import render_report_png

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import machine  # noqa: E402

STEPS = 784
PARTS = ("forward", "jacobians", "spectrum", "discrete", "gradients", "lyapunov", "trajectory")


def served(module: torch.nn.Module) -> torch.jit.ScriptModule:
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


def time_reports(module, x, repeats: int, **kwargs) -> tuple[float, dict[str, float], object]:
    """(median total seconds, median seconds per part, the last report)."""
    totals, parts, report = [], {p: [] for p in PARTS}, None
    for _ in range(repeats):
        start = time.perf_counter()
        report = stability_report(module, x, lyapunov_k=16, **kwargs)
        totals.append(time.perf_counter() - start)
        for part in PARTS:
            parts[part].append(report.timings_s.get(part, 0.0))
    return statistics.median(totals), {p: round(statistics.median(v), 3) for p, v in parts.items()}, report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="one repeat, 1 thread (< 45 s)")
    parser.add_argument("--threads", help="comma-separated intra-op thread counts (default 1,2; quick: 1)")
    parser.add_argument("--force", action="store_true",
                        help="measure multi-thread settings even on an oversubscribed machine")
    args = parser.parse_args()
    repeats = 1 if args.quick else 5
    thread_counts = [int(n) for n in (args.threads or ("1" if args.quick else "1,2")).split(",")]
    load_before = os.getloadavg()[0]
    print(f"load average (1 min) before: {load_before:.2f} on {os.cpu_count()} CPUs")

    torch.manual_seed(0)
    afrnn = served(paper_model("mnist", "afrnn").eval())
    x = torch.randn(STEPS, 1, generator=torch.Generator().manual_seed(0))   # normalised-pixel scale
    figures: dict[str, object] = {}
    by_threads = {}
    skipped = []
    for threads in thread_counts:
        load = os.getloadavg()[0]
        if threads > 1 and load >= (os.cpu_count() or 1) and not args.force:
            print(f"{threads} threads skipped: load average {load:.2f} ≥ {os.cpu_count()} CPUs (--force)")
            skipped.append(threads)
            continue
        torch.set_num_threads(threads)
        stability_report(afrnn, x[:16], sections={"gradients"})          # warm-up (TorchScript profiling)
        total, parts, report = time_reports(afrnn, x, repeats)
        by_threads[threads] = total
        print(f"AFRNN mnist (scripted), {threads} thread(s): {total:.2f} s  {parts}")
        figures[f"afrnn_report_s_{threads}t"] = round(total, 3)
        figures[f"afrnn_parts_{threads}t"] = parts
    best = min(by_threads, key=by_threads.get)
    torch.set_num_threads(best)
    figures["report_s"] = round(by_threads[best], 3)
    figures["report_threads"] = best
    figures["skipped_threads"] = skipped
    summary = report.summary
    figures["afrnn_summary"] = {"verdict": summary.verdict,
                                "max_real_eigenvalue": summary.max_real_eigenvalue,
                                "max_step_spectral_radius": summary.max_step_spectral_radius,
                                "top_lyapunov_exponent": summary.top_lyapunov_exponent,
                                "gradient_norm_ratio": summary.gradient_norm_ratio}
    figures["report_json_kb"] = round(len(report.model_dump_json()) / 1e3, 1)

    start = time.perf_counter()
    png = render_report_png(report)
    figures["render_png_s"] = round(time.perf_counter() - start, 3)
    figures["png_kb"] = round(len(png) / 1e3, 1)

    eager_total, _, _ = time_reports(paper_model("mnist", "afrnn").eval(), x, 1)
    figures["afrnn_eager_report_s"] = round(eager_total, 3)
    for variant in ("frnn", "lstm"):
        torch.manual_seed(0)
        total, parts, _ = time_reports(served(paper_model("mnist", variant).eval()), x, 1)
        print(f"{variant.upper()} mnist (scripted), {best} thread(s): {total:.2f} s  {parts}")
        figures[f"{variant}_report_s"] = round(total, 3)

    matrix = torch.randn(256, 256, dtype=torch.float64)
    torch.linalg.eigvals(matrix)
    start = time.perf_counter()
    for _ in range(5):
        torch.linalg.eigvals(matrix)
    eig_s = (time.perf_counter() - start) / 5
    figures["eigvals_256_ms"] = round(eig_s * 1e3, 2)
    figures["exact_every_step_estimate_s"] = round(2 * STEPS * eig_s, 1)
    print(f"one 256×256 eigensolve: {eig_s * 1e3:.1f} ms; exact spectra of D_t B and ∂z_T/∂z_t at "
          f"all {STEPS} steps would take ≈ {2 * STEPS * eig_s:.0f} s")

    figures.update(quick=args.quick, repeats=repeats, load_average_before=round(load_before, 2),
                   machine=machine.describe())
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
