"""Handing work to the admission path, with its failures mapped to HTTP errors.

* ``submit(entry, job)`` queues a decoded job on the model's batcher, with the request's deadline;
* ``run_heavy(request, fn, *args, kind=, work=)`` runs CPU-heavy non-batched work (physics
  references, stability) in the app's ``WorkLane``;
* ``install_admission_handlers(app)`` maps what either raises — anywhere in a handler — to the
  service's errors: a full queue → 503 overloaded + Retry-After, a passed deadline → 504, shutdown →
  503 not_ready + Retry-After.
"""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from service.admission import request_deadline
from service.batching import BatcherClosedError, BatchResult, QueueFullError, RequestTimeoutError
from service.errors import (
    RETRY_AFTER_SHUTDOWN_S,
    GatewayTimeoutError,
    ModelNotReadyError,
    OverloadedError,
    ServiceError,
    on_service_error,
    retry_after,
)
from service.registry import ServedModel


async def submit(entry: ServedModel, job: Any) -> BatchResult:
    """Queue ``job`` on the model's batcher (its failures reach ``install_admission_handlers``)."""
    return await entry.batcher.submit(job, job.rows, deadline=request_deadline.get())


async def run_heavy(request: Request, fn: Callable, *args: Any, kind: str, work: float) -> Any:
    """``fn(*args)`` in the app's work lane, under the request's deadline; ``kind`` and ``work`` (its
    size, in the lane's work units) feed the lane's time estimate (``service.admission.WorkLane``)."""
    return await request.app.state.work_lane.run(fn, *args, kind=kind, work=work)


def admission_error(request: Request, exc: Exception) -> ServiceError:
    """The HTTP error of a ``QueueFullError``, ``RequestTimeoutError`` or ``BatcherClosedError``."""
    if isinstance(exc, QueueFullError):
        return OverloadedError(f"overloaded: {exc}; retry later", headers=retry_after(exc.retry_after_s))
    if isinstance(exc, RequestTimeoutError):
        detail = str(exc)
        if "request_timeout_s =" not in detail:           # the work lane's messages do not give it
            detail += f" (request_timeout_s = {request.app.state.settings.request_timeout_s:g} s)"
        return GatewayTimeoutError(detail)
    return ModelNotReadyError(str(exc), headers=retry_after(RETRY_AFTER_SHUTDOWN_S))


async def _on_admission_error(request: Request, exc: Exception) -> JSONResponse:
    return await on_service_error(request, admission_error(request, exc))


def install_admission_handlers(app: FastAPI) -> None:
    for exc_class in (QueueFullError, RequestTimeoutError, BatcherClosedError):
        app.add_exception_handler(exc_class, _on_admission_error)
