"""A loaded model's stream interface: ``initial_state(n)``, ``advance(z, x_chunk)``, ``readout(z)``.

Models exported with ``advance`` (``model.afrnn.AFRNN.advance``, ``model.lstm.LSTMBaseline.advance``)
run a chunk through ``forward``'s own recurrence in one TorchScript call. Artifacts exported before
``advance`` existed still export ``input_drive`` and ``step`` (the one Euler step of
``model.recurrence``): for them a chunk is ``step`` applied to each step's drive in turn, the same
maths one call per step. An artifact with neither is refused with the reason ``unsupported_model``.
"""

import torch
from torch import Tensor

from service.streaming.errors import StreamRuleError


class StreamStepper:
    """``module``'s stream methods on ``device``; ``probabilities`` turns readouts into softmaxes."""

    def __init__(self, name: str, module: torch.jit.ScriptModule, device: torch.device,
                 probabilities: bool = True):
        self.module = module
        self.device = device
        self.probabilities = probabilities
        self.native = hasattr(module, "advance")
        need = ["initial_state", "readout"] + ([] if self.native else ["input_drive", "step"])
        missing = [m for m in need if not hasattr(module, m)]
        if missing:
            raise StreamRuleError("unsupported_model", f"model {name!r}: its artifact exports no "
                                  f"{', '.join(missing)} (streams need initial_state, readout and advance, "
                                  f"or input_drive + step); re-export it with the current model code")
        with torch.inference_mode():
            self.initial_row = module.initial_state(1)[0].clone()
        self.state_size = int(self.initial_row.shape[0])

    def advance(self, z: Tensor, x: Tensor) -> Tensor:
        """z (N, D) after the chunk x (N, T, C)."""
        if self.native:
            return self.module.advance(z, x)
        for drive_t in self.module.input_drive(x).unbind(1):
            z = self.module.step(z, drive_t)
        return z

    def output(self, z: Tensor) -> Tensor:
        """The readout of states z (N, D): softmax probabilities (N, classes) for a classifier."""
        out = self.module.readout(z).float()
        return torch.softmax(out, dim=-1) if self.probabilities else out
