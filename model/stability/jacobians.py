"""Step Jacobians J_t = ∂z_{t+1}/∂z_t along one trajectory, and their backward products ∂z_T/∂z_t.

Everything here is taken from the model's exported interface; the step is never re-implemented.

*Simultaneous AFRNN update* (paper eqs. 6–7, ``model.recurrence.euler_step``)::

    z_{t+1} = z_t + ε · tanh(B z_t + u_t)   ⇒   J_t = I + ε D_t B,
    D_t = diag(tanh'(B z_t + u_t)) = diag(1 − v_t²),   v_t = module.velocity(z_t, u_t)      (eqs. 13–14)

``EulerJacobians`` keeps J_t implicit as (B, d_t): applying it to a D × k block costs one D × D × k
product, and no (T, D, D) stack is ever built. The velocities for all t come from ONE batched call
of ``module.velocity`` on the states of the single forward pass.

*IMEX form* (``AFRNN`` with ``discretisation="imex"``): the same in the coordinates the model
carries, w = (I − ε/2·B) z, with B̃ = ``step_coupling`` in place of B: J_t = I + ε D_t B̃.

*Sequential update and LSTM*: J_t is the autograd Jacobian of the exported ``module.step`` (the
sequential sweep's Jacobian is a product of per-layer factors and an LSTM step is ``nn.LSTM``'s own;
neither is written out here). ``autograd_step_jacobians`` runs ``step`` once on the batch of all
states z_0 … z_{T−1} and pulls back one output coordinate per backward pass: D backward passes of a
batch of T rows give every J_t exactly (rows of a batch do not interact).

*Gradient propagation* (paper Fig. 4): ∂z_T/∂z_t = J_{T−1} J_{T−2} ⋯ J_t, accumulated from the end,
P_T = I, P_t = P_{t+1} J_t. ``backward_products`` keeps P_t = exp(s_t) · P̂_t with P̂_t rescaled
whenever its entries leave [1e-100, 1e100] (checked every 8 steps), so vanishing (LSTM) and
exploding (FRNN) products are followed without under- or overflow.
"""

import math
from collections.abc import Callable, Iterator, Sequence

import torch
from torch import Tensor

from model.afrnn import step_coupling


class StepJacobians:
    """The step Jacobians J_0 … J_{T−1} (each D × D) of one trajectory, in float64."""

    steps: int
    size: int

    def apply(self, t: int, block: Tensor) -> Tensor:
        """J_t @ block, block (D, k)."""
        raise NotImplementedError

    def apply_left(self, block: Tensor, t: int) -> Tensor:
        """block @ J_t, block (k, D)."""
        raise NotImplementedError

    def matrix(self, t: int) -> Tensor:
        """J_t as a dense (D, D) matrix."""
        raise NotImplementedError

    def stack(self, steps: Sequence[int]) -> Tensor:
        """J_t for the given steps, (len(steps), D, D)."""
        return torch.stack([self.matrix(t) for t in steps])


class EulerJacobians(StepJacobians):
    """J_t = I + ε D_t B of the simultaneous explicit-Euler step, held as (B, d_t).

    Args:
        coupling: B = A − γI, (D, D).
        derivatives: d_t = diag(D_t) = 1 − v_t² for t = 0 … T−1, (T, D).
        epsilon: the Euler step ε.
    """

    def __init__(self, coupling: Tensor, derivatives: Tensor, epsilon: float):
        self.coupling = coupling.to(torch.float64)
        self.derivatives = derivatives.to(torch.float64)
        self.epsilon = float(epsilon)
        self.steps, self.size = self.derivatives.shape

    def apply(self, t: int, block: Tensor) -> Tensor:
        # (I + ε D B) Q = Q + ε d ⊙ (B Q)
        return block + self.epsilon * self.derivatives[t].unsqueeze(1) * (self.coupling @ block)

    def apply_left(self, block: Tensor, t: int) -> Tensor:
        # P (I + ε D B) = P + ε (P D) B: one addmm
        return torch.addmm(block, block * self.derivatives[t], self.coupling, alpha=self.epsilon)

    def matrix(self, t: int) -> Tensor:
        eye = torch.eye(self.size, dtype=torch.float64)
        return eye + self.epsilon * self.derivatives[t].unsqueeze(1) * self.coupling


class DenseJacobians(StepJacobians):
    """Explicit Jacobians from a (T, D, D) stack (autograd, or a known system in tests).

    The stack is kept in its own dtype (float32 for a served model: 784 × 256² entries are 205 MB)
    and each J_t is promoted to float64 when it is used.
    """

    def __init__(self, jacobians: Tensor):
        if jacobians.dim() != 3 or jacobians.shape[1] != jacobians.shape[2]:
            raise ValueError(f"jacobians must have shape (T, D, D), got {list(jacobians.shape)}")
        self.jacobians = jacobians
        self.steps, self.size = jacobians.shape[0], jacobians.shape[1]

    def apply(self, t: int, block: Tensor) -> Tensor:
        return self.matrix(t) @ block

    def apply_left(self, block: Tensor, t: int) -> Tensor:
        return block @ self.matrix(t)

    def matrix(self, t: int) -> Tensor:
        return self.jacobians[t].to(torch.float64)


def tanh_derivatives(module, states: Tensor, drive: Tensor) -> Tensor:
    """d_t = 1 − velocity(z_t, u_t)² for t = 0 … T−1 in one batched call, (T, D) float64.

    Args:
        states: z_0 … z_T of one sequence, (T+1, D).
        drive: u_0 … u_{T−1}, (T, D).
    """
    with torch.no_grad():
        velocity = module.velocity(states[:-1], drive)
    velocity = velocity.detach().cpu().to(torch.float64)
    return 1.0 - velocity * velocity


def autograd_step_jacobians(module, states: Tensor, drive: Tensor,
                            steps: Sequence[int] | None = None,
                            interrupt: Callable[[], None] | None = None) -> Tensor:
    """J_t = ∂ step(z_t, u_t)/∂z_t by autograd through the exported ``module.step``.

    One call of ``step`` on the batch of the selected states, then one backward pass per output
    coordinate i, which yields row i of every J_t at once.

    Args:
        states: z_0 … z_T, (T+1, D).
        drive: the step inputs u_0 … u_{T−1} (AFRNN: the drive; LSTM: x itself), (T, C).
        steps: the steps t to differentiate at (default: all).
        interrupt: when given, called before every backward pass; it stops the work by raising.

    Returns:
        (len(steps), D, D) in the model's dtype, on the CPU.
    """
    if steps is None:
        points, inputs = states[:-1], drive
    else:
        index = torch.as_tensor(list(steps), dtype=torch.long, device=states.device)
        points, inputs = states.index_select(0, index), drive.index_select(0, index)
    size = points.shape[1]
    with torch.enable_grad():
        z = points.detach().clone().requires_grad_(True)
        out = module.step(z, inputs.detach())
        ones = torch.ones(out.shape[0], dtype=out.dtype, device=out.device)
        rows = []
        for i in range(size):
            if interrupt is not None:
                interrupt()
            (row,) = torch.autograd.grad(out[:, i], z, ones, retain_graph=i < size - 1)
            rows.append(row)
    return torch.stack(rows, dim=1).detach().cpu()


def step_jacobians(module, states: Tensor, drive: Tensor, coupling: Tensor | None = None,
                   derivatives: Tensor | None = None,
                   interrupt: Callable[[], None] | None = None) -> StepJacobians:
    """The step Jacobians of the trajectory z_0 … z_T (states (T+1, D), drive (T, ·)).

    Simultaneous AFRNN step: ``EulerJacobians`` from B and one batched ``velocity`` call (pass
    ``coupling`` = B and ``derivatives`` = D_t when already computed). Sequential AFRNN step and LSTM:
    ``DenseJacobians`` from ``autograd_step_jacobians`` (``interrupt`` is passed on to it).
    """
    if str(module.variant) != "lstm" and not bool(module.sequential):
        if coupling is None:
            with torch.no_grad():
                coupling = step_coupling(module).detach().cpu()
        if derivatives is None:
            derivatives = tanh_derivatives(module, states, drive)
        return EulerJacobians(coupling, derivatives, float(module.epsilon))
    return DenseJacobians(autograd_step_jacobians(module, states, drive, interrupt=interrupt))


_RESCALE_ABOVE = 1e100
_RESCALE_BELOW = 1e-100
_RESCALE_EVERY = 8        # steps between checks: 8 steps cannot move 1e±100 out of float64's 1e±308


def backward_products(jacobians: StepJacobians) -> Iterator[tuple[int, Tensor, float]]:
    """Yield (t, P̂_t, s_t) for t = T−1, …, 0, where ∂z_T/∂z_t = P_t = exp(s_t) · P̂_t.

    P_t = P_{t+1} J_t with P_T = I (one D × D × D product per step). P̂_t is yielded by reference
    and replaced, not modified, at the next step, so a caller may keep it.
    """
    product = torch.eye(jacobians.size, dtype=torch.float64)
    log_scale = 0.0
    for t in range(jacobians.steps - 1, -1, -1):
        product = jacobians.apply_left(product, t)
        if t % _RESCALE_EVERY == 0:
            peak = float(product.abs().max())
            if peak > _RESCALE_ABOVE or 0.0 < peak < _RESCALE_BELOW:
                product = product / peak
                log_scale += math.log(peak)
        yield t, product, log_scale
