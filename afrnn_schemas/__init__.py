"""The wire schemas of the AFRNN service: pydantic request/response models (each with OpenAPI
examples), the stream messages and the stability report.

Imports only pydantic, so the server (``service``), the model's stability analysis
(``model.stability``) and the client (``afrnn_client``, no torch) share one definition.
"""

from afrnn_schemas.classify import ClassifyRequest, ClassifyResponse, Prediction
from afrnn_schemas.common import ERROR_RESPONSES, ErrorMessage, ValidationErrorMessage
from afrnn_schemas.models import (
    DeviceInfo,
    Liveness,
    ModelDetail,
    ModelList,
    ModelSummary,
    ModelVersion,
    Readiness,
    SignatureInfo,
)
from afrnn_schemas.pendulum import PendulumRequest, PendulumResponse, PendulumState, Trajectory
from afrnn_schemas.report import StabilityReport
from afrnn_schemas.repository import LoadResult, RepositoryEntry, UnloadResult
from afrnn_schemas.stability import StabilityRequest
from afrnn_schemas.stream import (
    CLOSE_CODES,
    SERVER_MESSAGE,
    StreamChunk,
    StreamEnd,
    StreamError,
    StreamFinal,
    StreamOpen,
    StreamOpened,
    StreamUpdate,
)

__all__ = [
    "CLOSE_CODES", "ERROR_RESPONSES", "SERVER_MESSAGE", "ClassifyRequest", "ClassifyResponse", "DeviceInfo",
    "ErrorMessage", "Liveness", "LoadResult", "ModelDetail", "ModelList", "ModelSummary", "ModelVersion",
    "PendulumRequest", "RepositoryEntry", "SignatureInfo", "UnloadResult",
    "PendulumResponse", "PendulumState", "Prediction", "Readiness", "StabilityReport", "StabilityRequest",
    "StreamChunk", "StreamEnd", "StreamError", "StreamFinal", "StreamOpen", "StreamOpened", "StreamUpdate",
    "Trajectory", "ValidationErrorMessage",
]
