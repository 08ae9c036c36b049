"""``nn.LSTM`` baseline with the same head and the same exported interface as ``model.afrnn.AFRNN``.

The state z of the interface is [h¹; …; hᴸ; c¹; …; cᴸ] (size 2·L·H), so that the stability analysis
can treat both families alike: ``input_drive(x)`` is x itself and ``step(z, x_t)`` runs ``nn.LSTM``
over one time step (the LSTM equations are ``torch.nn.LSTM``'s own; nothing is re-implemented).
"""

from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
from torch import Tensor, nn


@dataclass
class LSTMConfig:
    input_size: int = 1
    hidden_size: int = 128
    num_layers: int = 1
    output_size: int = 10
    initial_state: float = 0.0        # value of every entry of h_0 and c_0

    def __post_init__(self):
        if min(self.input_size, self.hidden_size, self.num_layers, self.output_size) < 1:
            raise ValueError(f"LSTMConfig sizes must all be ≥ 1, got {self}")

    @property
    def variant(self) -> str:
        return "lstm"


class LSTMBaseline(nn.Module):
    """``nn.LSTM`` (batch first) followed by a linear readout of the top layer's h."""

    def __init__(self, config: LSTMConfig):
        super().__init__()
        self.config = config
        self.lstm = nn.LSTM(config.input_size, config.hidden_size, config.num_layers, batch_first=True)
        self.head = nn.Linear(config.hidden_size, config.output_size)
        self.hidden_size: int = config.hidden_size
        self.num_layers: int = config.num_layers
        self.state_size: int = 2 * config.num_layers * config.hidden_size
        self.initial_value: float = float(config.initial_state)
        self.variant: str = "lstm"
        self.theorem_applies: bool = False
        self.layer_sizes: List[int] = [config.hidden_size] * config.num_layers

    def _split(self, z: Tensor) -> Tuple[Tensor, Tensor]:
        """z (N, 2·L·H) → (h, c), each (L, N, H) as ``nn.LSTM`` wants them."""
        n = z.shape[0]
        hc = z.reshape(n, 2, self.num_layers, self.hidden_size).permute(1, 2, 0, 3)
        return hc[0].contiguous(), hc[1].contiguous()

    def _join(self, h: Tensor, c: Tensor) -> Tensor:
        """(h, c), each (L, N, H) → z (N, 2·L·H)."""
        return torch.stack([h, c], dim=0).permute(2, 0, 1, 3).reshape(h.shape[1], self.state_size)

    @torch.jit.export
    def initial_state(self, n_batch: int) -> Tensor:
        w = self.head.weight
        return torch.full((n_batch, self.state_size), self.initial_value, dtype=w.dtype, device=w.device)

    @torch.jit.export
    def input_drive(self, x: Tensor) -> Tensor:
        """The LSTM's input gates do their own projection: the drive is x itself."""
        return x

    @torch.jit.export
    def step(self, z: Tensor, drive_t: Tensor) -> Tensor:
        """One ``nn.LSTM`` step on the stacked state z = [h; c]. z: (N, 2·L·H), drive_t: (N, in)."""
        h, c = self._split(z)
        _, (h1, c1) = self.lstm(drive_t.unsqueeze(1), (h, c))
        return self._join(h1, c1)

    @torch.jit.export
    def advance(self, z: Tensor, x: Tensor) -> Tensor:
        """Streams: the state after a chunk x (N, T, in) from z (N, 2·L·H), with ``forward``'s own call
        of ``nn.LSTM`` (started from z instead of z_0); read it out with ``readout``."""
        _, (h, c) = self.lstm(x, self._split(z))
        return self._join(h, c)

    @torch.jit.export
    def readout(self, states: Tensor) -> Tensor:
        """Head on the top layer's h, read from stacked states (…, 2·L·H)."""
        lo = (self.num_layers - 1) * self.hidden_size
        return self.head(states[..., lo:lo + self.hidden_size])

    def forward(self, x: Tensor, h0: Optional[Tensor] = None, every_step: bool = False) -> Tensor:
        """Readout at the last step (N, C), or at every step (N, T, C) with ``every_step``."""
        z0 = self.initial_state(x.shape[0]) if h0 is None else h0
        out, _ = self.lstm(x, self._split(z0))
        if every_step:
            return self.head(out)
        return self.head(out[:, -1])

    @torch.jit.export
    def forward_with_states(self, x: Tensor, h0: Optional[Tensor] = None) -> Tuple[Tensor, Tensor]:
        """(readout at every step (N, T, C), states z_0 … z_T (N, T+1, 2·L·H)), one step at a time."""
        z = self.initial_state(x.shape[0]) if h0 is None else h0
        states = [z]
        for x_t in x.unbind(1):
            z = self.step(z, x_t)
            states.append(z)
        all_states = torch.stack(states, dim=1)
        return self.readout(all_states[:, 1:]), all_states
