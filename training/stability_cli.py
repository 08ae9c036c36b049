"""``afrnn-stability``: the stability report of an exported checkpoint or of a paper configuration.

    # a served model (TorchScript + manifest; the SHA-256 is checked before loading)
    afrnn-stability --checkpoint runs/mnist-afrnn/mnist-afrnn.json --out report.json --plots figs/
    # a paper configuration with random weights
    afrnn-stability --task mnist --variant frnn --seed 0 --sections spectrum,gradients
    # the same weights with the IMEX step instead of explicit Euler (model.afrnn)
    afrnn-stability --task mnist --variant afrnn --discretisation imex --sections discrete,gradients
    # on a real test sample instead of generated input
    python -m training.stability_cli --task mnist --variant afrnn --sample-index 7 --data-dir /data

The JSON report (``model.stability.StabilityReport``) goes to ``--out`` or stdout; one summary line
goes to stderr. ``--plots DIR`` writes ``report.png`` and the paper-style figures the report can fill
(``fig2_activations.png``, ``fig3_divergence.png``, ``fig4_gradient_propagation.png``,
``eigenvalues.png``).

The default input is seeded N(0, 1) noise: on an untrained model with zero biases, zero input keeps
z = 0 at its fixed point, which tells little. Pass ``--input zeros`` for the library's default.
"""

import argparse
import json
import sys
from pathlib import Path

import torch

from model.afrnn import DISCRETISATIONS
from model.paper import PAPER_TASKS, VARIANTS, paper_model
from model.stability import SECTIONS, stability_report
from model.stability.analysis import DEFAULT_INPUTS


def _parse_sections(text: str | None) -> list[str] | None:
    if text is None:
        return None
    return [name.strip() for name in text.split(",") if name.strip()]


def _test_sample(task: str, index: int, data_dir: str | None) -> torch.Tensor:
    """Test sample ``index`` of ``task``, normalised as in training, (T, C)."""
    try:                                    # the data package is optional for the analysis
        from training.data.paths import resolve_cache_dir, resolve_data_dir
        if task == "mnist":
            from training.data.mnist import load_mnist
            test = load_mnist(resolve_data_dir(data_dir), "test")
        elif task == "cifar10":
            from training.data.cifar10 import load_cifar10
            test = load_cifar10(resolve_data_dir(data_dir), "test")
        else:
            from training.data.pendulum import load_pendulum
            _, test, _ = load_pendulum(resolve_cache_dir(data_dir))
    except ImportError as err:
        raise ValueError(f"--sample-index needs the data loaders in training.data ({err})") from err
    except FileNotFoundError as err:
        if data_dir is None and task in ("mnist", "cifar10"):
            return _shipped_sample(task, index)
        raise ValueError(f"--data-dir: {err}") from err
    if not 0 <= index < len(test):
        raise ValueError(f"--sample-index must be in 0 … {len(test) - 1} for the {task} test split, "
                         f"got {index}")
    inputs, _ = test.batch(torch.tensor([index]))
    return inputs[0]


def _shipped_sample(task: str, index: int) -> torch.Tensor:
    """Test image ``index`` from the sample that ships with the package (``artifact.samples``: the first
    300 test images), normalised as in training; used when no data directory is present."""
    from artifact import specs
    from artifact.samples import load_sample
    from training.data.sequences import ImageSequences

    sample = load_sample(task)
    positions = {int(i): pos for pos, i in enumerate(sample.indices)}
    if index not in positions:
        raise ValueError(f"no data directory, and test image {index} is not in the shipped {task} sample "
                         f"(test images {min(positions)} … {max(positions)}); pass --data-dir for the rest")
    mean, std = ((specs.MNIST_MEAN, specs.MNIST_STD) if task == "mnist"
                 else (specs.CIFAR10_MEAN, specs.CIFAR10_STD))
    labels = torch.from_numpy(sample.labels).long()
    images = ImageSequences(torch.from_numpy(sample.pixels), labels, mean, std)
    print(f"no data directory: test image {index} from the shipped {task} sample ({sample.source})",
          file=sys.stderr)
    inputs, _ = images.batch(torch.tensor([positions[index]]))
    return inputs[0]


def _load(args: argparse.Namespace) -> tuple[torch.nn.Module, str, int, str]:
    """(module, task, sequence length, description)."""
    if args.checkpoint is not None:
        from artifact.export import load_exported
        module, manifest = load_exported(args.checkpoint)
        return (module, manifest.task, manifest.input.sequence_length,
                f"{manifest.name} {manifest.version} ({manifest.architecture.variant})")
    torch.manual_seed(args.seed)
    options = {} if args.discretisation is None else {"discretisation": args.discretisation}
    module = paper_model(args.task, args.variant, **options).eval()
    return (module, args.task, PAPER_TASKS[args.task].sequence_length,
            f"{args.task}/{args.variant} seed {args.seed}")


def write_plots(report, directory: Path) -> list[Path]:
    """Write report.png and each paper-style figure the report can fill; returns the paths."""
    from model.stability.plots import (
        figure_activations,
        figure_divergence,
        figure_eigenvalues,
        figure_gradient_propagation,
        figure_to_png,
        render_report_png,
    )
    directory.mkdir(parents=True, exist_ok=True)
    images = {"report.png": render_report_png(report)}
    if report.trajectory is not None:
        images["fig2_activations.png"] = figure_to_png(figure_activations(report))
        images["fig3_divergence.png"] = figure_to_png(figure_divergence(report))
    if report.gradients is not None:
        images["fig4_gradient_propagation.png"] = figure_to_png(
            figure_gradient_propagation(report, spectral_norm=True))
    if report.spectrum is not None:
        images["eigenvalues.png"] = figure_to_png(figure_eigenvalues(report))
    written = []
    for name, data in images.items():
        path = directory / name
        path.write_bytes(data)
        written.append(path)
    return written


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="afrnn-stability", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_argument_group("model (give --checkpoint, or --task with --variant)")
    source.add_argument("--checkpoint", type=Path, help="manifest JSON of an exported TorchScript model")
    source.add_argument("--task", choices=sorted(PAPER_TASKS), help="paper configuration (random weights)")
    source.add_argument("--variant", choices=VARIANTS, help="paper variant, with --task")
    source.add_argument("--discretisation", choices=DISCRETISATIONS,
                        help="the AFRNN-family step, with --task: euler (the paper's, default) or imex")
    source.add_argument("--seed", type=int, default=0,
                        help="weight seed with --task; also seeds the noise input, the perturbation "
                             "and the Lyapunov basis (default 0)")
    data = parser.add_argument_group("input sequence")
    data.add_argument("--input", choices=DEFAULT_INPUTS, default="noise",
                      help="generated input when no --sample-index is given (default noise)")
    data.add_argument("--sample-index", type=int, help="use this test sample of the task's data set")
    data.add_argument("--data-dir", help="data directory for --sample-index (pendulum: the cache dir)")
    data.add_argument("--sequence-length", type=int,
                      help="steps of the generated input (default: the task's, e.g. 784 for mnist)")
    analysis = parser.add_argument_group("analysis")
    analysis.add_argument("--sections", help=f"comma-separated subset of {','.join(SECTIONS)} "
                                             "(default: all that apply)")
    analysis.add_argument("--lyapunov-k", type=int, default=16, help="Lyapunov exponents (default 16)")
    analysis.add_argument("--delta", type=float, default=1e-3,
                          help="initial distance of the perturbed run (default 1e-3)")
    analysis.add_argument("--spectrum-samples", type=int, default=32,
                          help="steps with the exact spectrum of D_t B (default 32)")
    analysis.add_argument("--gradient-samples", type=int, default=32,
                          help="steps with exact eigenvalues of dz_T/dz_t (default 32)")
    output = parser.add_argument_group("output")
    output.add_argument("--out", type=Path, help="write the JSON report here (default stdout)")
    output.add_argument("--plots", type=Path, help="write PNG figures into this directory")
    return parser


def main(argv: list[str] | None = None) -> None:
    parser = build_parser()
    args = parser.parse_args(argv)
    if (args.checkpoint is None) == (args.task is None):
        parser.error("give either --checkpoint or --task (with --variant), not both and not neither")
    if args.task is not None and args.variant is None:
        parser.error("--task needs --variant (one of " + ", ".join(VARIANTS) + ")")
    if args.discretisation is not None and (args.task is None or args.variant == "lstm"):
        parser.error("--discretisation applies to a paper configuration of the AFRNN family (--task with "
                     "--variant other than lstm); a checkpoint carries its own")
    if args.checkpoint is None and args.data_dir is not None and args.sample_index is None:
        parser.error("--data-dir is only used with --sample-index")
    try:
        module, task, length, description = _load(args)
        x = None
        if args.sample_index is not None:
            if args.sequence_length is not None:
                parser.error("--sequence-length only applies to generated input, not --sample-index")
            x = _test_sample(task, args.sample_index, args.data_dir)
        report = stability_report(
            module, x, sections=_parse_sections(args.sections), lyapunov_k=args.lyapunov_k,
            delta=args.delta, default_input=args.input, seed=args.seed,
            sequence_length=None if x is not None else (args.sequence_length or length),
            spectrum_samples=args.spectrum_samples, gradient_samples=args.gradient_samples)
    except ValueError as err:
        parser.error(str(err))
    text = json.dumps(report.model_dump(mode="json"), indent=1)
    if args.out is None:
        sys.stdout.write(text + "\n")
    else:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    if args.plots is not None:
        write_plots(report, args.plots)
    summary = report.summary
    print(f"{description}: {summary.verdict} (theorem holds: {summary.theorem_holds}, "
          f"max Re λ = {summary.max_real_eigenvalue}, max ρ = {summary.max_step_spectral_radius}, "
          f"λ₁ = {summary.top_lyapunov_exponent}, ‖∂z_T/∂z_0‖ = {summary.gradient_norm_ratio}; "
          f"{report.timings_s['total']:.2f} s)", file=sys.stderr)


if __name__ == "__main__":
    main()
