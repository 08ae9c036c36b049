"""The service's error classes and the handlers that turn them into HTTP responses.

Every rejection names the field (``loc``) or the resource and the rule it broke:

=====  ==================  ================================================================
code   category            when
=====  ==================  ================================================================
422    validation          schema violation (FastAPI/pydantic) or ``InputError`` from decoding
404    not_found           unknown model or path
408    slow_client         body not received within ``body_timeout_s`` (see ``service.middleware``)
410    not_found           a stream closed after its idle timeout
413    body_too_large      body over ``max_body_bytes`` (see ``service.middleware``)
401    unauthorized        API key missing or wrong, when one is configured
403    forbidden           the inference key on an admin route, or the repository API is off
400    validation          an Open Inference Protocol request that breaks a rule (``{"error": ...}``)
503    not_ready           model still loading, or unavailable (with the reason), or shutting down
503    overloaded          queue full, or too many work requests or streams (Retry-After)
504    timeout             the request outlived ``request_timeout_s``
500    internal            anything else: the traceback is logged, the client gets a generic message
=====  ==================  ================================================================

422 bodies use FastAPI's validation format, ``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``,
without echoing the (possibly large) input back; every other error is ``{"detail": "<message>"}``.

Each rejection is counted in ``afrnn_errors_total`` under its category, exported as the Prometheus label
``kind`` (the metric's public name; ``service.metrics.ERROR_KINDS`` lists the categories). The table
above is ``CATEGORY_OF_STATUS`` (503 is ``not_ready`` unless raised as ``OverloadedError``), used by
the HTTP routes and the stream fallback alike.

Retry-After, one policy: a 503 for load carries the estimate of ``service.admission.LoadEstimate``;
one for a model still loading ``RETRY_AFTER_LOADING_S``; one for shutdown ``RETRY_AFTER_SHUTDOWN_S``
(``retry_after(seconds)`` makes the header). The API key is checked by ``api_key_error`` alone, for
HTTP (``service.middleware``, ``service.api.deps``) and the WebSocket (``service.api.routes.stream``).
"""

import logging
import math
import secrets
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)

CATEGORY_OF_STATUS = {400: "validation", 401: "unauthorized", 403: "forbidden", 404: "not_found",
                      408: "slow_client", 410: "not_found",
                      413: "body_too_large", 422: "validation", 503: "not_ready", 504: "timeout"}

RETRY_AFTER_LOADING_S = 2       # a model still loading or unavailable; /health/ready while not ready
RETRY_AFTER_SHUTDOWN_S = 5      # the server or a model's batcher is stopping

API_KEY_HEADER = "X-API-Key"


def retry_after(seconds: float) -> dict[str, str]:
    """The Retry-After header: whole seconds, at least 1."""
    return {"Retry-After": str(max(1, math.ceil(seconds)))}


class InputError(ValueError):
    """User input that passed the schema but not a runtime rule (shape, range, limits) → 422.

    ``loc`` is the path of the field inside the request body, e.g. ``("images", 3)``.
    """

    def __init__(self, loc: Sequence[str | int], msg: str, type_: str = "value_error"):
        super().__init__(msg)
        self.loc = tuple(loc)
        self.msg = msg
        self.type = type_


class ServiceError(Exception):
    """An error with an HTTP status, a category (the metric's ``kind`` label), a message and optional
    headers. ``status_code`` given: that status, its category from ``CATEGORY_OF_STATUS``."""

    status_code = 500
    category = "internal"

    def __init__(self, detail: str, headers: dict[str, str] | None = None, status_code: int | None = None):
        super().__init__(detail)
        self.detail = detail
        self.headers = headers
        if status_code is not None:
            self.status_code = status_code
            self.category = CATEGORY_OF_STATUS.get(status_code, "internal")


class ModelNotFoundError(ServiceError):
    status_code = 404
    category = "not_found"


class UnauthorizedError(ServiceError):
    status_code = 401
    category = "unauthorized"


def api_key_error(given: str | bytes | None, expected: str | None) -> UnauthorizedError | None:
    """The one API-key check: None when no key is configured or ``given`` is it, else the 401."""
    if expected is None:
        return None
    if given is None:
        return UnauthorizedError(f"missing API key: send it in the {API_KEY_HEADER} header",
                                 headers={"WWW-Authenticate": "ApiKey"})
    given = given.encode() if isinstance(given, str) else given
    if not secrets.compare_digest(given, expected.encode()):
        return UnauthorizedError(f"wrong API key in the {API_KEY_HEADER} header",
                                 headers={"WWW-Authenticate": "ApiKey"})
    return None


class ModelNotReadyError(ServiceError):
    status_code = 503
    category = "not_ready"


class OverloadedError(ServiceError):
    status_code = 503
    category = "overloaded"


class GatewayTimeoutError(ServiceError):
    status_code = 504
    category = "timeout"


def _count(request: Request, category: str) -> None:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.labels(kind=category).inc()


def validation_response(errors: Sequence[dict]) -> JSONResponse:
    detail = [{"loc": list(e.get("loc", ())), "msg": str(e.get("msg", "")),
               "type": e.get("type", "value_error")} for e in errors]
    return JSONResponse(status_code=422, content={"detail": detail})


async def _on_request_validation(request: Request, exc: RequestValidationError) -> JSONResponse:
    _count(request, "validation")
    return validation_response(exc.errors())


async def _on_input_error(request: Request, exc: InputError) -> JSONResponse:
    _count(request, "validation")
    loc = exc.loc if exc.loc[:1] in (("query",), ("path",), ("header",)) else ("body", *exc.loc)
    return validation_response([{"loc": loc, "msg": exc.msg, "type": exc.type}])


async def on_service_error(request: Request, exc: ServiceError) -> JSONResponse:
    _count(request, exc.category)
    return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail}, headers=exc.headers)


async def _on_http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    fallback = "internal" if exc.status_code >= 500 else "other"
    _count(request, CATEGORY_OF_STATUS.get(exc.status_code, fallback))
    return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail},
                        headers=getattr(exc, "headers", None))


async def _on_unhandled(request: Request, exc: Exception) -> JSONResponse:
    _count(request, "internal")
    log.error("unhandled error", exc_info=exc, extra={"method": request.method, "path": request.url.path})
    return JSONResponse(status_code=500, content={"detail": "internal server error"})


def install_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(InputError, _on_input_error)
    app.add_exception_handler(ServiceError, on_service_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(Exception, _on_unhandled)
