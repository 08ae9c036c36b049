"""Dynamic batching: one asyncio queue per model, coalesced forward passes in a worker thread.

Request handlers ``await batcher.submit(payload, rows)``; a worker task takes the queued requests in
arrival order and stacks them into one batch of at most ``max_batch_size`` rows (a request with more
rows than that runs alone), then calls ``run_batch(payloads) -> results`` in the batcher's thread
under ``torch.inference_mode`` and hands each caller its own result. With ``max_queue_delay_s`` = 0 a
batch is whatever is queued when the model becomes free; with a delay, a non-full batch is held open
until it fills up or the delay has passed since its first request was taken.

Overload never queues forever:

* a full queue (``max_queue_length`` waiting requests) raises ``QueueFullError`` at once (→ 503 with
  Retry-After);
* a request not answered within ``request_timeout_s`` of its submission — or by its ``deadline``, when
  the caller gives one (the request's, set when its headers arrived) — raises ``RequestTimeoutError``
  (→ 504) and is dropped from the queue if its forward pass has not started; a request whose deadline
  has already passed is not queued at all;
* after ``close()`` starts, new requests raise ``BatcherClosedError`` (→ 503) while the queued ones
  are still run (the graceful drain at shutdown).

If a batched ``run_batch`` fails, its requests are retried one by one, so that one poisoned request
cannot fail its neighbours; each caller then gets its own result or its own exception.
"""

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

import torch

P = TypeVar("P")
R = TypeVar("R")

log = logging.getLogger(__name__)


class QueueFullError(RuntimeError):
    """The model's queue holds ``max_queue_length`` requests; retry after ``retry_after_s``."""

    def __init__(self, message: str, retry_after_s: int):
        super().__init__(message)
        self.retry_after_s = retry_after_s


class RequestTimeoutError(TimeoutError):
    """The request was not answered within the per-request timeout."""


class BatcherClosedError(RuntimeError):
    """The batcher is shutting down and takes no new requests."""


@dataclass
class BatchResult(Generic[R]):
    """One caller's result and how it was produced."""

    value: R
    queue_wait_s: float       # submission → start of the forward pass that answered it
    inference_s: float        # duration of that forward pass (the whole batch)
    batch_rows: int           # rows in that forward pass


@dataclass
class _Pending:
    payload: Any
    rows: int
    future: asyncio.Future
    enqueued_at: float = field(default_factory=time.perf_counter)


class DynamicBatcher(Generic[P, R]):
    """Coalesces concurrent requests for one model into batched calls of ``run_batch``.

    Args:
        name: the model's name (for logs, thread names and metrics).
        run_batch: ``payloads -> results``, one result per payload, in order. Runs in a worker thread
            under ``torch.inference_mode``; it does the LitServe ``batch → predict → unbatch`` steps.
        max_batch_size: most rows per call of ``run_batch``.
        max_queue_delay_s: how long a non-full batch may wait for more requests (0: never).
        max_queue_length: requests waiting beyond which ``submit`` raises ``QueueFullError``.
        request_timeout_s: per-request limit on queue wait + inference.
        executor: thread pool for ``run_batch``; by default a private single thread. Share one
            single-thread executor between batchers that must not run forward passes concurrently.
        on_batch: optional observer ``(rows, inference_s, queue_waits_s)`` called after each batch.
        on_queue_depth: optional observer of the number of waiting requests.
        on_error: optional observer ``(error)`` of each failed forward pass whose error reaches a
            caller (a batched failure retried one by one counts once per failing request).
    """

    def __init__(self, name: str, run_batch: Callable[[list[P]], Sequence[R]], *, max_batch_size: int,
                 max_queue_delay_s: float, max_queue_length: int, request_timeout_s: float,
                 executor: ThreadPoolExecutor | None = None,
                 on_batch: Callable[[int, float, list[float]], None] | None = None,
                 on_queue_depth: Callable[[int], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None):
        if max_batch_size < 1:
            raise ValueError(f"max_batch_size must be ≥ 1, got {max_batch_size}")
        if max_queue_length < 1:
            raise ValueError(f"max_queue_length must be ≥ 1, got {max_queue_length}")
        if not 0 <= max_queue_delay_s < request_timeout_s:
            raise ValueError(f"max_queue_delay_s ({max_queue_delay_s}) must be ≥ 0 and less than "
                             f"request_timeout_s ({request_timeout_s})")
        self.name = name
        self._run_batch = run_batch
        self.max_batch_size = max_batch_size
        self.max_queue_delay_s = max_queue_delay_s
        self.max_queue_length = max_queue_length
        self.request_timeout_s = request_timeout_s
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"batch-{name}")
        self._on_batch = on_batch
        self._on_queue_depth = on_queue_depth
        self._on_error = on_error
        self._pending: deque[_Pending] = deque()
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._closing = False
        self._last_inference_s = 0.0

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker task on the running event loop."""
        if self._worker is None:
            self._wakeup = asyncio.Event()
            self._worker = asyncio.get_running_loop().create_task(self._work(), name=f"batcher-{self.name}")

    async def close(self, drain_timeout_s: float | None = None) -> None:
        """Refuse new requests, finish the queued ones (up to ``drain_timeout_s``), stop the worker."""
        self._closing = True
        if self._worker is not None:
            self._wakeup.set()
            try:
                await asyncio.wait_for(asyncio.shield(self._worker), drain_timeout_s)
            except TimeoutError:
                self._worker.cancel()
                log.warning("batcher did not drain in time", extra={"model": self.name,
                                                                     "abandoned": len(self._pending)})
        while self._pending:
            item = self._pending.popleft()
            if not item.future.done():
                item.future.set_exception(BatcherClosedError(f"model {self.name!r} is shutting down"))
        if self._own_executor:
            self._executor.shutdown(wait=False)

    @property
    def queue_depth(self) -> int:
        return len(self._pending)

    @property
    def queued_rows(self) -> int:
        """Rows waiting for a forward pass (for the Retry-After estimate)."""
        return sum(item.rows for item in self._pending)

    # -- the request side -------------------------------------------------------------------------
    async def submit(self, payload: P, rows: int = 1, deadline: float | None = None) -> BatchResult[R]:
        """Queue ``payload`` (``rows`` rows of the batch) and wait for its result, at the latest until
        ``request_timeout_s`` from now or ``deadline`` (a ``time.perf_counter()`` value), whichever
        comes first."""
        if self._closing:
            raise BatcherClosedError(f"model {self.name!r} is shutting down")
        if self._worker is None:
            raise RuntimeError(f"batcher {self.name!r} was not started")
        if len(self._pending) >= self.max_queue_length:
            raise QueueFullError(f"model {self.name!r} has {len(self._pending)} requests queued (the limit "
                                 f"is max_queue_length = {self.max_queue_length})", self._retry_after())
        timeout = self.request_timeout_s
        if deadline is not None:
            timeout = min(timeout, deadline - time.perf_counter())
            if timeout <= 0:
                raise RequestTimeoutError(f"model {self.name!r}: the request's deadline (request_timeout_s "
                                          f"= {self.request_timeout_s} s) passed before it was queued")
        loop = asyncio.get_running_loop()
        item = _Pending(payload, rows, loop.create_future())
        self._pending.append(item)
        self._queue_depth_changed()
        self._wakeup.set()
        # One timer on the request's own future (cheaper than asyncio.wait_for's wrapper future).
        timer = loop.call_later(timeout, self._expire, item)
        try:
            return await item.future
        except asyncio.CancelledError:        # the client went away (awaiting cancelled item.future)
            self._discard(item)
            raise
        finally:
            timer.cancel()

    def _expire(self, item: _Pending) -> None:
        """The request's timeout: drop it from the queue if still waiting and fail its future."""
        if item.future.done():
            return
        self._discard(item)
        item.future.set_exception(RequestTimeoutError(
            f"model {self.name!r} did not answer within request_timeout_s = {self.request_timeout_s} s"))

    def _discard(self, item: _Pending) -> None:
        try:
            self._pending.remove(item)
        except ValueError:
            return                              # already taken into a batch
        self._queue_depth_changed()

    def _retry_after(self) -> int:
        """Seconds until the queue has likely drained: batches ahead × last forward time, ≥ 1."""
        batches = len(self._pending) / self.max_batch_size
        return max(1, math.ceil(batches * self._last_inference_s))

    def _queue_depth_changed(self) -> None:
        if self._on_queue_depth is not None:
            self._on_queue_depth(len(self._pending))

    # -- the worker side --------------------------------------------------------------------------
    def _take(self, batch: list[_Pending], rows: int) -> int:
        """Move queued requests into ``batch`` while they fit; returns the new row count."""
        while self._pending:
            item = self._pending[0]
            if item.future.done():              # timed out or cancelled while queued
                self._pending.popleft()
                continue
            if batch and rows + item.rows > self.max_batch_size:
                break
            self._pending.popleft()
            batch.append(item)
            rows += item.rows
        return rows

    async def _collect(self) -> list[_Pending] | None:
        """The next batch, or None once closing and the queue is empty."""
        batch: list[_Pending] = []
        rows = 0
        while not batch:
            rows = self._take(batch, rows)
            if batch:
                break
            if self._closing:
                return None
            self._wakeup.clear()
            await self._wakeup.wait()
        deadline = time.perf_counter() + self.max_queue_delay_s
        while rows < self.max_batch_size and not self._pending and not self._closing:
            remaining = deadline - time.perf_counter()
            if remaining <= 0:
                break
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                break
            finally:
                rows = self._take(batch, rows)
        self._queue_depth_changed()
        return batch

    def _run(self, payloads: list[P]) -> tuple[Sequence[R], float]:
        start = time.perf_counter()
        with torch.inference_mode():
            results = self._run_batch(payloads)
        if len(results) != len(payloads):
            raise RuntimeError(f"run_batch of model {self.name!r} returned {len(results)} results for "
                               f"{len(payloads)} requests")
        return results, time.perf_counter() - start

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = await self._collect()
            if batch is None:
                return
            started = time.perf_counter()
            rows = sum(item.rows for item in batch)
            try:
                results, inference_s = await loop.run_in_executor(
                    self._executor, self._run, [item.payload for item in batch])
            except Exception as batch_error:
                if len(batch) == 1:
                    self._fail(batch[0], batch_error)
                    continue
                log.warning("batched forward failed; retrying its requests one by one",
                            extra={"model": self.name, "requests": len(batch), "error": repr(batch_error)})
                for item in batch:
                    if item.future.done():
                        continue
                    started = time.perf_counter()
                    try:
                        (result,), inference_s = await loop.run_in_executor(
                            self._executor, self._run, [item.payload])
                    except Exception as error:
                        self._fail(item, error)
                    else:
                        self._answer([item], [result], started, inference_s, item.rows)
                continue
            self._answer(batch, results, started, inference_s, rows)

    def _answer(self, batch: list[_Pending], results: Sequence[R], started: float, inference_s: float,
                rows: int) -> None:
        self._last_inference_s = inference_s
        waits = [started - item.enqueued_at for item in batch]
        for item, result, wait in zip(batch, results, waits, strict=True):
            if not item.future.done():
                item.future.set_result(BatchResult(result, wait, inference_s, rows))
        if self._on_batch is not None:
            self._on_batch(rows, inference_s, waits)

    def _fail(self, item: _Pending, error: BaseException) -> None:
        log.error("forward pass failed", extra={"model": self.name, "rows": item.rows, "error": repr(error)})
        if self._on_error is not None:
            self._on_error(error)
        if not item.future.done():
            item.future.set_exception(error)
