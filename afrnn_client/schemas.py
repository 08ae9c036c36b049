"""The wire schemas, imported from the service's own modules so that client and server cannot drift.

``service.schemas`` imports only pydantic. The stability report's schema is the pydantic module
``model/stability/report.py``, which imports only pydantic too, but its package ``model`` imports torch:
it is loaded here from its file, without running ``model/__init__.py``, so the client needs no torch.
"""

import importlib.util
import sys
from pathlib import Path

from service.schemas import (
    ClassifyRequest,
    ClassifyResponse,
    ErrorMessage,
    Liveness,
    ModelDetail,
    ModelList,
    ModelSummary,
    PendulumRequest,
    PendulumResponse,
    PendulumState,
    Prediction,
    Readiness,
    StabilityRequest,
    ValidationErrorMessage,
)
from service.schemas.stream import (
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


def _load_report_module():
    name = "afrnn_client._stability_report"
    if name in sys.modules:
        return sys.modules[name]
    if "model.stability.report" in sys.modules:          # torch is there anyway: share the classes
        return sys.modules["model.stability.report"]
    spec = importlib.util.find_spec("model")             # finds the package without importing it
    if spec is None or not spec.submodule_search_locations:
        raise ImportError("afrnn_client needs the afrnn-serving package's model/stability/report.py")
    path = Path(next(iter(spec.submodule_search_locations))) / "stability" / "report.py"
    module_spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    module_spec.loader.exec_module(module)
    return module


StabilityReport = _load_report_module().StabilityReport

__all__ = [
    "CLOSE_CODES", "SERVER_MESSAGE", "ClassifyRequest", "ClassifyResponse", "ErrorMessage", "Liveness",
    "ModelDetail", "ModelList", "ModelSummary", "PendulumRequest", "PendulumResponse", "PendulumState",
    "Prediction", "Readiness", "StabilityReport", "StabilityRequest", "StreamChunk", "StreamEnd",
    "StreamError", "StreamFinal", "StreamOpen", "StreamOpened", "StreamUpdate", "ValidationErrorMessage",
]
