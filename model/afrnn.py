"""Antisymmetric Feedback RNN (Schwabe, Glasmachers, Acosta, ACML 2022) as one block matrix.

The network has N recurrent layers g¹ … gᴺ of widths D(1) … D(N). Stacked into z (size D = Σ D(n)),
one step is (eqs. 6–7, 17–18; see ``model.recurrence``)

    z_{t+1} = z_t + ε · tanh(B z_t + U x_t + b),       B = A − γ I,

where A is the block matrix with

* diagonal blocks  A^{nn} = R_n − R_nᵀ                  (antisymmetric recurrence of layer n),
* coupling blocks  A^{mn} = W_{n→m}                     (feedforward, lower layer n → upper m),
                   A^{nm} = −W_{n→m}ᵀ  (AFRNN), F (FRNN, a free matrix) or 0 (2-ARNN),

U feeds the input into layer 1 only (U = [E; 0; …]) and the readout is linear on the top layer.
Theorem 3: if every A^{nm} = −(A^{mn})ᵀ, A is antisymmetric, so by Lemma 2 every eigenvalue of the
continuous-time Jacobian D_t B (D_t = diag tanh'(·)) has real part −γ·(something ≥ 0) ≤ 0, for any
depth, widths and set of coupled pairs.

Variants (``feedback``): ``"antisymmetric"`` → AFRNN, ``"none"`` → 2-ARNN, ``"free"`` → FRNN; a
single layer is the ARNN of Chang et al. (2019).

Discretisation (``discretisation``). ``"euler"`` is the paper's explicit step above. Its Jacobian
I + ε D_t B has eigenvalues 1 + ελ(D_t B), and for the purely imaginary λ of Theorem 3 these lie
outside the unit circle for every ε > 0. ``"imex"`` takes the linear part B z of tanh(B z + u) =
B z + (tanh(B z + u) − B z) by the trapezoidal rule (implicit midpoint; the Cayley transform for the
linear system) and the remainder explicitly:

    (I − ε/2·B) z_{t+1} = (I + ε/2·B) z_t + ε (tanh(B z_t + u_t) − B z_t)
    ⇔ z_{t+1} = z_t + ε P tanh(B z_t + u_t),      P = (I − ε/2·B)⁻¹.

In the coordinates w = (I − ε/2·B) z = P⁻¹z it is an explicit step of the same form,

    w_{t+1} = w_t + ε tanh(B̃ w_t + u_t),          B̃ = B P = (C − I)/ε,      C = P (I + ε/2·B),

so the fused recurrence, the fast path and the stability analysis run it unchanged with B̃ in place
of B (``step_coupling``); the model carries w (``initial_state`` is P⁻¹z_0) and reads out
z = P w = w + ε/2·B̃ w (``readout``; P = I + ε/2·B̃ since P(I − ε/2·B) = I), with no second solve.
Its step Jacobian is I + ε D_t B̃ = (I − D_t) + D_t C. When B + Bᵀ ≤ 0 (Theorem 3,
γ ≥ 0), C is a contraction for every ε > 0, and then ρ((I − D) + D C) ≤ 1 for every diagonal
0 ≤ D ≤ I: from ((I − D) + D C) x = μ x with |μ| > 1, each entry gives
|(C x)_i| = |μ − 1 + d_i| / d_i · |x_i| > |x_i| (or x_i = 0), so ‖C x‖ > ‖x‖, a contradiction. The
step's spectral radius is at most 1 for every state, input and ε; at D = I and γ = 0 the step is
C itself, orthogonal (norm-preserving). Its norm can exceed 1 (the Jacobian is not normal).

Parameter names are generated in one loop and become checkpoint keys::

    layers.{n}.weight_rec   R_n, (D(n), D(n))       layers.{n}.bias      b_n, (D(n),)
    couplings.{k}.weight_ff W,   (D(m), D(n))       couplings.{k}.weight_fb F (FRNN only), (D(n), D(m))
    weight_in               E,   (D(1), input_size) head.weight / head.bias   the readout

Init: R_n ~ N(0, (init_std/√D(n))²), W ~ N(0, (init_std/√D(n))²) for source layer n, E ~ N(0, 1/in),
biases 0.
"""

import copy
import math
import warnings
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn

from model.recurrence import euler_recurrence, euler_step, euler_velocity, fused_euler_recurrence

FEEDBACK_MODES = ("antisymmetric", "none", "free")
UPDATE_SCHEMES = ("simultaneous", "sequential")
DAMPING_MODES = ("fixed", "euler")
DISCRETISATIONS = ("euler", "imex")
# How a training recurrence runs: "autograd" records the per-step ops of ``euler_recurrence``;
# "fused" is one autograd node with a hand-written reverse sweep (``FusedEulerRecurrence``, the same
# arithmetic); "fused-bf16" the same with its GEMMs in bf16 (state, tanh and sums in fp32). The
# sequential update always takes "autograd".
TRAINING_PATHS = ("autograd", "fused", "fused-bf16")


def step_coupling(module) -> Tensor:
    """B̃, the matrix an AFRNN-family module's recurrence multiplies its state by: ``step_coupling()``
    where the module exports it, else ``coupling_matrix()`` (exports from before the IMEX form, whose
    step is always explicit Euler)."""
    if hasattr(module, "step_coupling"):
        return module.step_coupling()
    return module.coupling_matrix()


def euler_damping(epsilon: float, spectral_norm: Tensor) -> Tensor:
    """The least γ for which one explicit-Euler step of dz/dt = (A − γI) z is non-expansive.

    A is antisymmetric, so its eigenvalues are ±iω with |ω| ≤ σ = ‖A‖₂, and the step's eigenvalues are
    1 + ε(−γ ± iω). Then |1 + ε(−γ + iω)|² = (1 − εγ)² + ε²ω² ≤ 1 for every |ω| ≤ σ iff

        εγ ≥ 1 − √(1 − ε²σ²)        (≈ ε²σ²/2 for small εσ, i.e. γ ≥ εσ²/2),

    which needs εσ ≤ 1. For εσ > 1 no γ makes the step non-expansive; εγ = 1 then minimises the
    largest step radius (to εσ), and that is what is returned. The tanh derivatives D_t ∈ (0, 1]
    scale the eigenvalues of D_t B towards 0, so the linear bound is the worst case the step sees near
    z with small pre-activations. The memory cost is the decay exp(−ε γ T) over T steps.
    """
    es = (epsilon * spectral_norm).clamp(max=1.0)
    return (1.0 - torch.sqrt(1.0 - es * es)) / epsilon


class AntisymmetricLayer(nn.Module):
    """One recurrent layer's own parameters: R_n (its block is R_n − R_nᵀ − γI) and bias b_n."""

    def __init__(self, size: int, init_std: float):
        super().__init__()
        self.weight_rec = nn.Parameter(torch.randn(size, size) * (init_std / math.sqrt(size)))
        self.bias = nn.Parameter(torch.zeros(size))

    def antisymmetric_block(self) -> Tensor:
        """A^{nn} = R_n − R_nᵀ."""
        return self.weight_rec - self.weight_rec.t()


class LayerCoupling(nn.Module):
    """The coupling of a lower layer n with an upper layer m > n.

    ``weight_ff`` is W (D(m) × D(n)), the block A^{mn}. The block A^{nm} is −Wᵀ for AFRNN, the
    free matrix ``weight_fb`` for FRNN, and 0 for 2-ARNN.
    """

    def __init__(self, lower: int, upper: int, lower_size: int, upper_size: int,
                 feedback: str, init_std: float):
        super().__init__()
        self.lower = lower
        self.upper = upper
        self.feedback = feedback
        self.weight_ff = nn.Parameter(
            torch.randn(upper_size, lower_size) * (init_std / math.sqrt(lower_size)))
        if feedback == "free":
            self.weight_fb = nn.Parameter(
                torch.randn(lower_size, upper_size) * (init_std / math.sqrt(upper_size)))
        else:
            self.register_parameter("weight_fb", None)

    def feedback_block(self) -> Optional[Tensor]:
        """A^{nm}: −Wᵀ (antisymmetric), F (free) or None (no feedback)."""
        if self.feedback == "antisymmetric":
            return -self.weight_ff.t()
        return self.weight_fb


@dataclass
class AFRNNConfig:
    input_size: int = 1                   # channels per step: 1 pixel MNIST, 3 CIFAR-10, 4 pendulum
    layer_sizes: Tuple[int, ...] = (128, 128)
    output_size: int = 10                 # classes, or predicted state variables
    # coupled (lower, upper) layer pairs, 0-based; None = consecutive pairs (the "sparse default")
    couplings: Optional[Tuple[Tuple[int, int], ...]] = None
    feedback: str = "antisymmetric"       # "antisymmetric" (AFRNN) | "none" (2-ARNN) | "free" (FRNN)
    epsilon: float = 0.01                 # Euler step ε (paper text for MNIST/CIFAR-10)
    gamma: float = 0.001                  # diffusion γ: B = A − γI
    update: str = "simultaneous"          # eqs. 6–7; "sequential" = the reference code's sweep
    init_std: float = 1.0                 # recurrent weights ~ N(0, (init_std/√D)²)
    initial_state: float = 0.0            # value of every entry of z_0 (the pendulum uses 1)
    # "fixed": B = A − γI. "euler": γ_eff = max(γ, γ_E(ε‖A‖₂)), the least damping for which the
    # explicit-Euler step of the linear part is non-expansive (see ``euler_damping``); off by default.
    damping: str = "fixed"
    # a bound β on ε‖A‖₂: the step uses s·A with s = min(1, β / (ε‖A‖₂)) (see ``AFRNN.coupling_scale``);
    # None: off (the default). Exported models carry it folded into R and W (``fold_step_bound``).
    step_bound: Optional[float] = None
    # "euler": the paper's explicit step. "imex": the linear part by the trapezoidal rule, the rest
    # explicit (see the module docstring): a step radius ≤ 1 for every ε under Theorem 3.
    discretisation: str = "euler"

    def __post_init__(self):
        self.layer_sizes = tuple(int(s) for s in self.layer_sizes)
        if not self.layer_sizes or any(s < 1 for s in self.layer_sizes):
            raise ValueError(f"layer_sizes must be one or more positive widths, got {self.layer_sizes}")
        if self.input_size < 1 or self.output_size < 1:
            raise ValueError(f"input_size and output_size must be ≥ 1, got "
                             f"{self.input_size} and {self.output_size}")
        if self.feedback not in FEEDBACK_MODES:
            raise ValueError(f"feedback must be one of {FEEDBACK_MODES}, got {self.feedback!r}")
        if self.update not in UPDATE_SCHEMES:
            raise ValueError(f"update must be one of {UPDATE_SCHEMES}, got {self.update!r}")
        if self.damping not in DAMPING_MODES:
            raise ValueError(f"damping must be one of {DAMPING_MODES}, got {self.damping!r}")
        if self.discretisation not in DISCRETISATIONS:
            raise ValueError(f"discretisation must be one of {DISCRETISATIONS}, got {self.discretisation!r}")
        if self.discretisation == "imex" and self.update == "sequential":
            raise ValueError("discretisation='imex' solves for the whole state at once; the sequential "
                             "(layer-by-layer) update has no such form, got update='sequential'")
        if self.damping == "euler" and self.feedback == "free" and len(self.layer_sizes) > 1:
            raise ValueError("damping='euler' assumes the purely imaginary spectrum of an antisymmetric "
                             "(AFRNN, ARNN) or block-triangular (2-ARNN) A; the FRNN's free feedback "
                             "gives eigenvalues with real parts, got feedback='free'")
        if self.epsilon <= 0:
            raise ValueError(f"epsilon must be > 0, got {self.epsilon}")
        if self.gamma < 0:
            raise ValueError(f"gamma must be ≥ 0, got {self.gamma}")
        if self.step_bound is not None and not self.step_bound > 0:
            raise ValueError(f"step_bound must be > 0 (or None), got {self.step_bound}")
        n = len(self.layer_sizes)
        if self.couplings is None:
            self.couplings = tuple((i, i + 1) for i in range(n - 1))
        pairs = []
        for pair in self.couplings:
            lower, upper = (int(p) for p in pair)
            if not 0 <= lower < upper < n:
                raise ValueError(f"couplings must be pairs (lower, upper) with 0 ≤ lower < upper < "
                                 f"{n}, got {tuple(pair)}")
            pairs.append((lower, upper))
        if len(set(pairs)) != len(pairs):
            raise ValueError(f"couplings must not repeat a pair, got {pairs}")
        self.couplings = tuple(pairs)
        if self.gamma == 0 and self.discretisation == "euler":
            warnings.warn("gamma = 0: the Euler discretisation is only marginally stable "
                          "(max|1 + ελ| ≥ 1 for imaginary λ)", stacklevel=3)

    @property
    def variant(self) -> str:
        if len(self.layer_sizes) == 1:
            return "arnn"
        return {"antisymmetric": "afrnn", "none": "2-arnn", "free": "frnn"}[self.feedback]


class AFRNN(nn.Module):
    """N-layer AFRNN / FRNN / 2-ARNN / ARNN with a linear readout from the top layer.

    Shapes: x is (N, T, input_size) (batch first); states are (N, T+1, D) with z_0 first;
    readouts are (N, output_size) at the last step or (N, T, output_size) at every step.
    """

    # Held by ``fix_weights`` for weights that no longer change (serving); None: computed per call.
    fixed_coupling_matrix: Optional[Tensor]
    fixed_step_coupling: Optional[Tensor]

    def __init__(self, config: AFRNNConfig):
        super().__init__()
        self.config = config
        sizes = list(config.layer_sizes)
        self.layer_sizes: List[int] = sizes
        bounds = [0]
        for s in sizes:
            bounds.append(bounds[-1] + s)
        self.layer_bounds: List[int] = bounds
        self.state_size: int = bounds[-1]
        self.epsilon: float = float(config.epsilon)
        self.gamma: float = float(config.gamma)
        self.feedback: str = config.feedback
        self.variant: str = config.variant
        self.sequential: bool = config.update == "sequential"
        self.initial_value: float = float(config.initial_state)
        self.euler_damped: bool = config.damping == "euler"
        self.step_bound: float = float(config.step_bound) if config.step_bound is not None else 0.0
        self.imex: bool = config.discretisation == "imex"
        # how a recurrence that records gradients runs (``TRAINING_PATHS``). "autograd" by default, so
        # that any use of autograd works (torch.autograd.functional.jacobian backpropagates one graph
        # many times, which the fused node's in-place sweep refuses); the trainer sets its --recurrence.
        # Not part of the architecture: exported models run ``euler_recurrence`` in fp32.
        self.training_path: str = "autograd"
        self.fixed_coupling_matrix = None
        self.fixed_step_coupling = None
        # Theorem 3's condition: every coupled pair is (W, −Wᵀ), so A is antisymmetric. (The 2-ARNN
        # does not meet it; its continuous system is still stable because B is block triangular, which
        # the stability report states separately.)
        self.theorem_applies: bool = config.feedback == "antisymmetric" or len(sizes) == 1

        self.weight_in = nn.Parameter(
            torch.randn(sizes[0], config.input_size) / math.sqrt(config.input_size))
        self.layers = nn.ModuleList(AntisymmetricLayer(s, config.init_std) for s in sizes)
        self.couplings = nn.ModuleList(
            LayerCoupling(lo, up, sizes[lo], sizes[up], config.feedback, config.init_std)
            for lo, up in config.couplings)
        self.head = nn.Linear(sizes[-1], config.output_size)

    # -- the pieces of the step, exported for the stability analysis --------------------------
    @torch.jit.export
    def coupling_matrix(self) -> Tensor:
        """B = s·A − γ I, shape (D, D) (s = 1 unless ``step_bound`` is set, see ``coupling_scale``); the
        one held by ``fix_weights``, if any."""
        fixed = self.fixed_coupling_matrix
        if fixed is not None:
            return fixed
        A = self.coupling_blocks()
        A = A * self.coupling_scale(A)
        return A - self.damping_coefficient(A) * torch.eye(self.state_size, dtype=A.dtype, device=A.device)

    @torch.jit.export
    def step_coupling(self) -> Tensor:
        """B̃, the matrix the recurrence multiplies its state by, (D, D): B for the explicit-Euler step;
        for ``discretisation="imex"``, B̃ = (I − ε/2·B)⁻¹ B, the coupling of the same step in the
        coordinates w = (I − ε/2·B) z (module docstring). The one held by ``fix_weights``, if any."""
        fixed = self.fixed_step_coupling
        if fixed is not None:
            return fixed
        B = self.coupling_matrix()
        if not self.imex:
            return B
        return torch.linalg.solve(self._implicit_matrix(B), B)

    @torch.jit.export
    def fix_weights(self) -> None:
        """For weights that will not change again (a served model): compute B (``coupling_matrix``)
        and B̃ (``step_coupling``) once, here, and return them from now on. Otherwise ``forward``,
        ``readout``, ``initial_state``, ``advance`` and the analysis methods rebuild B from the weights
        at every call and, for ``imex``, solve (I − ε/2·B) B̃ = B, a D × D solve, O(D³), which costs
        more than the whole recurrence of a short sequence. Every method answers bit for bit as
        before. Call it again after changing the weights or moving the module to another device (B and
        B̃ are attributes, not buffers: ``.to()`` leaves them where they are). Training never calls it."""
        self.fixed_coupling_matrix = None
        self.fixed_step_coupling = None
        self.fixed_coupling_matrix = self.coupling_matrix().detach()
        self.fixed_step_coupling = self.step_coupling().detach()

    def _implicit_matrix(self, B: Tensor) -> Tensor:
        """I − ε/2·B, the matrix of the trapezoidal rule's implicit half (P = its inverse)."""
        return torch.eye(self.state_size, dtype=B.dtype, device=B.device) - (0.5 * self.epsilon) * B

    def coupling_scale(self, A: Tensor) -> Tensor:
        """s = min(1, β / (ε‖A‖₂)) with β = ``step_bound`` (1 when unset), from the exact ‖A‖₂ of the
        current weights (not differentiated, like spectral normalisation's σ).

        The step then uses s·A, so ε‖s·A‖₂ ≤ β. For an antisymmetric A (AFRNN, ARNN) the eigenvalues of
        the linear part's Euler step I + ε(s·A − γI) are 1 − εγ ± iεω with |ω| ≤ ‖s·A‖₂, so every step
        radius is at most √((1 − εγ)² + β²) ≈ 1 + β²/2 − εγ: a bound the optimiser cannot leave,
        unlike the Euler condition on its own. Theorem 3 is untouched (s·A is antisymmetric), and
        γ — hence the memory exp(−εγT) — is not raised, unlike ``damping="euler"``.
        """
        one = torch.ones((), dtype=A.dtype, device=A.device)
        if self.step_bound <= 0.0:
            return one
        # ‖A‖₂² is the largest eigenvalue of the symmetric A Aᵀ (3× cheaper than an SVD of A)
        sigma = torch.linalg.eigvalsh(A.detach() @ A.detach().t())[-1].clamp(min=0.0).sqrt()
        return torch.minimum(one, self.step_bound / (self.epsilon * sigma.clamp(min=1e-12)))

    def fold_step_bound(self) -> "AFRNN":
        """A copy whose R and W are multiplied by the current ``coupling_scale`` and whose bound is
        off: the same ``coupling_matrix`` (A is linear in R, W and F), with nothing left to compute at
        run time. Exports take this form; without a bound it is a plain copy."""
        config = copy.deepcopy(self.config)
        config.step_bound = None
        folded = AFRNN(config).to(self.weight_in.device, self.weight_in.dtype)
        folded.load_state_dict(self.state_dict())
        if self.step_bound > 0.0:
            with torch.no_grad():
                scale = self.coupling_scale(self.coupling_blocks())
                for layer in folded.layers:
                    layer.weight_rec.mul_(scale)
                for coupling in folded.couplings:
                    coupling.weight_ff.mul_(scale)
                    if coupling.weight_fb is not None:
                        coupling.weight_fb.mul_(scale)
        return folded.train(self.training)

    @torch.jit.export
    def coupling_blocks(self) -> Tensor:
        """A, the block matrix of the recurrences and couplings (B without the damping), (D, D)."""
        bounds = self.layer_bounds
        A = torch.zeros(self.state_size, self.state_size,
                        dtype=self.weight_in.dtype, device=self.weight_in.device)
        n = 0
        for layer in self.layers:
            A[bounds[n]:bounds[n + 1], bounds[n]:bounds[n + 1]] = layer.antisymmetric_block()
            n += 1
        for coupling in self.couplings:
            lo, up = coupling.lower, coupling.upper
            A[bounds[up]:bounds[up + 1], bounds[lo]:bounds[lo + 1]] = coupling.weight_ff
            fb = coupling.feedback_block()
            if fb is not None:
                A[bounds[lo]:bounds[lo + 1], bounds[up]:bounds[up + 1]] = fb
        return A

    @torch.jit.export
    def effective_gamma(self) -> float:
        """The γ of B = A − γI in force for the current weights (the configured γ unless
        ``damping="euler"``)."""
        if not self.euler_damped:
            return self.gamma
        A = self.coupling_blocks()
        return float(self.damping_coefficient(A * self.coupling_scale(A)).item())

    def damping_coefficient(self, A: Tensor) -> Tensor:
        """γ of B = A − γI: the configured γ, or with ``damping="euler"`` max(γ, ``euler_damping``)
        from the exact ‖A‖₂ of the current weights (not differentiated: a data-free constant per step)."""
        gamma = torch.tensor(self.gamma, dtype=A.dtype, device=A.device)
        if not self.euler_damped:
            return gamma
        sigma = torch.linalg.matrix_norm(A.detach(), ord=2)
        return torch.maximum(gamma, euler_damping(self.epsilon, sigma))

    @torch.jit.export
    def input_drive(self, x: Tensor) -> Tensor:
        """u_t = U x_t + b for every step: (N, T, input_size) → (N, T, D), one GEMM for all t."""
        n_batch, steps = x.shape[0], x.shape[1]
        biases = [layer.bias for layer in self.layers]
        first = torch.nn.functional.linear(x, self.weight_in, biases[0])
        if len(biases) == 1:
            return first
        rest = torch.cat(biases[1:]).expand(n_batch, steps, self.state_size - self.layer_sizes[0])
        return torch.cat([first, rest], dim=2)

    @torch.jit.export
    def initial_state(self, n_batch: int) -> Tensor:
        """The state the recurrence starts from, (N, D): z_0, every entry the configured initial value
        (0, or 1 for the pendulum); for ``discretisation="imex"`` its coordinates w_0 = (I − ε/2·B) z_0."""
        z0 = torch.full((n_batch, self.state_size), self.initial_value,
                        dtype=self.weight_in.dtype, device=self.weight_in.device)
        if not self.imex or self.initial_value == 0.0:
            return z0
        return z0 @ self._implicit_matrix(self.coupling_matrix()).t()

    @torch.jit.export
    def step(self, z: Tensor, drive_t: Tensor) -> Tensor:
        """One step z_t ↦ z_{t+1} (the model's own update scheme; w for ``imex``). z, drive_t: (N, D)."""
        return euler_step(z, drive_t, self.step_coupling().t(), self.epsilon,
                          self.layer_bounds, self.sequential)

    @torch.jit.export
    def advance(self, z: Tensor, x: Tensor) -> Tensor:
        """Streams: the state after a chunk of steps, z_t ↦ z_{t+T}, from x (N, T, input_size).

        It is ``forward``'s own recurrence (``_run``: ``input_drive`` then ``euler_recurrence``) started
        from z instead of z_0, so advancing chunk by chunk from ``initial_state`` and reading out with
        ``readout`` gives ``forward`` on the concatenated sequence. z: (N, D) → (N, D).
        """
        last, _ = self._run(x, z, False, self.step_coupling())
        return last

    @torch.jit.export
    def velocity(self, z: Tensor, drive_t: Tensor) -> Tensor:
        """tanh(B z + u), whose derivative gives D_t = diag(1 − velocity²), for the recurrence's own
        state (for ``imex``, B̃ w = B z: the same velocity). z, drive_t: (N, D)."""
        return euler_velocity(z, drive_t, self.step_coupling().t())

    @torch.jit.export
    def readout(self, states: Tensor) -> Tensor:
        """The linear head on the top layer of states (…, D) → (…, output_size); for ``imex`` on the
        top layer of z = w + ε/2·B̃ w."""
        return self._readout(states, None)

    def _readout(self, states: Tensor, stepped: Optional[Tensor]) -> Tensor:
        """``readout`` with B̃ = ``stepped`` when the caller already has it (None: computed here,
        for ``imex`` only)."""
        top = self.layer_bounds[-2]
        if not self.imex:
            return self.head(states[..., top:])
        if stepped is None:
            stepped = self.step_coupling()
        ode_top = states[..., top:] + (0.5 * self.epsilon) * torch.matmul(states, stepped[top:].t())
        return self.head(ode_top)

    # -- running sequences ------------------------------------------------------------------
    def _run(self, x: Tensor, h0: Optional[Tensor], keep_states: bool,
             stepped: Tensor) -> Tuple[Tensor, List[Tensor]]:
        """The recurrence over x from h0 (None: ``initial_state``), with B̃ = ``stepped`` (``step_coupling``,
        computed once by the caller, which may need it again for the readout)."""
        if x.dim() != 3 or x.shape[2] != self.weight_in.shape[1]:
            raise ValueError("expected x of shape (batch, steps, " + str(self.weight_in.shape[1])
                             + "), got " + str(list(x.shape)))
        z0 = self.initial_state(x.shape[0]) if h0 is None else h0
        drive = self.input_drive(x).transpose(0, 1)              # (T, N, D)
        if (not torch.jit.is_scripting() and not self.sequential and torch.is_grad_enabled()
                and self.training_path != "autograd"):
            return self._fused_recurrence(drive, z0, stepped.t(), keep_states)
        return euler_recurrence(drive, z0, stepped.t(), self.epsilon,
                                self.layer_bounds, self.sequential, keep_states)

    @torch.jit.unused
    def _fused_recurrence(self, drive: Tensor, z0: Tensor, coupling_t: Tensor,
                          keep_states: bool) -> Tuple[Tensor, List[Tensor]]:
        """Training: the same recurrence as one autograd node with a hand-written reverse sweep, one
        GEMM per step (``model.recurrence.FusedEulerRecurrence``); exported models never take it."""
        matmul_dtype = torch.bfloat16 if self.training_path == "fused-bf16" else None
        return fused_euler_recurrence(drive, z0, coupling_t, self.epsilon, keep_states, matmul_dtype)

    def trajectory(self, x: Tensor, h0: Optional[Tensor] = None) -> Tuple[Tensor, List[Tensor]]:
        """(z_T, [z_1, …, z_T]) as a list, not stacked: for training-time terms that read a few states
        (``training.step_penalty``), whose gradient then reaches only the states they read."""
        return self._run(x, h0, True, self.step_coupling())

    def forward(self, x: Tensor, h0: Optional[Tensor] = None, every_step: bool = False) -> Tensor:
        """Readout at the last step (N, C), or at every step (N, T, C) with ``every_step``."""
        stepped = self.step_coupling()
        last, states = self._run(x, h0, every_step, stepped)
        if every_step:
            return self._readout(torch.stack(states, dim=1), stepped)
        return self._readout(last, stepped)

    @torch.jit.export
    def forward_with_states(self, x: Tensor, h0: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """(readout at every step (N, T, C), states z_0 … z_T (N, T+1, D))."""
        z0 = self.initial_state(x.shape[0]) if h0 is None else h0
        stepped = self.step_coupling()
        _, states = self._run(x, z0, True, stepped)
        all_states = torch.stack([z0] + states, dim=1)
        return self._readout(all_states[:, 1:], stepped), all_states
