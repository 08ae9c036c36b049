"""The stability report's schema (``model.stability`` computes it): a pydantic model that serialises to
JSON unchanged.

One report covers one model and one input sequence of T steps. Index conventions:

* states z_0 … z_T, so per-state curves (trajectory) have T + 1 entries;
* step Jacobians J_t = ∂z_{t+1}/∂z_t and D_t, t = 0 … T − 1, so per-step curves have T entries;
* ``*_steps`` lists name the steps t at which a sampled (exact, but costly) quantity was computed.

Every section is optional (null when it was not requested or does not apply: an LSTM has no
coupling matrix, so no theorem, spectrum or discrete section). ``summary`` is what clients rely on.
"""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

REPORT_SCHEMA_VERSION = 1

Verdict = Literal["stable", "marginal", "unstable"]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", protected_namespaces=())


class ModelFacts(_Section):
    family: Literal["afrnn", "lstm"]
    variant: str = Field(description="arnn | 2-arnn | frnn | afrnn | lstm")
    state_size: int = Field(description="D: size of the stacked state z (LSTM: [h; c], 2·L·H)")
    layer_sizes: list[int]
    epsilon: float | None = Field(description="Euler step ε (null for LSTM)")
    gamma: float | None = Field(description="diffusion γ, B = A − γI (null for LSTM)")
    update: Literal["simultaneous", "sequential"] | None = Field(
        description="the AFRNN update scheme (null for LSTM)")
    discretisation: Literal["euler", "imex"] | None = Field(
        None, description="the AFRNN step: explicit Euler, or IMEX (the linear part by the trapezoidal "
                          "rule; its state is w = (I − ε/2·B) z) (null for LSTM)")
    steps: int = Field(description="T, the number of steps of the analysed sequence")
    input_size: int
    input: Literal["given", "zeros", "noise"] = Field(description="where the input sequence came from")
    initial_state: Literal["model", "given"] = Field(description="z_0 = module.initial_state, or h0")
    seed: int = Field(description="seed of the noise input, the perturbation direction and Lyapunov Q_0")


class TheoremSection(_Section):
    """Theorem 3 (and Lemma 2) checked on the coupling matrix itself, not on the config."""

    antisymmetry_residual: float = Field(description="‖A + Aᵀ‖_F with A = B + γI")
    antisymmetry_residual_relative: float = Field(description="‖A + Aᵀ‖_F / ‖A‖_F")
    symmetric_part_max_eigenvalue: float = Field(
        description="λ_max((B + Bᵀ)/2); equals −γ when A is antisymmetric (AFRNN, ARNN)")
    minus_gamma: float
    coupling_structure: Literal["antisymmetric", "block_triangular", "general"] = Field(
        description="antisymmetric A (Theorem 3); block-triangular A with antisymmetric diagonal "
                    "blocks (2-ARNN); or neither (FRNN)")
    spectral_blocks: list[tuple[int, int]] = Field(
        description="state ranges whose D_t B blocks carry the spectrum: the whole state, or the "
                    "diagonal blocks of a block-triangular B")
    block_symmetric_max_eigenvalue: list[float] = Field(
        description="λ_max of the symmetric part of each spectral block of B")
    theorem3_satisfied: bool = Field(description="every coupling pair is (W, −Wᵀ): A is antisymmetric")
    stability_guaranteed: bool = Field(
        description="max Re λ(D B) ≤ 0 for EVERY diagonal D ≥ 0 (every input): each spectral block "
                    "has a negative semi-definite symmetric part")
    model_claims_theorem: bool = Field(description="the module's own `theorem_applies` flag")


class EigenvalueSample(_Section):
    step: int
    real: list[float]
    imag: list[float]


class SpectrumSection(_Section):
    """The continuous-time Jacobian D_t B along the trajectory (Lemma 2: purely imaginary for γ = 0)."""

    method: str
    max_real_bound: list[float] = Field(
        description="for every t = 0 … T−1: a rigorous upper bound on max Re λ(D_t B) (Bendixson)")
    exact_steps: list[int]
    max_real: list[float] = Field(description="exact max Re λ(D_t B) at exact_steps")
    max_real_eigenvalue: float = Field(description="max over exact_steps of max Re λ(D_t B)")
    max_real_step: int
    max_real_bound_overall: float = Field(description="max over all t of max_real_bound")
    zero_derivative_units: int = Field(
        description="max over t of the units with tanh'(·) = 0 in the model's dtype (saturated): "
                    "each makes D_t B singular, so max Re λ = 0 exactly even with γ > 0")
    eigenvalues: list[EigenvalueSample] = Field(description="the full spectrum at a few chosen steps")


class DiscreteSection(_Section):
    """The discrete step: spectral radius of the model's own J_t, and the explicit-Euler condition
    max|1 + ελ(D_t B)| ≤ 1 (for the IMEX form, what the explicit step would give, for comparison)."""

    method: str
    exact_steps: list[int]
    spectral_radius: list[float] = Field(description="ρ(J_t) of the model's own step at exact_steps")
    euler_factor: list[float] = Field(description="max_i |1 + ε λ_i(D_t B)| at exact_steps")
    max_step_spectral_radius: float
    max_euler_factor: float
    euler_margin: float = Field(description="1 − max_euler_factor; negative: the Euler condition fails")
    euler_condition_holds: bool = Field(
        description="max_euler_factor ≤ 1 (to 1e-12). The verdict does not require it: it asks whether "
                    "the step's spectral radius compounds past 10 over T steps, and says so in "
                    "summary.verdict_reasons when this fails")
    log_growth_bound: float = Field(
        description="T · log(max_step_spectral_radius): the per-step amplification of the worst "
                    "eigen-direction compounded over the sequence (natural log)")


class GradientSection(_Section):
    """Gradient propagation (paper Fig. 4): ∂z_T/∂z_t = J_{T−1} ⋯ J_t for t = 0 … T−1."""

    method: str
    spectral_norm: list[float] = Field(
        description="‖∂z_T/∂z_t‖₂ for every t = 0 … T−1 (exact at exact_steps, warm-started power "
                    "iteration elsewhere, which is a lower bound)")
    exact_steps: list[int]
    spectral_norm_exact: list[float] = Field(description="‖∂z_T/∂z_t‖₂ by SVD at exact_steps")
    mean_abs_eigenvalue: list[float] = Field(description="mean_i |λ_i(∂z_T/∂z_t)| at exact_steps")
    norm_ratio: float = Field(description="‖∂z_T/∂z_0‖₂ (exact)")
    low_threshold: float
    high_threshold: float
    horizon_step: int | None = Field(
        description="the largest t with ‖∂z_T/∂z_t‖₂ below low_threshold or above high_threshold")
    horizon_lag: int | None = Field(description="T − horizon_step")
    horizon_kind: Literal["vanishing", "exploding"] | None
    regime: Literal["vanishing", "preserving", "exploding"] = Field(
        description="from norm_ratio: < low_threshold, in between, > high_threshold")


class LyapunovSection(_Section):
    method: str
    k: int
    exponents: list[float] = Field(description="top k Lyapunov exponents, natural log per step, descending")
    top: float
    total: float = Field(description="sum of the k exponents")
    growth_factor: float = Field(description="exp(T · top): growth of the most expanding perturbation")


class TrajectorySection(_Section):
    """Figs. 2–3: what the states do, and how two runs from z_0 and z_0 + δ·v drift apart."""

    top_layer: tuple[int, int] = Field(description="[lo, hi) of the top layer inside z")
    top_layer_min: list[float] = Field(description="min over top-layer neurons, for t = 0 … T")
    top_layer_max: list[float] = Field(description="max over top-layer neurons, for t = 0 … T")
    neuron_min: list[float] = Field(description="per state neuron: min over t of z_t[i]")
    neuron_max: list[float] = Field(description="per state neuron: max over t of z_t[i]")
    max_abs_state: float
    traced_neurons: list[int] = Field(description="state indices of the traces")
    traces: list[list[float]] = Field(description="z_t[i] for t = 0 … T, one list per traced neuron")
    perturbed_traces: list[list[float]] = Field(description="the same neurons in the perturbed run")
    phase_neurons: tuple[int, int] = Field(description="(bottom-layer, top-layer) neuron for Fig. 3")
    delta: float
    divergence: list[float] = Field(description="‖z'_t − z_t‖₂ for t = 0 … T, z'_0 = z_0 + δ·v, ‖v‖ = 1")
    divergence_ratio: float = Field(description="divergence at T / δ")
    max_divergence_ratio: float = Field(description="max over t of divergence / δ")


class Summary(_Section):
    theorem_holds: bool | None = Field(
        description="the coupling guarantees max Re λ(D_t B) ≤ 0 for every input: Theorem 3 "
                    "(antisymmetric A) or its block-triangular form (2-ARNN); null for LSTM")
    max_real_eigenvalue: float | None = Field(
        description="max Re λ(D_t B), exact at spectrum.exact_steps (sampled steps plus the steps with "
                    "the largest bounds); max_real_bound bounds it at every step")
    max_real_bound: float | None = Field(
        None, description="Bendixson upper bound on max Re λ(D_t B) over every step t")
    max_step_spectral_radius: float | None
    top_lyapunov_exponent: float | None
    gradient_norm_ratio: float | None = Field(description="‖∂z_T/∂z_0‖₂")
    gradient_regime: Literal["vanishing", "preserving", "exploding"] | None
    divergence_ratio: float | None
    horizon_growth: float | None = Field(
        description="max of gradient_norm_ratio, exp(T · top Lyapunov exponent) and "
                    "divergence_ratio: how much a perturbation grows over the sequence")
    verdict: Verdict | None = Field(description="null only when no section gives evidence")
    verdict_reasons: list[str]


class StabilityReport(_Section):
    schema_version: int = REPORT_SCHEMA_VERSION
    model: ModelFacts
    sections: list[str] = Field(description="the sections computed, in SECTIONS order")
    summary: Summary
    theorem: TheoremSection | None = None
    spectrum: SpectrumSection | None = None
    discrete: DiscreteSection | None = None
    gradients: GradientSection | None = None
    lyapunov: LyapunovSection | None = None
    trajectory: TrajectorySection | None = None
    timings_s: dict[str, float] = Field(default_factory=dict,
                                        description="wall-clock seconds per part, and 'total'")
