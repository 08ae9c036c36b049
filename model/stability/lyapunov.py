"""Lyapunov exponents of a trajectory by QR re-orthonormalisation of its step Jacobians.

Benettin's method: start from an orthonormal Q_0 (D × k, seeded), and for t = 0 … T−1

    J_t Q_t = Q_{t+1} R_t   (thin QR),      λ_i = (1/T) Σ_t log |(R_t)_ii|,   i = 1 … k.

λ_1 ≥ … ≥ λ_k are the k largest finite-time exponents in natural log per step: a perturbation grows
like exp(λ_1 · t). For the linear system z_{t+1} = diag(a) z_t they are the k largest log|a_i|
(up to an O(1/T) transient from Q_0). An AFRNN with γ ≥ 0 should have λ_1 ≈ 0, not ≫ 0; an LSTM has
λ_1 < 0 (contracting), an unconstrained FRNN λ_1 > 0.

Cost: T thin QRs of D × k plus T products J_t Q (D × D × k), e.g. 784 × (256 × 256 × 16).
"""

from collections.abc import Callable

import torch
from torch import Tensor

from model.stability.jacobians import StepJacobians


def lyapunov_exponents(jacobians: StepJacobians, k: int, seed: int = 0,
                       interrupt: Callable[[], None] | None = None) -> Tensor:
    """The top ``k`` Lyapunov exponents (natural log per step), descending, float64 (k,).
    ``interrupt``, when given, is called before every step and stops the sweep by raising."""
    if not 1 <= k <= jacobians.size:
        raise ValueError(f"lyapunov_k must be between 1 and the state size {jacobians.size}, got {k}")
    if jacobians.steps < 1:
        raise ValueError("the trajectory must have at least one step")
    generator = torch.Generator().manual_seed(seed)
    start = torch.randn(jacobians.size, k, generator=generator, dtype=torch.float64)
    basis, _ = torch.linalg.qr(start)
    log_growth = torch.zeros(k, dtype=torch.float64)
    tiny = torch.finfo(torch.float64).tiny
    for t in range(jacobians.steps):
        if interrupt is not None:
            interrupt()
        basis, triangular = torch.linalg.qr(jacobians.apply(t, basis))
        log_growth += triangular.diagonal().abs().clamp_min(tiny).log()
    return torch.sort(log_growth / jacobians.steps, descending=True).values
