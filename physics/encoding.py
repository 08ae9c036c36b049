"""How the network sees the double pendulum (paper §5.3 and the reference code).

Network view: the input has 29 steps, the initial state at step 0 and the constant 1.0 (all four
inputs) at steps 1 … 28; the targets are the states 1 … 29, one per input step (not autoregressive).
That is the paper's encoding, ``"initial-then-placeholder"``. The other, ``"initial-every-step"``,
gives the initial state at every step (x_t = s₀ for all t), so the network need not carry s₀ in its
state to use it late in the rollout. A model's manifest records which one it was trained with
(``Manifest.input.encoding``; absent means the paper's).

The same encoding serves training (``training.data.pendulum``) and the service (the rollout input
and stability samples), so the two cannot drift.
"""

import torch
from torch import Tensor

PLACEHOLDER = 1.0                      # the network input at every step after the first
PAPER_ENCODING = "initial-then-placeholder"
ENCODINGS = (PAPER_ENCODING, "initial-every-step")


def network_inputs(initial_states: Tensor, steps: int = 29, encoding: str | None = None) -> Tensor:
    """The network's input sequence (N, steps, 4): the initial state, then the placeholder 1.0
    (``encoding`` None or ``"initial-then-placeholder"``), or the initial state at every step
    (``"initial-every-step"``)."""
    if initial_states.dim() != 2 or initial_states.shape[1] != 4:
        raise ValueError(f"initial_states must have shape (N, 4), got {tuple(initial_states.shape)}")
    encoding = encoding or PAPER_ENCODING
    if encoding not in ENCODINGS:
        raise ValueError(f"encoding must be one of {ENCODINGS}, got {encoding!r}")
    if encoding == "initial-every-step":
        return initial_states[:, None, :].expand(-1, steps, -1).contiguous()
    inputs = torch.full((initial_states.shape[0], steps, 4), PLACEHOLDER,
                        dtype=initial_states.dtype, device=initial_states.device)
    inputs[:, 0] = initial_states
    return inputs
