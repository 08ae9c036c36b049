"""``POST /models/{name}/stability``: the request (the response: ``afrnn_schemas.report``)."""

from typing import Literal

from pydantic import Field, model_validator

from afrnn_schemas.classify import ImageInput
from afrnn_schemas.common import Request
from afrnn_schemas.pendulum import PendulumState


class StabilityRequest(Request):
    """Which sections to compute, k for the Lyapunov spectrum, and an optional input sample.

    Without a sample the report uses the default input and is cached: repeated calls are cheap.
    """

    sections: list[str] | None = Field(None, description="report sections to compute (default: all)")
    lyapunov_k: int = Field(16, ge=1, description="how many Lyapunov exponents (≤ the state size)")
    pixels: ImageInput | None = Field(None, description="an input image for a classifier (see /classify)")
    scale: Literal[1, 255] | None = Field(None, description="for `pixels` arrays: 255 or 1")
    initial_state: PendulumState | None = Field(None, description="an initial state for a pendulum model")
    units: Literal["degrees", "radians"] = "degrees"
    steps: int | None = Field(None, ge=1, description="pendulum rollout length (default: trained horizon)")

    model_config = {"json_schema_extra": {"examples": [
        {"sections": None, "lyapunov_k": 16},
        {"initial_state": {"theta1": 30, "theta2": -10, "omega1": 0, "omega2": 5}, "units": "degrees"},
    ]}}

    @model_validator(mode="after")
    def _at_most_one_sample(self) -> "StabilityRequest":
        if self.pixels is not None and self.initial_state is not None:
            raise ValueError("give at most one input sample: `pixels` (classifiers) or `initial_state` "
                             "(pendulum models)")
        return self

    @property
    def has_sample(self) -> bool:
        return self.pixels is not None or self.initial_state is not None
