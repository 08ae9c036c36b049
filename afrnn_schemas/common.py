"""Shared pieces of the request/response models."""

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

# A float that must be finite: NaN and ±inf are rejected with "Input should be a finite number".
FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class Request(BaseModel):
    """Base of request bodies: unknown fields are rejected (a misspelt option is an error, not ignored)."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=(), strict=True)


class Response(BaseModel):
    model_config = ConfigDict(protected_namespaces=())


class ErrorMessage(Response):
    """Every non-422 error body."""

    detail: str = Field(examples=["unknown model 'mnistt'; served models: ['cifar10', 'mnist', 'pendulum']"])


class ValidationIssue(Response):
    loc: list[str | int] = Field(description="path of the offending field in the request",
                                 examples=[["body", "images", 0]])
    msg: str = Field(examples=["shape (783,) is not an image of model 'mnist'; accepted shapes: (784,), "
                               "(784, 1), (28, 28), (28, 28, 1)"])
    type: str = Field(examples=["value_error"])


class ValidationErrorMessage(Response):
    """422 body: FastAPI's validation error format, one entry per violated rule."""

    detail: list[ValidationIssue]


ERROR_RESPONSES = {
    401: {"model": ErrorMessage, "description": "API key missing or wrong (when one is configured)"},
    404: {"model": ErrorMessage, "description": "unknown model"},
    413: {"model": ErrorMessage, "description": "request body larger than max_body_bytes"},
    422: {"model": ValidationErrorMessage, "description": "invalid input; loc and msg name field and rule"},
    503: {"model": ErrorMessage, "description": "model loading/unavailable, or queue full (Retry-After)"},
    504: {"model": ErrorMessage, "description": "not answered within request_timeout_s"},
}
