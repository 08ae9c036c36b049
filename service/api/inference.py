"""Handing a decoded job to a model's batcher, with the batcher's failures mapped to HTTP errors."""

from typing import Any

from service.batching import BatcherClosedError, BatchResult, QueueFullError, RequestTimeoutError
from service.errors import GatewayTimeoutError, ModelNotReadyError, OverloadedError
from service.registry import ServedModel


async def submit(entry: ServedModel, job: Any) -> BatchResult:
    """Queue ``job`` on the model's batcher: 503 + Retry-After when full, 504 on timeout."""
    try:
        return await entry.batcher.submit(job, job.rows)
    except QueueFullError as err:
        raise OverloadedError(f"overloaded: {err}; retry later",
                              headers={"Retry-After": str(err.retry_after_s)}) from None
    except RequestTimeoutError as err:
        raise GatewayTimeoutError(str(err)) from None
    except BatcherClosedError as err:
        raise ModelNotReadyError(str(err), headers={"Retry-After": "5"}) from None
