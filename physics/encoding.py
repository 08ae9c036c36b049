"""How the network sees the double pendulum (paper §5.3 and the reference code).

Network view: the input has 29 steps, the initial state at step 0 and the constant 1.0 (all four
inputs) at steps 1 … 28; the targets are the states 1 … 29, one per input step (not autoregressive).

The same encoding serves training (``training.data.pendulum``) and the service (the rollout input
and stability samples), so the two cannot drift.
"""

import torch
from torch import Tensor

PLACEHOLDER = 1.0                      # the network input at every step after the first


def network_inputs(initial_states: Tensor, steps: int = 29) -> Tensor:
    """The network's input sequence (N, steps, 4): the initial state, then the placeholder 1.0."""
    if initial_states.dim() != 2 or initial_states.shape[1] != 4:
        raise ValueError(f"initial_states must have shape (N, 4), got {tuple(initial_states.shape)}")
    inputs = torch.full((initial_states.shape[0], steps, 4), PLACEHOLDER,
                        dtype=initial_states.dtype, device=initial_states.device)
    inputs[:, 0] = initial_states
    return inputs
