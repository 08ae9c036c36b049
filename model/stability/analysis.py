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

Vanishing gradients are not instability (an LSTM contracts: g ≪ 1 is "stable" with
``gradient_regime`` = "vanishing"). Numbers for random paper-MNIST weights (seed 0, MNIST test image 0,
784 steps; ``bench/paper_figures.py`` → docs/figures/paper_figures.json):

* AFRNN (ε = 0.01, γ = 0.001): max Re λ(D_t B) ≤ 0 at every step (= 0 exactly where a unit
  saturates, see ``SpectrumSection.zero_derivative_units``); ρ_max = 1.00053 > 1, since the Euler
  factor |1 + ε(−γd + iω)|² ≈ 1 + ε²ω² − 2εγd exceeds 1 for γ = 0.001, but ρ_max^T = 1.5;
  g = 4.4, exp(T·λ₁) = 1.4, Δ = 1.5 → stable.
* 2-ARNN: g = 11.5 → marginal. FRNN: max Re λ = 0.49 > 0, g = 62 → marginal; larger weights or ε
  push an FRNN past 1e3 → unstable (tests/model/test_stability_report.py).
* LSTM: g = 4e-153, λ₁ = −0.45 → stable, gradients vanishing beyond a lag of 18 steps.
"""

import math
import time
from collections.abc import Collection, Sequence
from typing import Any

import torch
from torch import Tensor

from model.stability.jacobians import (
    StepJacobians,
    autograd_step_jacobians,
    backward_products,
    step_jacobians,
    tanh_derivatives,
)
from model.stability.lyapunov import lyapunov_exponents
from model.stability.report import (
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
from model.stability.spectrum import (
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


# -- the module and the input -------------------------------------------------------------------
def _family(module) -> str:
    variant = getattr(module, "variant", None)
    if variant is None:
        raise ValueError("module has no `variant` attribute: expected an AFRNN or LSTMBaseline "
                         "(eager or loaded TorchScript)")
    family = "lstm" if variant == "lstm" else "afrnn"
    needed = _LSTM_METHODS if family == "lstm" else _AFRNN_METHODS
    missing = [name for name in needed if not hasattr(module, name)]
    if missing:
        raise ValueError(f"module (variant {variant!r}) lacks the exported method(s) {missing} that "
                         f"the stability analysis needs")
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
        raise ValueError(f"sections: unknown section(s) {unknown}; valid sections are {list(SECTIONS)}")
    inapplicable = sorted(wanted - set(applicable))
    if inapplicable:
        raise ValueError(f"sections: {inapplicable} do not apply to an LSTM (it has no coupling "
                         f"matrix); applicable sections are {list(LSTM_SECTIONS)}")
    if not wanted:
        raise ValueError(f"sections: give at least one of {list(applicable)}")
    return [name for name in SECTIONS if name in wanted]


def _prepare_input(x, reference: Tensor, input_size: int | None, default_input: str, seed: int,
                   sequence_length: int | None) -> tuple[Tensor, int, str]:
    """x as (1, T, C) in the model's dtype and device, its C, and where it came from."""
    if x is not None:
        x = torch.as_tensor(x)
        if x.dim() == 2:
            x = x.unsqueeze(0)
        if x.dim() != 3 or x.shape[0] != 1:
            raise ValueError(f"x must be one sequence of shape (T, C) or (1, T, C), got {list(x.shape)}")
        if x.shape[1] < 1:
            raise ValueError("x must have at least one step (T ≥ 1)")
        if input_size is not None and x.shape[2] != input_size:
            raise ValueError(f"x must have C = {input_size} values per step for this model, "
                             f"got shape {list(x.shape)}")
        if sequence_length is not None and sequence_length != x.shape[1]:
            raise ValueError(f"sequence_length = {sequence_length} disagrees with x's {x.shape[1]} steps")
        if not torch.is_floating_point(x):
            x = x.to(reference.dtype)
        if not bool(torch.isfinite(x).all()):
            raise ValueError("x must contain only finite values")
        return x.to(dtype=reference.dtype, device=reference.device), int(x.shape[2]), "given"
    if default_input not in DEFAULT_INPUTS:
        raise ValueError(f"default_input must be one of {DEFAULT_INPUTS}, got {default_input!r}")
    if sequence_length is None or int(sequence_length) < 1:
        raise ValueError(f"sequence_length must be a positive number of steps when x is None, "
                         f"got {sequence_length!r}")
    if input_size is None or int(input_size) < 1:
        raise ValueError(f"input_size must be given (≥ 1) when x is None and the module does not "
                         f"reveal it, got {input_size!r}")
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
        raise ValueError(f"h0 must have shape ({size},) or (1, {size}) (the state size D), "
                         f"got {list(h0.shape)}")
    if not bool(torch.isfinite(h0).all()):
        raise ValueError("h0 must contain only finite values")
    return h0.to(dtype=reference.dtype, device=reference.device)


def _layer_ranges(module, family: str) -> tuple[tuple[int, int], tuple[int, int]]:
    """([lo, hi) of the bottom layer, [lo, hi) of the top layer) inside the state z."""
    if family == "lstm":
        hidden, layers = int(module.hidden_size), int(module.num_layers)
        return (0, hidden), ((layers - 1) * hidden, layers * hidden)
    bounds = [int(b) for b in module.layer_bounds]
    return (bounds[0], bounds[1]), (bounds[-2], bounds[-1])


# -- sections ------------------------------------------------------------------------------------
def _gradient_section(jacobians: StepJacobians, samples: int, seed: int) -> GradientSection:
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
        if t in exact:
            sigma = float(torch.linalg.svdvals(product)[0])
            log_norm[t] = log_of(sigma, scale)
            exact_norm[t] = log_norm[t]
            # eigenvalues only for their mean modulus: float32 suffices (about 40 % cheaper)
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


def _trajectory_section(module, x: Tensor, h0: Tensor | None, states: Tensor, delta: float, seed: int,
                        bottom: tuple[int, int], top: tuple[int, int]) -> TrajectorySection:
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


def _verdict(summary: dict[str, Any], steps: int) -> tuple[str | None, list[str]]:
    """The rules of the module docstring, with the numbers behind each."""
    reasons: list[str] = []
    growth = {name: value for name, value in (
        ("‖∂z_T/∂z_0‖₂", summary["gradient_norm_ratio"]),
        ("exp(T·λ₁)", None if summary["top_lyapunov_exponent"] is None
         else _exp(steps * summary["top_lyapunov_exponent"])),
        ("divergence/δ", summary["divergence_ratio"]),
    ) if value is not None}
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
                           f"{GROWTH_MARGINAL:g} over T = {steps} steps (explicit-Euler condition broken)")
        else:
            reasons.append(f"max step spectral radius {radius:.6g} compounds to {compound:.4g} ≤ "
                           f"{GROWTH_MARGINAL:g} over T = {steps} steps")
    return verdict, reasons


# -- the report ----------------------------------------------------------------------------------
def stability_report(module, x=None, *, h0=None, sections: Collection[str] | None = None,
                     lyapunov_k: int = 16, delta: float = 1e-3, default_input: str = "zeros",
                     seed: int = 0, sequence_length: int | None = None, input_size: int | None = None,
                     spectrum_samples: int = 32, gradient_samples: int = 32,
                     eigenvalue_steps: Sequence[int] | None = None) -> StabilityReport:
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

    Raises:
        ValueError: naming the argument and the rule, for any bad argument.
    """
    started = time.perf_counter()
    timings: dict[str, float] = {}
    family = _family(module)
    chosen = _resolve_sections(sections, family)
    for name, value in (("spectrum_samples", spectrum_samples), ("gradient_samples", gradient_samples)):
        if int(value) < 1:
            raise ValueError(f"{name} must be ≥ 1, got {value}")
    if not (isinstance(delta, int | float) and math.isfinite(delta) and delta > 0):
        raise ValueError(f"delta must be a finite number > 0, got {delta!r}")
    reference = module.initial_state(1).detach()
    size = int(reference.shape[1])
    if "lyapunov" in chosen and not 1 <= int(lyapunov_k) <= size:
        raise ValueError(f"lyapunov_k must be between 1 and the state size D = {size}, got {lyapunov_k}")
    known_size = _module_input_size(module)
    if input_size is not None and known_size is not None and int(input_size) != known_size:
        raise ValueError(f"input_size = {input_size} disagrees with the model's input size {known_size}")
    x, channels, source = _prepare_input(x, reference, known_size or input_size, default_input, seed,
                                         sequence_length)
    h0 = _prepare_h0(h0, reference)
    steps = int(x.shape[1])
    if eigenvalue_steps is None:
        scatter = sorted({0, steps // 2, steps - 1})
    else:
        scatter = sorted({int(t) for t in eigenvalue_steps})
        if any(not 0 <= t < steps for t in scatter):
            raise ValueError(f"eigenvalue_steps must lie in 0 … {steps - 1}, got {list(eigenvalue_steps)}")

    tick = time.perf_counter()
    with torch.no_grad():
        _, states = module.forward_with_states(x, h0)
        drive = module.input_drive(x)
    states, drive = states[0].detach(), drive[0].detach()          # (T+1, D), (T, D or C)
    timings["forward"] = time.perf_counter() - tick

    afrnn = family == "afrnn"
    sequential = bool(module.sequential) if afrnn else False
    epsilon = float(module.epsilon) if afrnn else None
    gamma = float(module.gamma) if afrnn else None
    layer_sizes = [int(s) for s in module.layer_sizes]
    bottom, top = _layer_ranges(module, family)
    facts = ModelFacts(
        family=family, variant=str(module.variant), state_size=size, layer_sizes=layer_sizes,
        epsilon=epsilon, gamma=gamma,
        update=None if not afrnn else ("sequential" if sequential else "simultaneous"),
        steps=steps, input_size=channels, input=source,
        initial_state="model" if h0 is None else "given", seed=seed)
    report: dict[str, Any] = {}

    tick = time.perf_counter()
    coupling = derivatives = structure = None
    if afrnn:
        with torch.no_grad():
            native = module.coupling_matrix().detach().cpu()
        structure = coupling_structure(native, gamma, [int(b) for b in module.layer_bounds])
        coupling = native.to(torch.float64)
        derivatives = tanh_derivatives(module, states, drive)
    jacobians: StepJacobians | None = None
    if {"gradients", "lyapunov"} & set(chosen):
        jacobians = step_jacobians(module, states, drive, coupling, derivatives)   # reuses B and D_t
    timings["jacobians"] = time.perf_counter() - tick

    if "theorem" in chosen:
        report["theorem"] = TheoremSection(
            antisymmetry_residual=structure.antisymmetry_residual,
            antisymmetry_residual_relative=structure.antisymmetry_residual_relative,
            symmetric_part_max_eigenvalue=structure.symmetric_part_max_eigenvalue,
            minus_gamma=-gamma,
            coupling_structure=structure.structure,
            spectral_blocks=structure.blocks,
            block_symmetric_max_eigenvalue=structure.block_symmetric_max,
            theorem3_satisfied=structure.theorem3_satisfied,
            stability_guaranteed=structure.stability_guaranteed,
            model_claims_theorem=bool(module.theorem_applies),
        )

    if {"spectrum", "discrete"} & set(chosen):
        tick = time.perf_counter()
        bounds = max_real_bounds(derivatives, structure)
        exact = sorted(set(spectrum_steps(bounds, int(spectrum_samples))) | set(scatter))
        eigenvalues = continuous_eigenvalues(coupling, derivatives[exact], structure)   # (n, D)
        max_real = eigenvalues.real.amax(dim=1)
        worst = int(torch.argmax(max_real))
        if "spectrum" in chosen:
            position = {t: i for i, t in enumerate(exact)}
            report["spectrum"] = SpectrumSection(
                method=f"Bendixson bound at every step; exact eigenvalues of D^1/2 B D^1/2 (float64, "
                       f"{len(structure.blocks)} spectral block(s)) at {len(exact)} steps",
                max_real_bound=_floats(bounds),
                exact_steps=exact,
                max_real=_floats(max_real),
                max_real_eigenvalue=float(max_real[worst]) + 0.0,      # no "-0.0" in JSON
                max_real_step=exact[worst],
                max_real_bound_overall=float(bounds.max()),
                zero_derivative_units=int((derivatives == 0).sum(dim=1).max()),
                eigenvalues=[EigenvalueSample(step=t, real=_floats(eigenvalues[position[t]].real),
                                              imag=_floats(eigenvalues[position[t]].imag))
                             for t in scatter],
            )
        timings["spectrum"] = time.perf_counter() - tick
        if "discrete" in chosen:
            tick = time.perf_counter()
            euler = (1.0 + epsilon * eigenvalues).abs().amax(dim=1)
            if sequential:
                sampled = (jacobians.stack(exact) if jacobians is not None else
                           autograd_step_jacobians(module, states, drive, exact).to(torch.float64))
                radius = torch.linalg.eigvals(sampled).abs().amax(dim=1)
                method = "ρ(J_t) from eigenvalues of the autograd Jacobian of the sequential step"
            else:
                radius = euler
                method = "ρ(I + ε D_t B) = max|1 + ε λ(D_t B)| (spectral mapping)"
            max_radius, max_euler = float(radius.max()), float(euler.max())
            report["discrete"] = DiscreteSection(
                method=method + f", at the {len(exact)} exact spectrum steps",
                exact_steps=exact,
                spectral_radius=_floats(radius),
                euler_factor=_floats(euler),
                max_step_spectral_radius=max_radius,
                max_euler_factor=max_euler,
                euler_margin=1.0 - max_euler,
                euler_condition_holds=max_euler <= 1.0 + EULER_TOLERANCE,
                log_growth_bound=steps * math.log(max(max_radius, 1e-300)),
            )
            timings["discrete"] = time.perf_counter() - tick

    if "gradients" in chosen:
        tick = time.perf_counter()
        report["gradients"] = _gradient_section(jacobians, int(gradient_samples), seed)
        timings["gradients"] = time.perf_counter() - tick

    if "lyapunov" in chosen:
        tick = time.perf_counter()
        exponents = lyapunov_exponents(jacobians, int(lyapunov_k), seed)
        report["lyapunov"] = LyapunovSection(
            method="QR re-orthonormalisation of J_t Q_t (Benettin), float64, seeded orthonormal Q_0",
            k=int(lyapunov_k),
            exponents=_floats(exponents),
            top=float(exponents[0]),
            total=float(exponents.sum()),
            growth_factor=_exp(steps * float(exponents[0])),
        )
        timings["lyapunov"] = time.perf_counter() - tick

    if "trajectory" in chosen:
        tick = time.perf_counter()
        report["trajectory"] = _trajectory_section(module, x, h0, states.cpu(), float(delta), seed,
                                                   bottom, top)
        timings["trajectory"] = time.perf_counter() - tick

    theorem = report.get("theorem")
    summary: dict[str, Any] = {
        "theorem_holds": theorem.stability_guaranteed if theorem is not None else None,
        "max_real_eigenvalue": report["spectrum"].max_real_eigenvalue if "spectrum" in report else None,
        "max_real_bound": report["spectrum"].max_real_bound_overall if "spectrum" in report else None,
        "max_step_spectral_radius": (report["discrete"].max_step_spectral_radius
                                     if "discrete" in report else None),
        "top_lyapunov_exponent": report["lyapunov"].top if "lyapunov" in report else None,
        "gradient_norm_ratio": report["gradients"].norm_ratio if "gradients" in report else None,
        "gradient_regime": report["gradients"].regime if "gradients" in report else None,
        "divergence_ratio": report["trajectory"].divergence_ratio if "trajectory" in report else None,
    }
    growth = [v for v in (summary["gradient_norm_ratio"], summary["divergence_ratio"],
                          None if summary["top_lyapunov_exponent"] is None
                          else _exp(steps * summary["top_lyapunov_exponent"])) if v is not None]
    summary["horizon_growth"] = max(growth) if growth else None
    summary["verdict"], summary["verdict_reasons"] = _verdict(summary, steps)
    timings["total"] = time.perf_counter() - started
    return StabilityReport(model=facts, sections=chosen, summary=Summary(**summary), timings_s=timings,
                           **report)
