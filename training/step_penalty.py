"""A training penalty on the growth of the discrete step, at steps sampled from the batch's own run.

The explicit-Euler step z_{t+1} = z_t + ε tanh(B z_t + u_t) (``model.recurrence``) has the Jacobian

    J_t = ∂z_{t+1}/∂z_t = I + ε D_t B,        D_t = diag(1 − tanh²(B z_t + u_t)),

and a perturbation of z_0 reaches step T multiplied by J_{T−1} ⋯ J_0, so ‖∂z_T/∂z_0‖₂ ≤ Π_t ‖J_t‖₂.
Theorem 3 makes every eigenvalue of D_t B have a real part ≤ 0, which bounds nothing here: for
imaginary λ, |1 + ελ| > 1 (see ``model.afrnn.euler_damping``). This module adds

    λ_pen · mean_k max(0, ‖J_{t_k}‖₂ − 1)²

over K pairs (row n_k, step t_k) drawn uniformly from the batch and the sequence, with the exact
spectral norm (√ of the top eigenvalue of JᵀJ, one D × D matrix per pair). It is differentiated
through B and the input drive u_t, with the visited state z_t held fixed: the penalty shapes the step
map at the states the batch reaches, not the trajectory that led there, whose derivative through an
expansive recurrence is what explodes. The spectral norm is used rather than the spectral radius:
it is never smaller (‖J‖₂ ≥ ρ(J)), it equals the radius for the linear part of an antisymmetric A
(D_t = I, J normal), and unlike the radius it bounds the product over steps — a per-step radius
≤ 1 + δ per step still compounds to a growth of (1 + δ)^T over T steps (784 on MNIST).

The penalty only changes the training loss; exports and the served model are the plain AFRNN.
"""

import torch
from torch import Tensor, nn


def step_jacobians(model: nn.Module, states: list[Tensor], drive: Tensor, rows: Tensor,
                   steps: Tensor) -> Tensor:
    """J_t = I + ε D_t B̃ for the pairs (rows[k], steps[k]): (K, D, D) (B̃ = B for the explicit-Euler
    step; the IMEX form's coupling in its own coordinates, ``AFRNN.step_coupling``).

    Args:
        model: an AFRNN-family model with the simultaneous update.
        states: [z_0, z_1, …, z_T], each (N, D) (z_0 first, then ``AFRNN.trajectory``'s list).
        drive: u_t = U x_t + b, (N, T, D) (``input_drive``).
        rows, steps: (K,) indices; ``steps`` in [0, T).
    """
    coupling = model.step_coupling()                                     # B̃, (D, D)
    # the states are data here: differentiating them would backpropagate through every earlier step
    # of a recurrence that the penalty exists because it may be expansive (a first version did, and its
    # gradients exploded)
    z = torch.stack([states[int(t)][int(n)] for n, t in zip(rows, steps, strict=True)]).detach()  # (K, D)
    u = drive[rows, steps]
    slope = 1.0 - torch.tanh(z @ coupling.t() + u).pow(2)               # diag of D_t, (K, D)
    eye = torch.eye(coupling.shape[0], dtype=coupling.dtype, device=coupling.device)
    return eye + model.epsilon * slope.unsqueeze(2) * coupling.unsqueeze(0)


def step_norm_penalty(model: nn.Module, x: Tensor, samples: int,
                      generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """Run ``model`` on x (N, T, input) and return (the readout at the last step (N, C), the penalty's
    mean hinge term mean_k max(0, ‖J_{t_k}‖₂ − 1)² (unweighted), the K norms (detached))."""
    last, states = model.trajectory(x)
    drive = model.input_drive(x)
    n_batch, steps = x.shape[0], x.shape[1]
    rows = torch.randint(n_batch, (samples,), generator=generator)
    times = torch.randint(steps, (samples,), generator=generator)
    jacobians = step_jacobians(model, [model.initial_state(n_batch)] + states, drive, rows, times)
    # ‖J‖₂² is the largest eigenvalue of the symmetric JᵀJ: LAPACK's SVD fails to converge when the
    # singular values crowd together near 1, the very regime the penalty drives towards
    gram = jacobians.transpose(1, 2) @ jacobians
    norms = torch.linalg.eigvalsh(gram)[:, -1].clamp(min=0.0).sqrt()
    hinge = torch.clamp(norms - 1.0, min=0.0).pow(2).mean()
    return model.readout(last), hinge, norms.detach()
