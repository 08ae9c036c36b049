"""``stability_report``: the whole stability analysis of one model on one input sequence.

The analysis only uses the model's exported interface (``forward_with_states``, ``input_drive``,
``step``, ``initial_state``; AFRNN also ``coupling_matrix`` and ``velocity``), so it runs unchanged on
an eager module and on a loaded TorchScript file. ONE forward pass gives the states z_0 … z_T that
every section uses; the trajectory section runs a second one from the perturbed z_0 + δ·v.

Sections (``SECTIONS``; an LSTM has no coupling matrix, so only the last three apply):

* ``theorem``    Theorem 3 on B itself: ‖A + Aᵀ‖, λ_max((B + Bᵀ)/2) (= −γ for AFRNN/ARNN), structure.
* ``spectrum``   max Re λ(D_t B): a rigorous Bendixson bound at every t, the exact spectrum at
                 ``spectrum_samples`` steps (see ``model.stability.spectrum``).
* ``discrete``   ρ(J_t) of the model's own step and the Euler factor max|1 + ελ(D_t B)| at the same
                 steps. For the simultaneous scheme they coincide (J_t = I + εD_tB, so
                 λ(J_t) = 1 + ελ(D_tB)); for the sequential scheme ρ(J_t) comes from autograd.
* ``gradients``  ‖∂z_T/∂z_t‖₂ for every t, and mean |λ(∂z_T/∂z_t)| (paper Fig. 4) at
                 ``gradient_samples`` steps, from one backward product sweep.
* ``lyapunov``   the top k Lyapunov exponents (``model.stability.lyapunov``).
* ``trajectory`` state ranges (Fig. 2) and the divergence of two runs δ apart (Fig. 3).

Verdict (``summary.verdict``). A served model sees sequences of T steps, so the verdict asks how much
a perturbation of the state can grow over those T steps, measured three ways:
g = ‖∂z_T/∂z_0‖₂ (gradients), G = exp(T·λ₁) (Lyapunov) and Δ = ‖z'_T − z_T‖/δ (trajectory);
``horizon_growth`` = max(g, G, Δ) over the sections computed.

* **unstable**  if horizon_growth > 1e3: perturbations (and gradients) explode within one sequence.
* **marginal**  otherwise, if horizon_growth > 10, or max Re λ(D_t B) > 1e-6 (the continuous system
  has expanding directions: the theorem's conclusion fails), or ρ_max^T > 10 with ρ_max the largest
  step spectral radius (the explicit-Euler condition max|1 + ελ| ≤ 1 is broken by enough to matter
  over T steps).
* **stable**    otherwise; null only if no section gives evidence (``theorem`` alone).

Vanishing gradients are not instability: an LSTM contracts, so g ≪ 1 is "stable" with
``gradient_regime`` = "vanishing". An AFRNN can have ρ_max slightly above 1 although max Re λ(D_t B)
≤ 0, since the explicit-Euler factor |1 + ε(−γd + iω)|² ≈ 1 + ε²ω² − 2εγd exceeds 1 for small γ; the
ρ_max^T rule asks whether that matters over T steps. The verdicts and figures of the paper-MNIST
models (``bench/paper_figures.py``) are recorded in docs/figures/README.md.

Each section is one function of the shared run (``_Run``: the checked input, ONE forward pass, and
for AFRNN B, D_t and the coupling's structure), listed in ``_SECTION_TABLE`` with the figures it
contributes to the summary and the timing part its work counts under.
"""

import math
import time
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from afrnn_schemas.report import (
    DiscreteSection,
    EigenvalueSample,
    GradientSection,
    LyapunovSection,
    ModelFacts,
    SpectrumSection,
    StabilityReport,
    Summary,
    TheoremSection,
    TrajectorySection,
)
from model.stability.jacobians import (
    StepJacobians,
    autograd_step_jacobians,
    backward_products,
    step_jacobians,
    tanh_derivatives,
)
from model.stability.lyapunov import lyapunov_exponents
from model.stability.spectrum import (
    CouplingStructure,
    continuous_eigenvalues,
    coupling_structure,
    max_real_bounds,
    sample_steps,
    spectrum_steps,
)

SECTIONS = ("theorem", "spectrum", "discrete", "gradients", "lyapunov", "trajectory")
LSTM_SECTIONS = ("gradients", "lyapunov", "trajectory")
FIGURE_SECTIONS = ("spectrum", "gradients", "lyapunov", "trajectory")   # the sections with a figure
DEFAULT_INPUTS = ("zeros", "noise")

GRADIENT_LOW = 1e-3          # ‖∂z_T/∂z_t‖ below: vanishing
GRADIENT_HIGH = 1e3          # above: exploding
GROWTH_MARGINAL = 10.0
GROWTH_UNSTABLE = 1e3
REAL_TOLERANCE = 1e-6        # max Re λ(D_t B) above this: expanding continuous-time directions
EULER_TOLERANCE = 1e-12
TRACED_NEURONS = 6
MAX_HORIZON_CONFIRMATIONS = 16
POWER_ITERATIONS = 2

_AFRNN_METHODS = ("forward_with_states", "input_drive", "step", "initial_state", "coupling_matrix",
                  "velocity")
_LSTM_METHODS = ("forward_with_states", "input_drive", "step", "initial_state")
_FLOAT_MAX = 1.7976931348623157e308


def _exp(log_value: float) -> float:
    """exp, saturating at the largest float instead of raising (JSON has no infinity)."""
    return math.exp(log_value) if log_value < 709.0 else _FLOAT_MAX


def _floats(values: Tensor | Sequence[float]) -> list[float]:
    if isinstance(values, Tensor):
        values = values.detach().cpu().to(torch.float64).tolist()
    return [min(max(float(v), -_FLOAT_MAX), _FLOAT_MAX) for v in values]


class StabilityArgumentError(ValueError):
    """A bad argument of ``stability_report``, naming the argument (``argument``: "sections", "x",
    "lyapunov_k", …) and, in the message, the rule it broke; a caller maps ``argument`` to its own
    field without parsing the message."""

    def __init__(self, argument: str, message: str):
        super().__init__(message)
        self.argument = argument


# -- the module and the input -------------------------------------------------------------------
def _family(module) -> str:
    variant = getattr(module, "variant", None)
    if variant is None:
        raise StabilityArgumentError("module", "module has no `variant` attribute: expected an AFRNN or "
                                               "LSTMBaseline (eager or loaded TorchScript)")
    family = "lstm" if variant == "lstm" else "afrnn"
    needed = _LSTM_METHODS if family == "lstm" else _AFRNN_METHODS
    missing = [name for name in needed if not hasattr(module, name)]
    if missing:
        raise StabilityArgumentError("module", f"module (variant {variant!r}) lacks the exported method(s) "
                                               f"{missing} that the stability analysis needs")
    return family


def _module_input_size(module) -> int | None:
    weight = getattr(module, "weight_in", None)
    if weight is None and getattr(module, "lstm", None) is not None:
        weight = getattr(module.lstm, "weight_ih_l0", None)
    return None if weight is None else int(weight.shape[1])


def _resolve_sections(sections: Collection[str] | None, family: str) -> list[str]:
    applicable = LSTM_SECTIONS if family == "lstm" else SECTIONS
    if sections is None:
        return list(applicable)
    if isinstance(sections, str):
        sections = [sections]
    wanted = set(sections)
    unknown = sorted(wanted - set(SECTIONS))
    if unknown:
        raise StabilityArgumentError("sections", f"sections: unknown section(s) {unknown}; valid sections "
                                                 f"are {list(SECTIONS)}")
    inapplicable = sorted(wanted - set(applicable))
    if inapplicable:
        raise StabilityArgumentError("sections", f"sections: {inapplicable} do not apply to an LSTM (it has "
                                                 f"no coupling matrix); applicable sections are "
                                                 f"{list(LSTM_SECTIONS)}")
    if not wanted:
        raise StabilityArgumentError("sections", f"sections: give at least one of {list(applicable)}")
    return [name for name in SECTIONS if name in wanted]


def _check_options(spectrum_samples: int, gradient_samples: int, delta: float) -> None:
    for name, value in (("spectrum_samples", spectrum_samples), ("gradient_samples", gradient_samples)):
        if int(value) < 1:
            raise StabilityArgumentError(name, f"{name} must be ≥ 1, got {value}")
    if not (isinstance(delta, int | float) and math.isfinite(delta) and delta > 0):
        raise StabilityArgumentError("delta", f"delta must be a finite number > 0, got {delta!r}")


def _prepare_input(x, reference: Tensor, input_size: int | None, default_input: str, seed: int,
                   sequence_length: int | None) -> tuple[Tensor, int, str]:
    """x as (1, T, C) in the model's dtype and device, its C, and where it came from."""
    if x is not None:
        x = torch.as_tensor(x)
        if x.dim() == 2:
            x = x.unsqueeze(0)
        if x.dim() != 3 or x.shape[0] != 1:
            raise StabilityArgumentError("x", f"x must be one sequence of shape (T, C) or (1, T, C), got "
                                              f"{list(x.shape)}")
        if x.shape[1] < 1:
            raise StabilityArgumentError("x", "x must have at least one step (T ≥ 1)")
        if input_size is not None and x.shape[2] != input_size:
            raise StabilityArgumentError("x", f"x must have C = {input_size} values per step for this model, "
                                              f"got shape {list(x.shape)}")
        if sequence_length is not None and sequence_length != x.shape[1]:
            raise StabilityArgumentError("sequence_length", f"sequence_length = {sequence_length} disagrees "
                                                            f"with x's {x.shape[1]} steps")
        if not torch.is_floating_point(x):
            x = x.to(reference.dtype)
        if not bool(torch.isfinite(x).all()):
            raise StabilityArgumentError("x", "x must contain only finite values")
        return x.to(dtype=reference.dtype, device=reference.device), int(x.shape[2]), "given"
    if default_input not in DEFAULT_INPUTS:
        raise StabilityArgumentError("default_input", f"default_input must be one of {DEFAULT_INPUTS}, got "
                                                      f"{default_input!r}")
    if sequence_length is None or int(sequence_length) < 1:
        raise StabilityArgumentError("sequence_length", f"sequence_length must be a positive number of steps "
                                                        f"when x is None, got {sequence_length!r}")
    if input_size is None or int(input_size) < 1:
        raise StabilityArgumentError("input_size", f"input_size must be given (≥ 1) when x is None and the "
                                                   f"module does not reveal it, got {input_size!r}")
    shape = (1, int(sequence_length), int(input_size))
    if default_input == "zeros":
        x = torch.zeros(shape, dtype=torch.float64)
    else:
        x = torch.randn(shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x.to(dtype=reference.dtype, device=reference.device), int(input_size), default_input


def _prepare_h0(h0, reference: Tensor) -> Tensor | None:
    if h0 is None:
        return None
    h0 = torch.as_tensor(h0)
    size = reference.shape[1]
    if h0.dim() == 1:
        h0 = h0.unsqueeze(0)
    if h0.shape != (1, size):
        raise StabilityArgumentError("h0", f"h0 must have shape ({size},) or (1, {size}) (the state size D), "
                                           f"got {list(h0.shape)}")
    if not bool(torch.isfinite(h0).all()):
        raise StabilityArgumentError("h0", "h0 must contain only finite values")
    return h0.to(dtype=reference.dtype, device=reference.device)


def _scatter_steps(eigenvalue_steps: Sequence[int] | None, steps: int) -> list[int]:
    """The steps whose full spectrum is kept (default: first, middle, last)."""
    if eigenvalue_steps is None:
        return sorted({0, steps // 2, steps - 1})
    scatter = sorted({int(t) for t in eigenvalue_steps})
    if any(not 0 <= t < steps for t in scatter):
        raise StabilityArgumentError("eigenvalue_steps", f"eigenvalue_steps must lie in 0 … {steps - 1}, "
                                                         f"got {list(eigenvalue_steps)}")
    return scatter


def _layer_ranges(module, family: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """([lo, hi) of the bottom layer, [lo, hi) of the top layer) inside the state z."""
    if family == "lstm":
        hidden, layers = int(module.hidden_size), int(module.num_layers)
        return (0, hidden), ((layers - 1) * hidden, layers * hidden)
    bounds = [int(b) for b in module.layer_bounds]
    return (bounds[0], bounds[1]), (bounds[-2], bounds[-1])


# -- what the sections share -------------------------------------------------------------------
@dataclass
class _Spectra:
    """max Re λ(D_t B): the Bendixson bound at every step and the exact eigenvalues at ``exact``."""

    bounds: Tensor                          # (T,)
    exact: list[int]
    eigenvalues: Tensor                     # (len(exact), D) complex


@dataclass
class _Run:
    """What every section reads, computed once: the model's facts, the checked input and options,
    ONE forward pass (z_0 … z_T and the input drive) and, for AFRNN, B, D_t and B's structure."""

    module: Any
    facts: ModelFacts
    x: Tensor                               # (1, T, C)
    h0: Tensor | None
    states: Tensor                          # (T+1, D)
    drive: Tensor                           # (T, D or C)
    seed: int
    lyapunov_k: int
    delta: float
    spectrum_samples: int
    gradient_samples: int
    scatter: list[int]                      # steps whose full spectrum the report keeps
    interrupt: Callable[[], None]           # called between pieces of work; stops the report by raising
    structure: CouplingStructure | None = None
    coupling: Tensor | None = None          # B in float64
    derivatives: Tensor | None = None       # the diagonals of D_t, (T, D)
    jacobians: StepJacobians | None = None  # J_t, when gradients or lyapunov need them
    spectra: _Spectra | None = None         # when spectrum or discrete need them

    @property
    def steps(self) -> int:
        return self.facts.steps


@contextmanager
def _timed(timings: dict[str, float], part: str) -> Iterator[None]:
    """Adds the wall-clock seconds of the block to ``timings[part]``."""
    tick = time.perf_counter()
    try:
        yield
    finally:
        timings[part] = timings.get(part, 0.0) + time.perf_counter() - tick


def _forward(module, x: Tensor, h0: Tensor | None) -> tuple[Tensor, Tensor]:
    """The one forward pass: z_0 … z_T (T+1, D) and the input drive (T, D or C)."""
    with torch.no_grad():
        _, states = module.forward_with_states(x, h0)
        drive = module.input_drive(x)
    return states[0].detach(), drive[0].detach()


def _coupling_and_jacobians(run: _Run, chosen: Collection[str]) -> None:
    """B, D_t and B's structure (AFRNN), and the step Jacobians when a chosen section needs them."""
    module = run.module
    if run.facts.family == "afrnn":
        with torch.no_grad():
            native = module.coupling_matrix().detach().cpu()
        run.structure = coupling_structure(native, run.facts.gamma, [int(b) for b in module.layer_bounds])
        run.coupling = native.to(torch.float64)
        run.derivatives = tanh_derivatives(module, run.states, run.drive)
    if {"gradients", "lyapunov"} & set(chosen):
        # B̃ of the model's own step: B, in hand, for explicit Euler; None lets step_jacobians take the
        # IMEX form's from the module
        stepped = None if run.facts.discretisation == "imex" else run.coupling
        run.jacobians = step_jacobians(module, run.states, run.drive, stepped,
                                       run.derivatives, interrupt=run.interrupt)    # reuses D_t


def _spectra(run: _Run) -> None:
    bounds = max_real_bounds(run.derivatives, run.structure)
    exact = sorted(set(spectrum_steps(bounds, run.spectrum_samples)) | set(run.scatter))
    eigenvalues = continuous_eigenvalues(run.coupling, run.derivatives[exact], run.structure,
                                         interrupt=run.interrupt)                             # (n, D)
    run.spectra = _Spectra(bounds, exact, eigenvalues)


# -- sections: one function each, of the shared run ------------------------------------------------
def _theorem_section(run: _Run) -> TheoremSection:
    structure = run.structure
    return TheoremSection(
        antisymmetry_residual=structure.antisymmetry_residual,
        antisymmetry_residual_relative=structure.antisymmetry_residual_relative,
        symmetric_part_max_eigenvalue=structure.symmetric_part_max_eigenvalue,
        minus_gamma=-run.facts.gamma,
        coupling_structure=structure.structure,
        spectral_blocks=structure.blocks,
        block_symmetric_max_eigenvalue=structure.block_symmetric_max,
        theorem3_satisfied=structure.theorem3_satisfied,
        stability_guaranteed=structure.stability_guaranteed,
        model_claims_theorem=bool(run.module.theorem_applies),
    )


def _spectrum_section(run: _Run) -> SpectrumSection:
    spectra = run.spectra
    exact, eigenvalues = spectra.exact, spectra.eigenvalues
    max_real = eigenvalues.real.amax(dim=1)
    worst = int(torch.argmax(max_real))
    position = {t: i for i, t in enumerate(exact)}
    return SpectrumSection(
        method=f"Bendixson bound at every step; exact eigenvalues of D^1/2 B D^1/2 (float64, "
               f"{len(run.structure.blocks)} spectral block(s)) at {len(exact)} steps",
        max_real_bound=_floats(spectra.bounds),
        exact_steps=exact,
        max_real=_floats(max_real),
        max_real_eigenvalue=float(max_real[worst]) + 0.0,      # no "-0.0" in JSON
        max_real_step=exact[worst],
        max_real_bound_overall=float(spectra.bounds.max()),
        zero_derivative_units=int((run.derivatives == 0).sum(dim=1).max()),
        eigenvalues=[EigenvalueSample(step=t, real=_floats(eigenvalues[position[t]].real),
                                      imag=_floats(eigenvalues[position[t]].imag))
                     for t in run.scatter],
    )


def _discrete_section(run: _Run) -> DiscreteSection:
    exact = run.spectra.exact
    euler = (1.0 + run.facts.epsilon * run.spectra.eigenvalues).abs().amax(dim=1)
    if run.facts.update == "sequential" or run.facts.discretisation == "imex":
        sampled = (run.jacobians.stack(exact) if run.jacobians is not None else
                   autograd_step_jacobians(run.module, run.states, run.drive, exact).to(torch.float64))
        radius = torch.linalg.eigvals(sampled).abs().amax(dim=1)
        method = ("ρ(J_t) from eigenvalues of the autograd Jacobian of the sequential step"
                  if run.facts.update == "sequential" else
                  "ρ(J_t) from eigenvalues of the IMEX step's Jacobian I + ε D_t B̃, B̃ = (I − ε/2·B)⁻¹B")
    else:
        radius = euler
        method = "ρ(I + ε D_t B) = max|1 + ε λ(D_t B)| (spectral mapping)"
    max_radius, max_euler = float(radius.max()), float(euler.max())
    return DiscreteSection(
        method=method + f", at the {len(exact)} exact spectrum steps",
        exact_steps=exact,
        spectral_radius=_floats(radius),
        euler_factor=_floats(euler),
        max_step_spectral_radius=max_radius,
        max_euler_factor=max_euler,
        euler_margin=1.0 - max_euler,
        euler_condition_holds=max_euler <= 1.0 + EULER_TOLERANCE,
        log_growth_bound=run.steps * math.log(max(max_radius, 1e-300)),
    )


def _gradient_section(run: _Run) -> GradientSection:
    jacobians, samples, seed = run.jacobians, run.gradient_samples, run.seed
    steps = jacobians.steps
    exact = set(sample_steps(steps, samples)) | {0}
    log_norm = [0.0] * steps
    exact_norm: dict[int, float] = {}
    mean_abs: dict[int, float] = {}
    generator = torch.Generator().manual_seed(seed + 2)
    u = torch.randn(jacobians.size, generator=generator, dtype=torch.float64)
    u = u / u.norm()
    horizon: tuple[int, str] | None = None
    confirmations = 0
    log_low, log_high = math.log(GRADIENT_LOW), math.log(GRADIENT_HIGH)

    def log_of(value: float, scale: float) -> float:
        return math.log(value) + scale if value > 0 else -math.inf

    for t, product, scale in backward_products(jacobians):
        run.interrupt()
        if t in exact:
            sigma = float(torch.linalg.svdvals(product)[0])
            log_norm[t] = log_of(sigma, scale)
            exact_norm[t] = log_norm[t]
            # eigenvalues only for their mean modulus: float32 suffices, and is cheaper
            # (docs/performance.md)
            peak = float(product.abs().max())
            moduli = torch.linalg.eigvals((product / peak).to(torch.float32)).abs()
            mean_abs[t] = log_of(float(moduli.to(torch.float64).mean()) * peak, scale)
        else:
            # warm-started power iteration on P Pᵀ; ‖Pᵀ u‖ ≤ σ_max for unit u (a lower bound)
            for _ in range(POWER_ITERATIONS):
                v = product @ (u @ product)
                norm = float(v.norm())
                if norm == 0.0 or not math.isfinite(norm):
                    break
                u = v / norm
            log_norm[t] = log_of(float((u @ product).norm()), scale)
        if horizon is None:
            if log_norm[t] > log_high:          # a lower bound above the threshold: exploding
                horizon = (t, "exploding")
            elif log_norm[t] < log_low:
                if t not in exact_norm and confirmations < MAX_HORIZON_CONFIRMATIONS:
                    confirmations += 1
                    log_norm[t] = log_of(float(torch.linalg.svdvals(product)[0]), scale)
                if log_norm[t] < log_low:
                    horizon = (t, "vanishing")
                elif log_norm[t] > log_high:
                    horizon = (t, "exploding")
    ratio = _exp(log_norm[0])
    regime = ("vanishing" if ratio < GRADIENT_LOW else "exploding" if ratio > GRADIENT_HIGH
              else "preserving")
    ordered = sorted(exact)
    return GradientSection(
        method=f"backward sweep P_t = P_(t+1) J_t (float64, rescaled); exact SVD and eigenvalues at "
               f"{len(ordered)} steps, warm-started power iteration ({POWER_ITERATIONS} per step) elsewhere",
        spectral_norm=[_exp(v) for v in log_norm],
        exact_steps=ordered,
        spectral_norm_exact=[_exp(exact_norm[t]) for t in ordered],
        mean_abs_eigenvalue=[_exp(mean_abs[t]) for t in ordered],
        norm_ratio=ratio,
        low_threshold=GRADIENT_LOW,
        high_threshold=GRADIENT_HIGH,
        horizon_step=None if horizon is None else horizon[0],
        horizon_lag=None if horizon is None else steps - horizon[0],
        horizon_kind=None if horizon is None else horizon[1],
        regime=regime,
    )


def _lyapunov_section(run: _Run) -> LyapunovSection:
    exponents = lyapunov_exponents(run.jacobians, run.lyapunov_k, run.seed, interrupt=run.interrupt)
    return LyapunovSection(
        method="QR re-orthonormalisation of J_t Q_t (Benettin), float64, seeded orthonormal Q_0",
        k=run.lyapunov_k,
        exponents=_floats(exponents),
        top=float(exponents[0]),
        total=float(exponents.sum()),
        growth_factor=_exp(run.steps * float(exponents[0])),
    )


def _trajectory_section(run: _Run) -> TrajectorySection:
    module, x, h0, delta, seed = run.module, run.x, run.h0, run.delta, run.seed
    bottom, top = _layer_ranges(module, run.facts.family)
    states = run.states.cpu()
    size = states.shape[1]
    z0 = (module.initial_state(1) if h0 is None else h0).detach()
    direction = torch.randn(size, generator=torch.Generator().manual_seed(seed + 1), dtype=torch.float64)
    direction = (direction / direction.norm()).to(dtype=z0.dtype, device=z0.device)
    with torch.no_grad():
        _, perturbed = module.forward_with_states(x, z0 + delta * direction)
    perturbed = perturbed[0].detach().cpu().to(torch.float64)
    reference = states.to(torch.float64)
    divergence = (perturbed - reference).norm(dim=1)
    # the realised initial distance (δ after rounding z_0 + δ·v to the model's dtype)
    start = float(divergence[0]) if float(divergence[0]) > 0 else delta
    top_states = reference[:, top[0]:top[1]]
    traced = list(range(top[0], min(top[1], top[0] + TRACED_NEURONS)))
    phase_bottom = bottom[0]
    phase_top = top[0] if top != bottom else min(top[0] + 1, top[1] - 1)
    for neuron in (phase_bottom, phase_top):
        if neuron not in traced:
            traced.append(neuron)
    return TrajectorySection(
        top_layer=top,
        top_layer_min=_floats(top_states.amin(dim=1)),
        top_layer_max=_floats(top_states.amax(dim=1)),
        neuron_min=_floats(reference.amin(dim=0)),
        neuron_max=_floats(reference.amax(dim=0)),
        max_abs_state=float(reference.abs().max()),
        traced_neurons=traced,
        traces=[_floats(reference[:, i]) for i in traced],
        perturbed_traces=[_floats(perturbed[:, i]) for i in traced],
        phase_neurons=(phase_bottom, phase_top),
        delta=delta,
        divergence=_floats(divergence),
        divergence_ratio=float(divergence[-1]) / start,
        max_divergence_ratio=float(divergence.max()) / start,
    )


@dataclass(frozen=True)
class _SectionRule:
    """How the report runs a section and reads its results."""

    build: Callable[[_Run], Any]
    summary: Callable[[Any], dict[str, Any]]        # the section's figures in ``Summary``
    timing: str                                     # the ``timings_s`` part its work counts under


# In SECTIONS order. The theorem reads B's structure, computed in the "jacobians" part.
_SECTION_TABLE: dict[str, _SectionRule] = {
    "theorem": _SectionRule(_theorem_section, lambda s: {"theorem_holds": s.stability_guaranteed},
                            timing="jacobians"),
    "spectrum": _SectionRule(_spectrum_section, lambda s: {"max_real_eigenvalue": s.max_real_eigenvalue,
                                                           "max_real_bound": s.max_real_bound_overall},
                             timing="spectrum"),
    "discrete": _SectionRule(_discrete_section,
                             lambda s: {"max_step_spectral_radius": s.max_step_spectral_radius},
                             timing="discrete"),
    "gradients": _SectionRule(_gradient_section, lambda s: {"gradient_norm_ratio": s.norm_ratio,
                                                            "gradient_regime": s.regime},
                              timing="gradients"),
    "lyapunov": _SectionRule(_lyapunov_section, lambda s: {"top_lyapunov_exponent": s.top},
                             timing="lyapunov"),
    "trajectory": _SectionRule(_trajectory_section, lambda s: {"divergence_ratio": s.divergence_ratio},
                               timing="trajectory"),
}


# -- summary and verdict ------------------------------------------------------------------------
def _growth(summary: dict[str, Any], steps: int) -> dict[str, float]:
    """The growth of a perturbation over T steps, by each measure the summary has."""
    top = summary["top_lyapunov_exponent"]
    return {name: value for name, value in (
        ("‖∂z_T/∂z_0‖₂", summary["gradient_norm_ratio"]),
        ("exp(T·λ₁)", None if top is None else _exp(steps * top)),
        ("divergence/δ", summary["divergence_ratio"]),
    ) if value is not None}


def _verdict(summary: dict[str, Any], steps: int) -> tuple[str | None, list[str]]:
    """The rules of the module docstring, with the numbers behind each."""
    reasons: list[str] = []
    growth = _growth(summary, steps)
    real = summary["max_real_eigenvalue"]
    radius = summary["max_step_spectral_radius"]
    if not growth and real is None and radius is None:
        return None, ["no section with evidence about growth was computed"]
    verdict = "stable"
    if growth:
        worst = max(growth.values())
        listed = ", ".join(f"{name} = {value:.4g}" for name, value in growth.items())
        if worst > GROWTH_UNSTABLE:
            verdict = "unstable"
            reasons.append(f"perturbations grow by {worst:.4g} > {GROWTH_UNSTABLE:g} over T = {steps} "
                           f"steps ({listed})")
        elif worst > GROWTH_MARGINAL:
            verdict = "marginal"
            reasons.append(f"perturbations grow by {worst:.4g} > {GROWTH_MARGINAL:g} over T = {steps} "
                           f"steps ({listed})")
        else:
            reasons.append(f"perturbations grow by at most {worst:.4g} ≤ {GROWTH_MARGINAL:g} over "
                           f"T = {steps} steps ({listed})")
    if real is not None:
        if real > REAL_TOLERANCE:
            verdict = "marginal" if verdict == "stable" else verdict
            reasons.append(f"max Re λ(D_t B) = {real:.4g} > {REAL_TOLERANCE:g}: the continuous-time "
                           f"system has expanding directions")
        else:
            reasons.append(f"max Re λ(D_t B) = {real:.4g} ≤ {REAL_TOLERANCE:g}: no expanding direction "
                           f"of the continuous-time system")
    if radius is not None:
        log_compound = steps * math.log(max(radius, 1e-300))
        compound = _exp(log_compound)
        if log_compound > math.log(GROWTH_MARGINAL):
            verdict = "marginal" if verdict == "stable" else verdict
            reasons.append(f"max step spectral radius {radius:.6g} compounds to {compound:.4g} > "
                           f"{GROWTH_MARGINAL:g} over T = {steps} steps (the discrete step is expansive)")
        else:
            reasons.append(f"max step spectral radius {radius:.6g} compounds to {compound:.4g} ≤ "
                           f"{GROWTH_MARGINAL:g} over T = {steps} steps")
    return verdict, reasons


def _summary(computed: dict[str, Any], steps: int) -> Summary:
    """Each computed section's own figures (``_SectionRule.summary``; null for the others), the
    horizon growth and the verdict."""
    summary: dict[str, Any] = dict.fromkeys(Summary.model_fields)
    for name, section in computed.items():
        summary.update(_SECTION_TABLE[name].summary(section))
    growth = _growth(summary, steps)
    summary["horizon_growth"] = max(growth.values()) if growth else None
    summary["verdict"], summary["verdict_reasons"] = _verdict(summary, steps)
    discrete = computed.get("discrete")
    if discrete is not None and not discrete.euler_condition_holds:
        summary["verdict_reasons"].append(
            f"the explicit-Euler condition max|1 + ελ(D_t B)| ≤ 1 fails (max factor "
            f"{discrete.max_euler_factor:.6g}); the verdict does not require it, only that the step "
            f"spectral radius compounds to ≤ {GROWTH_MARGINAL:g} over T = {steps} steps"
            + (" (and the IMEX step's own radius is the one that counts)"
               if discrete.method.startswith("ρ(J_t) from eigenvalues of the IMEX") else ""))
    return Summary(**summary)


# -- the report ----------------------------------------------------------------------------------
def _never() -> None:
    """The default ``interrupt``: never stops a report."""


def _gamma_in_force(module) -> float:
    """γ of B = A − γI for the current weights: ``effective_gamma()`` where the model exports it
    (``damping="euler"`` makes γ follow the coupling), else the configured ``gamma`` (older exports)."""
    if hasattr(module, "effective_gamma"):
        return float(module.effective_gamma())
    return float(module.gamma)


def stability_report(module, x=None, *, h0=None, sections: Collection[str] | None = None,
                     lyapunov_k: int = 16, delta: float = 1e-3, default_input: str = "zeros",
                     seed: int = 0, sequence_length: int | None = None, input_size: int | None = None,
                     spectrum_samples: int = 32, gradient_samples: int = 32,
                     eigenvalue_steps: Sequence[int] | None = None,
                     interrupt: Callable[[], None] | None = None) -> StabilityReport:
    """The stability report of ``module`` (eager or TorchScript AFRNN / LSTMBaseline) on one sequence.

    Args:
        module: the model; only its exported interface is used.
        x: one input sequence, (T, C) or (1, T, C), already normalised; None: a default input of
            ``sequence_length`` × ``input_size`` (zeros, or N(0, 1) noise seeded with ``seed``).
        h0: the initial state z_0, (D,) or (1, D); None: ``module.initial_state(1)``.
        sections: names out of ``SECTIONS``; None = all that apply (LSTM: gradients, lyapunov,
            trajectory).
        lyapunov_k: how many Lyapunov exponents, 1 ≤ k ≤ D.
        delta: the size of the initial perturbation of the trajectory section's second run.
        spectrum_samples: steps with the exact spectrum of D_t B (all steps if ≥ T).
        gradient_samples: steps with the exact SVD and eigenvalues of ∂z_T/∂z_t (all if ≥ T).
        eigenvalue_steps: steps whose full spectrum is kept for the scatter plot (default: first,
            middle, last); they join the exact spectrum steps.
        interrupt: called between pieces of work (between parts, and at every step of the step-by-step
            loops); whatever it raises stops the report and propagates (a server's deadline check).

    Raises:
        StabilityArgumentError: a ``ValueError`` naming the argument and the rule, for any bad
            argument.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    family = _family(module)
    chosen = _resolve_sections(sections, family)
    _check_options(spectrum_samples, gradient_samples, delta)
    reference = module.initial_state(1).detach()
    size = int(reference.shape[1])
    if "lyapunov" in chosen and not 1 <= int(lyapunov_k) <= size:
        raise StabilityArgumentError("lyapunov_k", f"lyapunov_k must be between 1 and the state size "
                                                   f"D = {size}, got {lyapunov_k}")
    known_size = _module_input_size(module)
    if input_size is not None and known_size is not None and int(input_size) != known_size:
        raise StabilityArgumentError("input_size", f"input_size = {input_size} disagrees with the model's "
                                                   f"input size {known_size}")
    x, channels, source = _prepare_input(x, reference, known_size or input_size, default_input, seed,
                                         sequence_length)
    h0 = _prepare_h0(h0, reference)
    steps = int(x.shape[1])
    afrnn = family == "afrnn"
    facts = ModelFacts(
        family=family, variant=str(module.variant), state_size=size,
        layer_sizes=[int(s) for s in module.layer_sizes],
        epsilon=float(module.epsilon) if afrnn else None, gamma=_gamma_in_force(module) if afrnn else None,
        update=None if not afrnn else ("sequential" if bool(module.sequential) else "simultaneous"),
        discretisation=None if not afrnn else ("imex" if bool(getattr(module, "imex", False)) else "euler"),
        steps=steps, input_size=channels, input=source,
        initial_state="model" if h0 is None else "given", seed=seed)
    scatter = _scatter_steps(eigenvalue_steps, steps)
    interrupt = interrupt if interrupt is not None else _never

    with _timed(timings, "forward"):
        states, drive = _forward(module, x, h0)
    run = _Run(module, facts, x, h0, states, drive, seed=seed, lyapunov_k=int(lyapunov_k),
               delta=float(delta), spectrum_samples=int(spectrum_samples),
               gradient_samples=int(gradient_samples), scatter=scatter, interrupt=interrupt)
    interrupt()
    with _timed(timings, "jacobians"):
        _coupling_and_jacobians(run, chosen)
    if {"spectrum", "discrete"} & set(chosen):
        interrupt()
        with _timed(timings, "spectrum"):
            _spectra(run)
    computed: dict[str, Any] = {}
    for name in chosen:
        interrupt()
        rule = _SECTION_TABLE[name]
        with _timed(timings, rule.timing):
            computed[name] = rule.build(run)
    summary = _summary(computed, steps)
    timings["total"] = time.perf_counter() - started
    return StabilityReport(model=facts, sections=chosen, summary=summary, timings_s=timings, **computed)
