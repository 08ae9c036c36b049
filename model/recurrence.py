"""The AFRNN step and its fused recurrence: the one definition of the step in the codebase.

With all layer states stacked into z = [g¹; g²; …; gᴺ] (size Σ D(n)), paper eqs. 6–7 (and their
N-layer form, eqs. 11 and 17–18) are one explicit-Euler step of the ODE dz/dt = tanh(B z + U x + b):

    z_{t+1} = z_t + ε · tanh(B z_t + u_t),      u_t = U x_t + b,      B = A − γ I

where A holds the coupling blocks (block (n, m) maps layer m into layer n). In row-major batch form
(z has shape (batch, D)) the argument of tanh is ``addmm(u_t, z, Bᵀ)``: ONE matmul per step for any
depth. The functions here are TorchScript-compatible so that the scripted model inlines them.

The reference code's *sequential* scheme updates layer n from the already-updated layers below it
(a Gauss–Seidel sweep) and from the old states of the layers above::

    g¹_{t+1} = g¹_t + ε · tanh(B¹· [g¹_t; g²_t; …] + u¹_t)
    g²_{t+1} = g²_t + ε · tanh(B²· [g¹_{t+1}; g²_t; …] + u²_t)      …

which needs one matmul per layer.
"""

from typing import List, Tuple

import torch
from torch import Tensor


def euler_velocity(z: Tensor, drive_t: Tensor, coupling_t: Tensor) -> Tensor:
    """The vector field of the ODE, f(z, u) = tanh(B z + u), for a batch of states.

    Args:
        z: states, shape (N, D).
        drive_t: the input drive u = U x + b, shape (N, D).
        coupling_t: Bᵀ, shape (D, D).
    """
    return torch.tanh(torch.addmm(drive_t, z, coupling_t))


def euler_step(
    z: Tensor,
    drive_t: Tensor,
    coupling_t: Tensor,
    epsilon: float,
    layer_bounds: List[int],
    sequential: bool,
) -> Tensor:
    """One explicit-Euler step z ↦ z + ε f(z, u) (eqs. 6–7), simultaneous or sequential.

    Args:
        z: states, shape (N, D).
        drive_t: input drive u_t = U x_t + b, shape (N, D).
        coupling_t: Bᵀ, shape (D, D).
        epsilon: the Euler step size ε.
        layer_bounds: offsets [0, D(1), D(1)+D(2), …, D] of the layers inside z.
        sequential: False for the paper's simultaneous update (one matmul), True for the reference
            code's layer-by-layer (Gauss–Seidel) update.
    """
    if not sequential:
        return torch.add(z, euler_velocity(z, drive_t, coupling_t), alpha=epsilon)
    current = z
    for n in range(len(layer_bounds) - 1):
        lo = layer_bounds[n]
        hi = layer_bounds[n + 1]
        layer_velocity = torch.tanh(
            torch.addmm(drive_t[:, lo:hi], current, coupling_t[:, lo:hi])
        )
        updated = torch.add(current[:, lo:hi], layer_velocity, alpha=epsilon)
        current = torch.cat([current[:, :lo], updated, current[:, hi:]], dim=1)
    return current


def euler_recurrence(
    drive: Tensor,
    z0: Tensor,
    coupling_t: Tensor,
    epsilon: float,
    layer_bounds: List[int],
    sequential: bool,
    keep_states: bool,
) -> Tuple[Tensor, List[Tensor]]:
    """Run ``euler_step`` over a whole sequence.

    The input drive is precomputed for every step (one GEMM outside the loop) and the loop
    iterates with ``unbind``: indexing ``drive[t]`` inside the loop would make autograd allocate a
    full-size zero gradient per step (O(T²) memory traffic).

    Args:
        drive: u_t = U x_t + b for all steps, time-major, shape (T, N, D).
        z0: initial state, shape (N, D).
        keep_states: also return the list [z_1, …, z_T].

    Returns:
        (z_T, states) where states is empty unless ``keep_states``.
    """
    z = z0
    states: List[Tensor] = []
    for drive_t in drive.unbind(0):
        z = euler_step(z, drive_t, coupling_t, epsilon, layer_bounds, sequential)
        if keep_states:
            states.append(z)
    return z, states
