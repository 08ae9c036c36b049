"""PNG figures of stability reports: paper Figs. 2–4 and the spectrum of D_t B.

Figures are built on ``matplotlib.figure.Figure`` with the Agg canvas, never ``pyplot``, so they are
safe to render from the service's worker threads and need no display.

* ``figure_activations``            Fig. 2: top-layer neuron activations over time (one panel per model)
* ``figure_divergence``             Fig. 3: two runs from z_0 and z_0 + δ·v in the plane of a bottom-
                                    and a top-layer neuron, and ‖z'_t − z_t‖/δ over time
* ``figure_gradient_propagation``   Fig. 4: mean |λ(∂z_T/∂z_t)| over t, one curve per model
* ``figure_eigenvalues``            eigenvalues of D_t B in the complex plane at chosen steps
* ``render_report_png``             one PNG with every panel a report can fill

Functions taking several models accept a ``StabilityReport`` or a mapping label → report.
"""

import io
from collections.abc import Mapping, Sequence

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from afrnn_schemas.report import StabilityReport
from model.stability.analysis import FIGURE_SECTIONS

Reports = StabilityReport | Mapping[str, StabilityReport]
LAYOUT = "tight"          # constrained layout looks the same and takes twice as long


def _labelled(reports: Reports) -> dict[str, StabilityReport]:
    if isinstance(reports, StabilityReport):
        return {reports.model.variant.upper(): reports}
    if not reports:
        raise ValueError("reports: give at least one report")
    return dict(reports)


def _require(report: StabilityReport, section: str, label: str):
    value = getattr(report, section)
    if value is None:
        raise ValueError(f"report {label!r} has no {section!r} section; compute it with "
                         f"sections including {section!r}")
    return value


def figure_to_png(figure: Figure, dpi: int = 110) -> bytes:
    buffer = io.BytesIO()
    FigureCanvasAgg(figure)
    figure.savefig(buffer, format="png", dpi=dpi)
    return buffer.getvalue()


# -- panels ---------------------------------------------------------------------------------------
def plot_activations(report: StabilityReport, ax: Axes, label: str = "") -> None:
    """Top-layer traces over t (Fig. 2), with the range over all top-layer neurons shaded."""
    trajectory = _require(report, "trajectory", label)
    steps = range(len(trajectory.top_layer_min))
    ax.fill_between(steps, trajectory.top_layer_min, trajectory.top_layer_max, color="0.85",
                    label="range over the top layer")
    lo, hi = trajectory.top_layer
    for neuron, trace in zip(trajectory.traced_neurons, trajectory.traces, strict=True):
        if lo <= neuron < hi:
            ax.plot(steps, trace, lw=1.0)
    ax.set_xlabel("step t")
    ax.set_ylabel("activation")
    ax.set_title(f"{label} top-layer activations".strip())
    ax.legend(loc="upper left", fontsize="small")


def plot_phase(report: StabilityReport, ax: Axes, label: str = "") -> None:
    """The two runs in the plane of a bottom-layer and a top-layer neuron (Fig. 3)."""
    trajectory = _require(report, "trajectory", label)
    bottom, top = trajectory.phase_neurons
    index = {n: i for i, n in enumerate(trajectory.traced_neurons)}
    for traces, style, name in ((trajectory.traces, "-", "z_0"),
                                (trajectory.perturbed_traces, "--", f"z_0 + {trajectory.delta:g}·v")):
        ax.plot(traces[index[bottom]], traces[index[top]], style, lw=1.0, label=name)
    ax.plot(trajectory.traces[index[bottom]][0], trajectory.traces[index[top]][0], "ko", ms=3)
    ax.set_xlabel(f"bottom-layer neuron z[{bottom}]")
    ax.set_ylabel(f"top-layer neuron z[{top}]")
    ax.set_title(f"{label} two runs".strip())
    ax.legend(loc="best", fontsize="small")


def plot_divergence(reports: Reports, ax: Axes) -> None:
    """‖z'_t − z_t‖ / δ over t, one curve per model."""
    for label, report in _labelled(reports).items():
        trajectory = _require(report, "trajectory", label)
        ax.plot([d / trajectory.delta for d in trajectory.divergence], lw=1.2, label=label)
    ax.set_yscale("log")
    ax.set_xlabel("step t")
    ax.set_ylabel("‖z'_t − z_t‖ / δ")
    ax.set_title("divergence of two runs")
    ax.legend(loc="best", fontsize="small")


def plot_gradient_propagation(reports: Reports, ax: Axes, spectral_norm: bool = False,
                              log_scale: bool = True) -> None:
    """Mean |λ(∂z_T/∂z_t)| over t (Fig. 4), one curve per model; optionally ‖∂z_T/∂z_t‖₂ dashed.

    The paper's Fig. 4 has a linear axis (LSTM curves drop to 0); a log axis shows how far."""
    for label, report in _labelled(reports).items():
        gradients = _require(report, "gradients", label)
        line, = ax.plot(gradients.exact_steps, gradients.mean_abs_eigenvalue, "-", marker=".",
                        ms=3, lw=1.2, label=f"{label} mean |λ|" if spectral_norm else label)
        if spectral_norm:
            ax.plot(gradients.spectral_norm, "--", lw=0.8, color=line.get_color(),
                    label=f"{label} ‖·‖₂")
    if log_scale:
        ax.set_yscale("log")
    ax.axhline(1.0, color="0.5", lw=0.6)
    ax.set_xlabel("step t")
    ax.set_ylabel("mean |λ(∂z_T/∂z_t)|")
    ax.set_title("gradient propagation")
    ax.legend(loc="best", fontsize="small")


def plot_eigenvalues(report: StabilityReport, ax: Axes, steps: Sequence[int] | None = None,
                     label: str = "") -> None:
    """Eigenvalues of D_t B at the report's eigenvalue steps (or the given subset of them)."""
    spectrum = _require(report, "spectrum", label)
    samples = spectrum.eigenvalues
    if steps is not None:
        wanted = set(steps)
        missing = sorted(wanted - {s.step for s in samples})
        if missing:
            raise ValueError(f"steps {missing} have no stored spectrum; the report has "
                             f"{[s.step for s in samples]} (stability_report(eigenvalue_steps=…))")
        samples = [s for s in samples if s.step in wanted]
    for sample in samples:
        ax.scatter(sample.real, sample.imag, s=6, alpha=0.7, label=f"t = {sample.step}")
    ax.axvline(0.0, color="0.5", lw=0.6)
    ax.set_xlabel("Re λ(D_t B)")
    ax.set_ylabel("Im λ(D_t B)")
    ax.set_title(f"{label} eigenvalues of D_t B".strip())
    ax.ticklabel_format(axis="x", style="sci", scilimits=(-2, 2))
    ax.legend(loc="best", fontsize="small")


def plot_spectrum(report: StabilityReport, ax: Axes) -> None:
    """max Re λ(D_t B): the bound at every step and the exact value at the sampled steps."""
    spectrum = _require(report, "spectrum", "")
    ax.plot(spectrum.max_real_bound, lw=1.0, label="Bendixson bound")
    ax.plot(spectrum.exact_steps, spectrum.max_real, "o", ms=3, label="exact")
    ax.axhline(0.0, color="0.5", lw=0.6)
    ax.set_xlabel("step t")
    ax.set_ylabel("max Re λ(D_t B)")
    ax.set_title("continuous-time spectrum")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
    ax.legend(loc="best", fontsize="small")


def plot_lyapunov(report: StabilityReport, ax: Axes) -> None:
    lyapunov = _require(report, "lyapunov", "")
    ax.bar(range(1, lyapunov.k + 1), lyapunov.exponents)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.axhline(0.0, color="0.5", lw=0.6)
    ax.set_xlabel("i")
    ax.set_ylabel("λ_i (log per step)")
    ax.set_title(f"top {lyapunov.k} Lyapunov exponents")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))


# -- figures --------------------------------------------------------------------------------------
def figure_activations(reports: Reports) -> Figure:
    """Paper Fig. 2: top-layer activations over time, one panel per model."""
    labelled = _labelled(reports)
    figure = Figure(figsize=(5.0 * len(labelled), 3.6), layout=LAYOUT)
    for ax, (label, report) in zip(figure.subplots(1, len(labelled), squeeze=False)[0],
                                   labelled.items(), strict=True):
        plot_activations(report, ax, label)
    return figure


def figure_divergence(reports: Reports, divergence_reports: Reports | None = None) -> Figure:
    """Paper Fig. 3: the two runs of each model in a neuron plane, and their distance over time
    (for ``divergence_reports`` if given, e.g. more models than the phase planes show)."""
    labelled = _labelled(reports)
    figure = Figure(figsize=(4.6 * (len(labelled) + 1), 3.8), layout=LAYOUT)
    axes = figure.subplots(1, len(labelled) + 1, squeeze=False)[0]
    for ax, (label, report) in zip(axes, labelled.items(), strict=False):
        plot_phase(report, ax, label)
    plot_divergence(labelled if divergence_reports is None else divergence_reports, axes[-1])
    return figure


def figure_gradient_propagation(reports: Reports, spectral_norm: bool = False,
                                log_scale: bool = True) -> Figure:
    """Paper Fig. 4: mean absolute eigenvalue of ∂z_T/∂z_t over t, one curve per model."""
    figure = Figure(figsize=(6.4, 4.2), layout=LAYOUT)
    plot_gradient_propagation(reports, figure.subplots(), spectral_norm=spectral_norm, log_scale=log_scale)
    return figure


def figure_eigenvalues(report: StabilityReport, steps: Sequence[int] | None = None) -> Figure:
    """The eigenvalues of D_t B in the complex plane at chosen steps."""
    figure = Figure(figsize=(5.2, 4.2), layout=LAYOUT)
    plot_eigenvalues(report, figure.subplots(), steps)
    return figure


def render_report_png(report: StabilityReport, dpi: int = 90) -> bytes:
    """One PNG with every panel the report's sections can fill."""
    label = report.model.variant.upper()
    panels = []
    if report.trajectory is not None:
        panels += [lambda ax: plot_activations(report, ax, label),
                   lambda ax: plot_phase(report, ax, label),
                   lambda ax: plot_divergence({label: report}, ax)]
    if report.gradients is not None:
        panels.append(lambda ax: plot_gradient_propagation({label: report}, ax, spectral_norm=True))
    if report.spectrum is not None:
        panels += [lambda ax: plot_spectrum(report, ax), lambda ax: plot_eigenvalues(report, ax)]
    if report.lyapunov is not None:
        panels.append(lambda ax: plot_lyapunov(report, ax))
    if not panels:
        raise ValueError(f"the report has no section with a figure (one of {list(FIGURE_SECTIONS)})")
    columns = min(3, len(panels))
    rows = -(-len(panels) // columns)
    figure = Figure(figsize=(4.6 * columns, 3.6 * rows), layout=LAYOUT)
    figure.suptitle(f"{label}: {report.summary.verdict or 'no verdict'} "
                    f"(T = {report.model.steps}, D = {report.model.state_size})")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for ax, draw in zip(axes, panels, strict=False):
        draw(ax)
    for ax in axes[len(panels):]:
        ax.set_visible(False)
    return figure_to_png(figure, dpi=dpi)
