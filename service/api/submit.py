"""Handing work to the admission path, with its failures mapped to HTTP errors.

* ``submit(entry, job)`` queues a decoded job on the model's batcher, with the request's deadline;
* ``run_heavy(request, fn, *args, kind=, units=)`` runs CPU-heavy non-batched work (physics
  references, stability) in the app's ``WorkLane``;
* ``install_admission_handlers(app)`` maps what either raises — anywhere in a handler — to the
  service's errors: a full queue → 503 + Retry-After, a passed deadline → 504, shutdown → 503.
"""

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from service.admission import request_deadline
from service.batching import BatcherClosedError, BatchResult, QueueFullError, RequestTimeoutError
from service.errors import GatewayTimeoutError, ModelNotReadyError, OverloadedError
from service.registry import ServedModel


async def submit(entry: ServedModel, job: Any) -> BatchResult:
    """Queue ``job`` on the model's batcher: 503 + Retry-After when full, 504 past the deadline."""
    try:
        return await entry.batcher.submit(job, job.rows, deadline=request_deadline.get())
    except QueueFullError as err:
        raise OverloadedError(f"overloaded: {err}; retry later",
                              headers={"Retry-After": str(err.retry_after_s)}) from None
    except RequestTimeoutError as err:
        raise GatewayTimeoutError(str(err)) from None
    except BatcherClosedError as err:
        raise ModelNotReadyError(str(err), headers={"Retry-After": "5"}) from None


async def run_heavy(request: Request, fn: Callable, *args: Any, kind: str, units: float) -> Any:
    """``fn(*args)`` in the app's work lane, under the request's deadline; ``kind`` and ``units`` (its
    size) feed the lane's time estimate (``service.admission.WorkLane``)."""
    return await request.app.state.work_lane.run(fn, *args, kind=kind, units=units)


def _error(request: Request, status: int, kind: str, detail: str,
           headers: dict | None = None) -> JSONResponse:
    metrics = getattr(request.app.state, "metrics", None)
    if metrics is not None:
        metrics.errors.labels(kind=kind).inc()
    return JSONResponse(status_code=status, content={"detail": detail}, headers=headers)


async def _on_queue_full(request: Request, exc: QueueFullError) -> JSONResponse:
    return _error(request, 503, "overloaded", f"overloaded: {exc}; retry later",
                  {"Retry-After": str(exc.retry_after_s)})


async def _on_timeout(request: Request, exc: RequestTimeoutError) -> JSONResponse:
    timeout = request.app.state.settings.request_timeout_s
    return _error(request, 504, "timeout", f"{exc} (request_timeout_s = {timeout:g} s)")


async def _on_closed(request: Request, exc: BatcherClosedError) -> JSONResponse:
    return _error(request, 503, "not_ready", str(exc), {"Retry-After": "5"})


def install_admission_handlers(app: FastAPI) -> None:
    app.add_exception_handler(QueueFullError, _on_queue_full)
    app.add_exception_handler(RequestTimeoutError, _on_timeout)
    app.add_exception_handler(BatcherClosedError, _on_closed)
