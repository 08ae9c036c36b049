"""``POST /pendulum/predict``: request and response."""

from typing import Literal

from pydantic import Field, model_validator

from afrnn_schemas.common import FiniteFloat, Request, Response


class PendulumState(Request):
    """A double-pendulum state: angles from the vertical and angular velocities (see ``units``)."""

    theta1: FiniteFloat = Field(description="upper arm angle", examples=[30])
    theta2: FiniteFloat = Field(description="lower arm angle", examples=[-10])
    omega1: FiniteFloat = Field(description="upper arm angular velocity (per second)", examples=[0])
    omega2: FiniteFloat = Field(description="lower arm angular velocity (per second)", examples=[5])


class PendulumRequest(Request):
    """One initial state (``initial_state``) or a batch (``initial_states``) to roll out."""

    initial_state: PendulumState | None = Field(None, description="exclusive with `initial_states`")
    initial_states: list[PendulumState] | None = Field(
        None, min_length=1, description="a batch (exclusive with `initial_state`); at most "
                                        "`pendulum_max_batch` (default 256)")
    units: Literal["degrees", "radians"] = Field(
        "degrees", description="of the initial state and of the response: degrees and degrees/s (the "
                               "paper's convention) or radians and rad/s")
    steps: int | None = Field(None, ge=1, description="predicted states; default: the trained horizon "
                                                      "(29). Longer rollouts, up to `pendulum_max_steps`, "
                                                      "are extrapolation and flagged as such")
    include_reference: bool = Field(False, description="also return the physics solution, the error and "
                                                       "the energies")
    model: str | None = Field(None, description="default: the model named `pendulum` (the production "
                                                "model), or the only pendulum model served",
                              examples=["pendulum"])

    model_config = {"json_schema_extra": {"examples": [
        {"initial_state": {"theta1": 30, "theta2": -10, "omega1": 0, "omega2": 5},
         "units": "degrees", "steps": 29, "include_reference": True, "model": "pendulum"},
    ]}}

    @model_validator(mode="after")
    def _one_of_state_or_states(self) -> "PendulumRequest":
        if (self.initial_state is None) == (self.initial_states is None):
            raise ValueError("give exactly one of `initial_state` or `initial_states`")
        return self

    @property
    def state_list(self) -> list[PendulumState]:
        return [self.initial_state] if self.initial_state is not None else list(self.initial_states)

    @property
    def state_locs(self) -> list[tuple]:
        if self.initial_state is not None:
            return [("initial_state",)]
        return [("initial_states", i) for i in range(len(self.initial_states))]


class Energy(Response):
    """Total mechanical energy in joules (m = 1 kg, L = 1 m, g = 9.8 m/s²) at each of ``times``. The
    physics conserves it: the prediction's drift from ``initial`` shows where the model stops being
    physical."""

    initial: float = Field(description="energy of the initial state")
    predicted: list[float] = Field(description="energy of each predicted state")
    reference: list[float] | None = Field(None, description="energy of the physics solution (with "
                                                             "`include_reference`; constant up to the "
                                                             "solver's tolerance)")


class Trajectory(Response):
    predicted: list[list[float]] = Field(description="[theta1, theta2, omega1, omega2] at each of `times` "
                                                     "(the first row is one dt after the initial state)")
    reference: list[list[float]] | None = Field(None, description="the physics solution at `times` "
                                                                  "(same solver as the training data)")
    mse: float | None = Field(None, description="mean squared error predicted − reference over all steps "
                                                "and variables, in the response's `mse_units`")
    step_mse: list[float] | None = Field(None, description="the squared error per step (mean of the four "
                                                           "variables), in the response's `mse_units`")
    energy: Energy


class PendulumResponse(Response):
    model: str = Field(examples=["pendulum"])
    version: str = Field(examples=["1.0.0"])
    units: Literal["degrees", "radians"]
    mse_units: Literal["degrees²", "radians²"] = Field(
        description="the unit of every `mse` and `step_mse`: the square of `units` (the velocities' "
                    "errors are per second squared); a figure in degrees² is 3283 × its value in rad²")
    dt: float = Field(examples=[0.1])
    times: list[float] = Field(description="seconds after the initial state: dt, 2 dt, …, steps·dt")
    trained_steps: int = Field(description="the horizon the model was trained on")
    extrapolated: bool = Field(description="steps > trained_steps: beyond the trained horizon")
    trajectories: list[Trajectory] = Field(description="one per initial state, in request order")
    latency_ms: float
