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

from typing import List, Optional, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


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


class FusedEulerRecurrence(torch.autograd.Function):
    """The simultaneous Euler loop as one autograd node, with a hand-written reverse sweep.

    Forward (no graph is recorded): v_t = tanh(p_t), p_t = z_t Bᵀ + u_t, and z_{t+1} = z_t + ε v_t,
    one GEMM per step. tanh is taken as 2σ(2p) − 1 (the same function; torch's sigmoid kernel is
    several times faster than its tanh on these CPUs), and s_t = σ(2 p_t) is kept in one (T, N, D)
    buffer, the states in another.

    Backward, with δ_t = ∂L/∂z_t (δ_T from z_T, plus the gradient of every kept state) and
    g_t = δ_{t+1} ⊙ (1 − v_t²) = 4 δ_{t+1} ⊙ s_t (1 − s_t), the gradient at the argument of tanh
    (divided by ε):

        δ_t = δ_{t+1} + ε · g_t B            one GEMM per step, (N, D) × (D, D)
        ∂L/∂u_t = ε · g_t                    no GEMM
        ∂L/∂Bᵀ = ε · Σ_t z_tᵀ g_t            one (D, T·N) × (T·N, D) GEMM after the sweep

    against autograd's two GEMMs per step (the state's and the coupling's, accumulated step by step)
    and about eight dispatched element-wise ops. The gradients of U and b follow from ∂L/∂u through
    ``AFRNN.input_drive`` (one large GEMM), those of A, γ and, for ``imex``, of B̃ = (I − ε/2·B)⁻¹B
    through ``step_coupling``. Memory: two (T, N, D) buffers, the states and s_t, which the
    reverse sweep overwrites with the gradients g_t (so one backward per forward, like autograd's
    default ``retain_graph=False``; the backward itself is not differentiable).

    ``matmul_dtype=torch.bfloat16`` runs the three GEMMs on bf16 copies of their operands (bf16
    products, fp32 accumulation inside the GEMM), like autocast; the state z, tanh and every sum stay
    in the input's dtype, so rounding does not compound over the T steps of the state.
    """

    @staticmethod
    def forward(ctx, drive: Tensor, z0: Tensor, coupling_t: Tensor, epsilon: float,
                matmul_dtype: Optional[torch.dtype], retain: bool) -> Tuple[Tensor, Tensor]:
        halves = torch.empty_like(drive)         # s_t = σ(2 p_t), v_t = tanh(p_t) = 2 s_t − 1
        states = torch.empty_like(drive)
        low = matmul_dtype is not None and matmul_dtype != drive.dtype
        weight = (2.0 * coupling_t).to(matmul_dtype) if low else coupling_t
        z_low = z0.to(matmul_dtype) if low else z0
        z = z0
        for drive_t, s_t, z_next in zip(drive.unbind(0), halves.unbind(0), states.unbind(0), strict=True):
            if low:
                torch.add(torch.mm(z_low, weight), drive_t, alpha=2.0, out=s_t)     # 2 p_t
            else:
                torch.addmm(drive_t, z, weight, beta=2.0, alpha=2.0, out=s_t)        # 2 p_t
            s_t.sigmoid_()
            torch.add(z, s_t, alpha=2.0 * epsilon, out=z_next)                       # z + ε (2 s − 1)
            z_next.sub_(epsilon)
            z = z_next
            if low:
                z_low.copy_(z)
        ctx.epsilon = epsilon
        ctx.swept = False
        ctx.retain = retain
        ctx.matmul_dtype = matmul_dtype if low else None
        ctx.set_materialize_grads(False)
        ctx.save_for_backward(z0, coupling_t, halves, states)
        return states[-1].clone(), states

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_last: Optional[Tensor], grad_states: Optional[Tensor]):
        if ctx.swept and not ctx.retain:
            raise RuntimeError("FusedEulerRecurrence: a second backward through the same forward; its "
                               "reverse sweep overwrote the saved activations with the gradients "
                               "(retain_graph is not supported: run the forward again)")
        ctx.swept = True
        z0, coupling_t, halves, states = ctx.saved_tensors
        epsilon = 4.0 * ctx.epsilon              # 1 − v² = 4 s (1 − s): the 4 rides with ε
        low = ctx.matmul_dtype
        steps, width = halves.shape[0], halves.shape[2]
        coupling = (coupling_t.to(low) if low is not None else coupling_t).t()
        delta = torch.zeros_like(z0) if grad_last is None else grad_last.clone()
        if grad_states is not None:
            delta.add_(grad_states[-1])
        spare = torch.empty_like(delta)
        g_low = torch.empty(delta.shape, dtype=low, device=delta.device) if low is not None else delta
        # g_t overwrites s_t, which step t no longer needs (unless the graph is to be kept: ``retain``)
        grad_drive = torch.empty_like(halves) if ctx.retain else halves
        for t in range(steps - 1, -1, -1):
            g_t = grad_drive[t]
            torch.addcmul(halves[t], halves[t], halves[t], value=-1.0, out=g_t)    # s (1 − s)
            g_t.mul_(delta)                                                        # (δ ⊙ (1 − v²)) / 4
            if low is not None:
                g_low.copy_(g_t)
                torch.add(delta, torch.mm(g_low, coupling), alpha=epsilon, out=spare)
            else:
                torch.addmm(delta, g_t, coupling, alpha=epsilon, out=spare)
            delta, spare = spare, delta
            if grad_states is not None and t > 0:
                delta.add_(grad_states[t - 1])
        grad_drive.mul_(epsilon)
        grad_coupling_t = None
        if ctx.needs_input_grad[2]:
            if low is None:
                grad_coupling_t = torch.mm(z0.t(), grad_drive[0])
                if steps > 1:
                    grad_coupling_t.addmm_(states[:-1].reshape(-1, width).t(),
                                           grad_drive[1:].reshape(-1, width))
            else:
                inputs = torch.empty(states.shape, dtype=low, device=states.device)
                inputs[0].copy_(z0)
                inputs[1:].copy_(states[:-1])
                grads = grad_drive.to(low)
                grad_coupling_t = torch.mm(inputs.reshape(-1, width).t(),
                                           grads.reshape(-1, width)).to(coupling_t.dtype)
        return grad_drive, delta, grad_coupling_t, None, None, None


def fused_euler_recurrence(
    drive: Tensor,
    z0: Tensor,
    coupling_t: Tensor,
    epsilon: float,
    keep_states: bool,
    matmul_dtype: Optional[torch.dtype] = None,
    retain: bool = False,
) -> Tuple[Tensor, List[Tensor]]:
    """``euler_recurrence`` for the simultaneous update, as one autograd node (``FusedEulerRecurrence``):
    the same arithmetic, for training. Not TorchScript-compatible; exported models run
    ``euler_recurrence``. ``matmul_dtype``: see ``FusedEulerRecurrence`` (None: the input's dtype).
    ``retain``: keep the saved buffers intact, so that the graph may be backpropagated more than once
    (``retain_graph``, ``gradcheck``), at the cost of one more (T, N, D) buffer."""
    last, states = FusedEulerRecurrence.apply(drive, z0, coupling_t, epsilon, matmul_dtype, retain)
    return last, (list(states.unbind(0)) if keep_states else [])
