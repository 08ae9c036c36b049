"""Pydantic request/response models of the HTTP API (each with OpenAPI examples)."""

from service.schemas.classify import ClassifyRequest, ClassifyResponse, Prediction
from service.schemas.common import ERROR_RESPONSES, ErrorMessage, ValidationErrorMessage
from service.schemas.models import DeviceInfo, Liveness, ModelDetail, ModelList, ModelSummary, Readiness
from service.schemas.pendulum import PendulumRequest, PendulumResponse, PendulumState, Trajectory
from service.schemas.stability import StabilityRequest

__all__ = [
    "ERROR_RESPONSES", "ClassifyRequest", "ClassifyResponse", "DeviceInfo", "ErrorMessage", "Liveness",
    "ModelDetail", "ModelList", "ModelSummary", "PendulumRequest", "PendulumResponse", "PendulumState",
    "Prediction", "Readiness", "StabilityRequest", "Trajectory", "ValidationErrorMessage",
]
