"""The double-pendulum predictor (manifests whose output kind is ``states``).

The network is not autoregressive: for a rollout of S steps its input is (``physics.encoding.
network_inputs``) the initial state s₀ (radians, rad/s) at step 0 and the constant 1.0 on all four
channels at steps 1 … S−1, its hidden state starts at the model's own ``initial_state`` (all ones),
and its readout at step t is the predicted state at time (t+1)·dt:

    input  x = [s₀, 1, 1, …, 1]                (S, 4)
    output ŷ = [ŝ(dt), ŝ(2 dt), …, ŝ(S dt)]     (S, 4)

The recurrence is causal (ŷ_t depends on x_0 … x_t only) and the inputs after step 0 are the same for
every request, so requests with different ``steps`` share one batch: the batch runs for the longest
S and each request keeps its first S_i rows — exactly the rows it would get alone.

The manifest's ``input.normalization_mean/std`` are applied to s₀ (identity for the shipped
checkpoints) and its optional ``output.scale/offset`` undo a standardised output (ŝ = ŷ · scale +
offset, per variable in the model's output order); ``output.state_names`` orders the outputs,
``output.dt`` is the time step.

Over the Open Inference Protocol (``v2_*``): input ``initial_state``, FP32 [n, 4] in radians (wire
order θ₁, θ₂, ω₁, ω₂), request parameter ``steps`` (default: the trained horizon); outputs ``trajectory``
(FP32 [n, steps, 4], radians) and ``times`` (FP64 [steps], seconds).
"""

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from artifact.manifest import Manifest
from physics.encoding import network_inputs
from physics.pendulum import STATE_NAMES, simulate, total_energy
from service.errors import InputError

# The wire order of the state variables (the request's and response's field names).
WIRE_STATE_NAMES = STATE_NAMES
DEGREES_PER_RADIAN = 180.0 / math.pi


@dataclass
class PendulumJob:
    """One request's initial states ``x0`` (n, 4) in radians (wire order) and rollout length."""

    x0: np.ndarray
    steps: int

    @property
    def rows(self) -> int:
        return self.x0.shape[0]


class PendulumAPI:
    """Decode, batch, predict, unbatch and encode for one loaded pendulum model."""

    KIND = "states"                 # the manifests' ``output.kind`` this API serves
    STREAMS = False                 # a rollout is one request: no streams, no V2 sequences
    V2_INPUT = "initial_state"
    V2_SEQUENCE_OUTPUTS = ()
    V2_OUTPUTS = frozenset({"trajectory", "times"})
    SAMPLE_FIELD = "initial_state"   # a stability report's sample of this kind, and its options
    SAMPLE_OPTIONS = frozenset({"units", "steps"})


    def __init__(self, manifest: Manifest, module: torch.jit.ScriptModule, device: torch.device):
        if manifest.output.kind != self.KIND:
            raise ValueError(f"{manifest.name}: output kind {manifest.output.kind!r} is not {self.KIND!r}")
        spec, out = manifest.input, manifest.output
        if spec.channels != 4:
            raise ValueError(f"{manifest.name}: a pendulum model takes 4 input channels, manifest says "
                             f"{spec.channels}")
        in_names = list(spec.initial_state_names or WIRE_STATE_NAMES)
        out_names = list(out.state_names or WIRE_STATE_NAMES)
        for where, names in (("input.initial_state_names", in_names), ("output.state_names", out_names)):
            if sorted(names) != sorted(WIRE_STATE_NAMES):
                raise ValueError(f"{manifest.name}: manifest {where} {names} must be a permutation of "
                                 f"{list(WIRE_STATE_NAMES)}")
        if not out.dt or out.dt <= 0:
            raise ValueError(f"{manifest.name}: manifest output.dt must be a positive time step, "
                             f"got {out.dt}")
        self.manifest = manifest
        self.module = module
        self.device = device
        self.dt = float(out.dt)
        # the horizon the model was trained on: the manifest's, else its input length
        self.trained_steps = (round(out.trained_horizon_s / self.dt) if out.trained_horizon_s
                              else spec.sequence_length)
        self.value_range = spec.value_range             # radians (and rad/s)
        # wire order → the model's input channel order, and the model's output order → wire order
        self._input_order = [WIRE_STATE_NAMES.index(n) for n in in_names]
        self._output_order = [out_names.index(n) for n in WIRE_STATE_NAMES]
        units = list(out.units or ("rad", "rad", "rad/s", "rad/s"))
        self._angular = np.array([units[i].startswith("rad") for i in self._output_order])
        self.mean = np.asarray(spec.normalization_mean or [0.0] * 4, dtype=np.float32)
        self.std = np.asarray(spec.normalization_std or [1.0] * 4, dtype=np.float32)
        # output de-normalisation (model output order): state = output · scale + offset
        for where, values in (("output.scale", out.scale), ("output.offset", out.offset)):
            if values is not None and len(values) != 4:
                raise ValueError(f"{manifest.name}: manifest {where} must have 4 values, got {len(values)}")
        if (out.scale is None) != (out.offset is None):
            raise ValueError(f"{manifest.name}: manifest output.scale and output.offset come together")
        self.out_scale = torch.tensor(out.scale, dtype=torch.float32) if out.scale is not None else None
        self.out_offset = torch.tensor(out.offset, dtype=torch.float32) if out.offset is not None else None

    # -- decode -----------------------------------------------------------------------------------
    def decode(self, states: Sequence[dict[str, float]], units: str,
               locs: Sequence[Sequence[str | int]]) -> np.ndarray:
        """Initial states (wire names, ``units``) → (n, 4) radians in wire order, range-checked."""
        x0 = np.array([[s[name] for name in WIRE_STATE_NAMES] for s in states], dtype=np.float64)
        return self.check_range(x0, units, locs, x0)

    def check_range(self, x0: np.ndarray, units: str, locs: Sequence[Sequence[str | int]],
                    sent: Sequence[Sequence[float]]) -> np.ndarray:
        """(n, 4) states in ``units``, wire order → radians, each value inside the training range."""
        if units == "degrees":
            x0 = x0 / DEGREES_PER_RADIAN
        low, high = self.value_range
        for i, loc in enumerate(locs):
            for j, name in enumerate(WIRE_STATE_NAMES):
                if not low - 1e-12 <= x0[i, j] <= high + 1e-12:
                    unit = "degrees" if units == "degrees" else "radians"
                    scale = DEGREES_PER_RADIAN if units == "degrees" else 1.0
                    suffix = "/s" if name.startswith("omega") else ""
                    bounds = f"[{low * scale:g}, {high * scale:g}] {unit}{suffix}"
                    raise InputError((*loc, name), f"{sent[i][j]:g} {unit}{suffix} is outside the "
                                                   f"range {bounds} of the training data of model "
                                                   f"{self.manifest.name!r}")
        return x0

    # -- stability reports (service.stability) ---------------------------------------------------------
    def stability_default_input(self) -> torch.Tensor:
        """The rest state rolled out over the trained horizon."""
        return self.network_input(torch.zeros(1, 4), self.trained_steps)

    def stability_sample(self, initial_state: dict, units: str, steps: int | None, max_steps: int,
                         **_: Any) -> torch.Tensor:
        """A caller's initial state as the network input (1, steps, 4)."""
        steps = steps if steps is not None else self.trained_steps
        if steps > max_steps:
            raise InputError(("steps",), f"steps must be ≤ pendulum_max_steps = {max_steps}, got {steps}")
        x0 = self.decode([initial_state], units, [("initial_state",)])
        return self.network_input(torch.from_numpy(x0.astype(np.float32)), steps)

    # -- the Open Inference Protocol -----------------------------------------------------------------
    def v2_signature(self) -> tuple[list[tuple[str, str, list[int]]], list[tuple[str, str, list[int]]]]:
        """(inputs, outputs) as (name, datatype, shape); −1 is the batch (and the steps)."""
        return ([(self.V2_INPUT, "FP32", [-1, 4])],
                [("trajectory", "FP32", [-1, -1, 4]), ("times", "FP64", [-1])])

    def v2_states(self, array: np.ndarray, datatype: str, where: str, max_rows: int) -> np.ndarray:
        """``initial_state`` [n, 4] FP32 radians → (n, 4) float64 radians, range-checked."""
        if datatype not in ("FP32", "FP64"):
            raise InputError((where,), f"datatype {datatype} is not accepted: FP32 radians (FP64 too)")
        if array.ndim != 2 or array.shape[1] != 4 or array.shape[0] < 1:
            raise InputError((where,), f"shape {list(array.shape)} is not a batch of initial states: [n, 4] "
                                       f"(θ₁, θ₂, ω₁, ω₂ in radians)")
        if array.shape[0] > max_rows:
            raise InputError((where,), f"at most pendulum_max_batch = {max_rows} initial states per request, "
                                       f"got {array.shape[0]}")
        x0 = array.astype(np.float64)
        if not np.isfinite(x0).all():
            raise InputError((where,), "initial states must be finite numbers")
        return self.check_range(x0, "radians", [(where, i) for i in range(len(x0))], x0.tolist())

    # -- batch → predict → unbatch (worker thread, under torch.inference_mode) ---------------------
    def run_batch(self, jobs: list[PendulumJob]) -> list[np.ndarray]:
        """Predicted states (n, steps, 4) in radians, wire order, per job."""
        x0 = np.concatenate([job.x0 for job in jobs]) if len(jobs) > 1 else jobs[0].x0
        steps = max(job.steps for job in jobs)
        predicted = self.predict(torch.from_numpy(x0.astype(np.float32)), steps).cpu().numpy()
        out, start = [], 0
        for job in jobs:
            out.append(predicted[start:start + job.rows, :job.steps])
            start += job.rows
        return out

    def network_input(self, x0: torch.Tensor, steps: int) -> torch.Tensor:
        """(n, 4) initial states (radians, wire order) → the network input (n, steps, 4): the state,
        normalised and in the model's channel order, in the encoding the model was trained with
        (``physics.encoding``: at step 0 then the placeholder, or at every step)."""
        model_x0 = (x0[:, self._input_order] - torch.from_numpy(self.mean)) / torch.from_numpy(self.std)
        return network_inputs(model_x0, steps, self.manifest.input.encoding)

    def predict(self, x0: torch.Tensor, steps: int) -> torch.Tensor:
        """(n, 4) initial states → (n, steps, 4) predicted states (radians, wire order)."""
        predicted = self.module(self.network_input(x0, steps).to(self.device), None, True).float()
        if self.out_scale is not None:
            predicted = predicted * self.out_scale.to(predicted) + self.out_offset.to(predicted)
        return predicted[..., self._output_order]

    def warmup(self, max_batch_size: int) -> None:
        zero = np.zeros((1, 4))
        with torch.inference_mode():
            for _ in range(3):
                self.run_batch([PendulumJob(zero, self.trained_steps)])
            self.run_batch([PendulumJob(np.repeat(zero, max_batch_size, axis=0), self.trained_steps)])

    # -- encode -----------------------------------------------------------------------------------
    def to_units(self, states: np.ndarray, units: str) -> np.ndarray:
        """(…, 4) wire-order states in radians → ``units`` (degrees converts rad and rad/s)."""
        if units == "radians":
            return states
        return np.where(self._angular, states * DEGREES_PER_RADIAN, states)

    def times(self, steps: int) -> list[float]:
        return [round((t + 1) * self.dt, 12) for t in range(steps)]

    def encode(self, predicted: np.ndarray, x0: np.ndarray, units: str, include_reference: bool
               ) -> list[dict]:
        """One trajectory per initial state, with the energy of the prediction (its drift from the
        initial energy shows where the model stops being physical); with ``include_reference`` also
        the physics solution (``physics.pendulum.simulate``, the training data's solver), its energy,
        and the per-step and mean squared error in the response's units."""
        predicted_rad = predicted.astype(np.float64)
        steps = predicted_rad.shape[1]
        reference_rad = simulate(x0, steps, self.dt)[:, 1:] if include_reference else None
        trajectories = []
        for i in range(predicted_rad.shape[0]):
            shown = self.to_units(predicted_rad[i], units)
            entry = {"predicted": shown.tolist(), "reference": None, "mse": None, "step_mse": None,
                     "energy": {"initial": float(total_energy(x0[i])),
                                "predicted": total_energy(predicted_rad[i]).tolist(), "reference": None}}
            if reference_rad is not None:
                reference = self.to_units(reference_rad[i], units)
                step_mse = ((shown - reference) ** 2).mean(axis=1)
                entry.update(reference=reference.tolist(), mse=float(step_mse.mean()),
                             step_mse=step_mse.tolist())
                entry["energy"]["reference"] = total_energy(reference_rad[i]).tolist()
            trajectories.append(entry)
        return trajectories
