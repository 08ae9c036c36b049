"""The service's error classes and the handlers that turn them into HTTP responses.

Every rejection names the field (``loc``) or the resource and the rule it broke:

=====  ==================  ================================================================
code   category            when
=====  ==================  ================================================================
422    validation          schema violation (FastAPI/pydantic) or ``InputError`` from decoding
404    not_found           unknown model or path
413    body_too_large      body over ``max_body_bytes`` (see ``service.middleware``)
401    unauthorized        API key missing or wrong, when one is configured
503    not_ready           model still loading, or unavailable (with the reason)
503    overloaded          the model's queue is full (with Retry-After)
504    timeout             the request outlived ``request_timeout_s``
500    internal            anything else: the traceback is logged, the client gets a generic message
=====  ==================  ================================================================

422 bodies use FastAPI's validation format, ``{"detail": [{"loc": [...], "msg": ..., "type": ...}]}``,
without echoing the (possibly large) input back; every other error is ``{"detail": "<message>"}``.

Each rejection is counted in ``afrnn_errors_total`` under its category, exported as the Prometheus label
``kind`` (the metric's public name; ``service.metrics.ERROR_KINDS`` lists the categories).
"""

import logging
from collections.abc import Sequence

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

log = logging.getLogger(__name__)


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
    headers."""

    status_code = 500
    category = "internal"

    def __init__(self, detail: str, headers: dict[str, str] | None = None):
        super().__init__(detail)
        self.detail = detail
        self.headers = headers


class ModelNotFoundError(ServiceError):
    status_code = 404
    category = "not_found"


class UnauthorizedError(ServiceError):
    status_code = 401
    category = "unauthorized"


class ModelNotReadyError(ServiceError):
    status_code = 503
    category = "not_ready"


class OverloadedError(ServiceError):
    status_code = 503
    category = "overloaded"


class GatewayTimeoutError(ServiceError):
    status_code = 504
    category = "timeout"


_CATEGORY_OF_STATUS = {404: "not_found", 401: "unauthorized", 413: "body_too_large", 422: "validation",
                   503: "not_ready", 504: "timeout"}


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


async def _on_service_error(request: Request, exc: ServiceError) -> JSONResponse:
    _count(request, exc.category)
    return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail}, headers=exc.headers)


async def _on_http_exception(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    fallback = "internal" if exc.status_code >= 500 else "other"
    _count(request, _CATEGORY_OF_STATUS.get(exc.status_code, fallback))
    return JSONResponse(status_code=exc.status_code, content={"detail": exc.detail},
                        headers=getattr(exc, "headers", None))


async def _on_unhandled(request: Request, exc: Exception) -> JSONResponse:
    _count(request, "internal")
    log.error("unhandled error", exc_info=exc, extra={"method": request.method, "path": request.url.path})
    return JSONResponse(status_code=500, content={"detail": "internal server error"})


def install_exception_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _on_request_validation)
    app.add_exception_handler(InputError, _on_input_error)
    app.add_exception_handler(ServiceError, _on_service_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_exception)
    app.add_exception_handler(Exception, _on_unhandled)
