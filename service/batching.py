"""Dynamic batching: concurrent requests to one model coalesced into forward passes on its thread.

Request handlers ``await batcher.submit(payload, rows)``. The model's thread takes the queued requests
in arrival order and stacks them into one batch of at most ``max_batch_size`` rows (a request with more
rows than that runs alone), calls ``run_batch(payloads) -> results`` under ``torch.inference_mode``,
and hands the results to the event loop, one callback per batch. A batch is whatever is queued when
the model becomes free, except that it may be held open for the requests that recent traffic says are
on their way.

**The batch window adapts to the traffic and to the model.** Let P be the most rows outstanding
(submitted and not yet answered) at any moment since the previous batch was taken: under a closed loop
(each client waits for its answer before it sends again) P rows come back, one trip through the HTTP
stack after their answers. Taking whatever is queued, P rows settle into two batches that alternate:
while one runs, the other's answers go out and its next requests come in. Per cycle that costs
f(k) + f(P − k) = 2a + b·P of model time, with a forward time f(n) ≈ a + b·n for n rows (a least-
squares line through the batcher's own measurements). Holding each batch open until all P rows are in
costs a + b·P, plus the model's idle wait while the event loop answers and reads the P requests one
after another, P·s, where s is the spacing of requests that arrive while the model is busy (the median
of recent gaps between submissions). So a batch of k < P rows is held only when

    P ≤ ``max_batch_size``  and  P · s < a,

until it has P rows or min(a, ``max_queue_delay_s``) has passed. A recurrent forward over T steps has a
large a when its per-step overhead dominates (TorchScript on a CPU, any GPU), and waiting pays; the C
loop's a is small, and it is not held. A lone client (P = 1) is never held, and traffic that shrinks
lowers P at the next batch. With ``max_queue_delay_s`` = 0 no batch is held. The rule's arithmetic is
``hold_window_s``, a pure function of the measured inputs; why the window is built this way, and
what it was measured against: docs/decisions/0003-adaptive-batch-window.md.

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
import threading
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import torch

from service.clock import SYSTEM_CLOCK, Clock

# The adaptive window's estimates: the weight of a new forward time in its moving average, and how
# many recent arrival gaps the median spacing is taken over.
FORWARD_ESTIMATE_WEIGHT = 0.2
ARRIVAL_GAPS_KEPT = 64

P = TypeVar("P")
R = TypeVar("R")

log = logging.getLogger(__name__)


def fixed_cost_s(forward_s: Mapping[int, float]) -> float:
    """a of the least-squares line f(n) ≈ a + b·n through the measured forward times ``{rows:
    seconds}``, at most the cheapest measured batch's time (b ≥ 0). With one batch size measured, that
    time: the bound is tried, and the held batch measures a second size (traffic that settles into
    equal half batches would otherwise never show the line). 0 before any batch."""
    if not forward_s:
        return 0.0
    sizes, times = list(forward_s), list(forward_s.values())
    if len(sizes) == 1:
        return times[0]
    mean_n, mean_t = sum(sizes) / len(sizes), sum(times) / len(times)
    slope = (sum((n - mean_n) * (t - mean_t) for n, t in zip(sizes, times, strict=True))
             / sum((n - mean_n) ** 2 for n in sizes))
    return min(max(0.0, mean_t - slope * mean_n), min(times))


def median_spacing_s(gaps: Iterable[float]) -> float:
    """s: the median of the recent gaps between submissions (0 before any). The median, because the
    gaps also span the pauses between bursts of returning requests, which are not the event loop's
    pace."""
    ordered = sorted(gaps)
    return ordered[len(ordered) // 2] if ordered else 0.0


def hold_window_s(rows: int, expected: int, *, max_batch_size: int, max_queue_delay_s: float,
                  fixed_cost_s: float, spacing_s: float) -> float:
    """How long a batch of ``rows`` is held open for ``expected`` rows (P) to arrive: 0 when it is
    complete, when P does not fit one batch, or when waiting for them costs at least the forward
    pass it saves (P·s ≥ a); else min(a, ``max_queue_delay_s``) (module docstring)."""
    if max_queue_delay_s <= 0 or rows >= expected or expected > max_batch_size:
        return 0.0
    if expected * spacing_s >= fixed_cost_s:
        return 0.0
    return min(fixed_cost_s, max_queue_delay_s)


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
    enqueued_at: float                  # the batcher's clock at submission


class DynamicBatcher(Generic[P, R]):
    """Coalesces concurrent requests for one model into batched calls of ``run_batch``.

    Args:
        name: the model's name (for logs, thread names and metrics).
        run_batch: ``payloads -> results``, one result per payload, in order. Runs in a worker thread
            under ``torch.inference_mode``; it does the LitServe ``batch → predict → unbatch`` steps.
        max_batch_size: most rows per call of ``run_batch``.
        max_queue_delay_s: the longest a batch is held open for the rows recent traffic says are
            coming, when the model's fixed cost says they are worth waiting for (0: never held).
        max_queue_length: requests waiting beyond which ``submit`` raises ``QueueFullError``.
        request_timeout_s: per-request limit on queue wait + inference.
        executor: thread pool for ``run_batch``; by default a private single thread. Share one
            single-thread executor between batchers that must not run forward passes concurrently.
        on_batch: optional observer ``(rows, inference_s, queue_waits_s)`` called after each batch.
        on_queue_depth: optional observer of the number of waiting requests.
        on_error: optional observer ``(error)`` of each failed forward pass whose error reaches a
            caller (a batched failure retried one by one counts once per failing request).
        clock: what the batcher reads the time from and holds a batch open with (``service.clock``;
            the system's ``time.perf_counter`` by default). ``submit``'s ``deadline`` is a time of
            this clock; the request timeout's timer runs on the event loop's own time.
    """

    def __init__(self, name: str, run_batch: Callable[[list[P]], Sequence[R]], *, max_batch_size: int,
                 max_queue_delay_s: float, max_queue_length: int, request_timeout_s: float,
                 executor: ThreadPoolExecutor | None = None,
                 on_batch: Callable[[int, float, list[float]], None] | None = None,
                 on_queue_depth: Callable[[int], None] | None = None,
                 on_error: Callable[[BaseException], None] | None = None,
                 clock: Clock = SYSTEM_CLOCK):
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
        self._clock = clock
        self._now = clock.now
        # Shared with the model's thread, under _lock: the queue and whether a batch job is queued or
        # running on the executor. _ready (same lock) wakes a batch held open by max_queue_delay_s.
        self._lock = threading.Lock()
        self._ready = threading.Condition(self._lock)
        self._pending: deque[_Pending] = deque()
        self._scheduled = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._idle: asyncio.Event | None = None     # set while nothing is queued or running (close)
        self._closing = False
        self._last_inference_s = 0.0
        # Under _lock: rows submitted and not yet answered, and their peak since the last batch was taken.
        self._outstanding_rows = 0
        self._peak_rows = 0
        # The window's cost model: the forward's seconds per batch size (moving averages; the model's
        # thread's own), and the spacing s of requests submitted while the model is busy (under _lock).
        self._forward_s: dict[int, float] = {}
        self._arrival_gaps: deque[float] = deque(maxlen=ARRIVAL_GAPS_KEPT)
        self._last_submit = 0.0
        self._last_submit_busy = False

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Bind to the running event loop (results are delivered on it)."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
            self._idle = asyncio.Event()
            self._idle.set()

    async def close(self, drain_timeout_s: float | None = None) -> None:
        """Refuse new requests, finish the queued ones (up to ``drain_timeout_s``), then stop."""
        with self._ready:
            self._closing = True
            self._ready.notify_all()                # a batch held open starts now
        if self._loop is not None:
            try:
                await asyncio.wait_for(self._idle.wait(), drain_timeout_s)
            except TimeoutError:
                log.warning("batcher did not drain in time", extra={"model": self.name,
                                                                     "abandoned": self.queue_depth})
        with self._lock:
            abandoned = list(self._pending)
            self._pending.clear()
            self._queue_depth_changed()
        for item in abandoned:
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
        with self._lock:
            return sum(item.rows for item in self._pending)

    # -- the request side (event loop) ------------------------------------------------------------
    async def submit(self, payload: P, rows: int = 1, deadline: float | None = None) -> BatchResult[R]:
        """Queue ``payload`` (``rows`` rows of the batch) and wait for its result, at the latest until
        ``request_timeout_s`` from now or ``deadline`` (a time of the batcher's clock, by default
        ``time.perf_counter()``), whichever comes first."""
        if self._closing:
            raise BatcherClosedError(f"model {self.name!r} is shutting down")
        if self._loop is None:
            raise RuntimeError(f"batcher {self.name!r} was not started")
        if len(self._pending) >= self.max_queue_length:
            raise QueueFullError(f"model {self.name!r} has {len(self._pending)} requests queued (the limit "
                                 f"is max_queue_length = {self.max_queue_length})", self._retry_after())
        timeout = self.request_timeout_s
        now = self._now()
        if deadline is not None:
            timeout = min(timeout, deadline - now)
            if timeout <= 0:
                raise RequestTimeoutError(f"model {self.name!r}: the request's deadline (request_timeout_s "
                                          f"= {self.request_timeout_s} s) passed before it was queued")
        item = _Pending(payload, rows, self._loop.create_future(), now)
        with self._ready:
            self._pending.append(item)
            self._outstanding_rows += rows
            self._peak_rows = max(self._peak_rows, self._outstanding_rows)
            self._time_arrival(item.enqueued_at)
            self._queue_depth_changed()
            schedule = not self._scheduled
            self._scheduled = True
            self._ready.notify()
        self._idle.clear()
        if schedule:
            try:
                self._executor.submit(self._run_next)
            except RuntimeError:                # the executor was shut down under us
                with self._lock:
                    self._pending.remove(item)
                    self._scheduled = False
                    self._outstanding_rows -= rows
                raise BatcherClosedError(f"model {self.name!r} is shutting down") from None
        # One timer on the request's own future (cheaper than asyncio.wait_for's wrapper future).
        timer = self._loop.call_later(timeout, self._expire, item)
        try:
            return await item.future
        except asyncio.CancelledError:        # the client went away (awaiting cancelled item.future)
            self._discard(item)
            raise
        finally:
            timer.cancel()
            with self._lock:
                self._outstanding_rows -= rows

    def _expire(self, item: _Pending) -> None:
        """The request's timeout: drop it from the queue if still waiting and fail its future."""
        if item.future.done():
            return
        self._discard(item)
        item.future.set_exception(RequestTimeoutError(
            f"model {self.name!r} did not answer within request_timeout_s = {self.request_timeout_s} s"))

    def _discard(self, item: _Pending) -> None:
        with self._lock:
            try:
                self._pending.remove(item)
            except ValueError:
                return                          # already taken into a batch
            self._queue_depth_changed()

    def _retry_after(self) -> int:
        """Seconds until the queue has likely drained: batches ahead × last forward time, ≥ 1."""
        batches = len(self._pending) / self.max_batch_size
        return max(1, math.ceil(batches * self._last_inference_s))

    def _queue_depth_changed(self) -> None:
        """Report the queue's length (``_lock`` held, so that reports arrive in order)."""
        if self._on_queue_depth is not None:
            self._on_queue_depth(len(self._pending))

    # -- the model's thread -----------------------------------------------------------------------
    def _take(self, batch: list[_Pending], rows: int) -> int:
        """Move queued requests into ``batch`` while they fit (``_lock`` held); returns the row count."""
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

    def _time_arrival(self, now: float) -> None:
        """Keep the gap since the last submission when both came while the model was busy (a batch
        queued, running or held: ``_scheduled``). ``_lock`` held."""
        busy = self._scheduled
        if busy and self._last_submit_busy:
            self._arrival_gaps.append(now - self._last_submit)
        self._last_submit, self._last_submit_busy = now, busy

    def _hold_s(self, rows: int, expected: int) -> float:
        """How long to hold a batch of ``rows`` open for ``expected`` rows (0: run it now)."""
        if self.max_queue_delay_s <= 0 or rows >= expected or expected > self.max_batch_size:
            return 0.0                       # the cheap tests first: most batches stop here
        return hold_window_s(rows, expected, max_batch_size=self.max_batch_size,
                             max_queue_delay_s=self.max_queue_delay_s,
                             fixed_cost_s=fixed_cost_s(self._forward_s),
                             spacing_s=median_spacing_s(self._arrival_gaps))

    def _collect(self) -> tuple[list[_Pending], int]:
        """The next batch and its rows (empty when nothing is queued), held open while the adaptive
        window says the missing rows are worth waiting for and nothing else is queued (module
        docstring)."""
        batch: list[_Pending] = []
        with self._ready:
            rows = self._take(batch, 0)
            expected = self._peak_rows
            self._peak_rows = self._outstanding_rows        # the peak is measured from batch to batch
            hold_s = self._hold_s(rows, expected) if batch and not self._pending else 0.0
            if hold_s > 0:
                deadline = self._now() + hold_s
                while rows < expected and not self._pending and not self._closing:
                    if self._now() >= deadline:
                        break
                    self._clock.wait(self._ready, deadline)
                    rows = self._take(batch, rows)
            self._queue_depth_changed()
        return batch, rows

    def _run(self, payloads: list[P]) -> tuple[Sequence[R], float]:
        start = self._now()
        with torch.inference_mode():
            results = self._run_batch(payloads)
        if len(results) != len(payloads):
            raise RuntimeError(f"run_batch of model {self.name!r} returned {len(results)} results for "
                               f"{len(payloads)} requests")
        return results, self._now() - start

    def _run_next(self) -> None:
        """One executor job: run the next batch, hand its outcomes to the event loop, and queue the next
        job if requests are waiting (else mark the batcher idle)."""
        try:
            batch, rows = self._collect()
            if batch:
                self._run_batch_of(batch, rows)
        finally:
            with self._lock:
                more = bool(self._pending)
                self._scheduled = more
            if more:
                self._executor.submit(self._run_next)
            else:
                self._loop.call_soon_threadsafe(self._mark_idle)

    def _run_batch_of(self, batch: list[_Pending], rows: int) -> None:
        started = self._now()
        try:
            results, inference_s = self._run([item.payload for item in batch])
        except Exception as batch_error:
            if len(batch) == 1:
                self._loop.call_soon_threadsafe(self._fail, batch[0], batch_error)
                return
            log.warning("batched forward failed; retrying its requests one by one",
                        extra={"model": self.name, "requests": len(batch), "error": repr(batch_error)})
            for item in batch:
                if item.future.done():
                    continue
                started = self._now()
                try:
                    (result,), inference_s = self._run([item.payload])
                except Exception as error:
                    self._loop.call_soon_threadsafe(self._fail, item, error)
                else:
                    self._loop.call_soon_threadsafe(self._answer, [item], [result], started, inference_s,
                                                    item.rows)
            return
        previous = self._forward_s.get(rows, inference_s)
        self._forward_s[rows] = previous + FORWARD_ESTIMATE_WEIGHT * (inference_s - previous)
        self._loop.call_soon_threadsafe(self._answer, batch, results, started, inference_s, rows)

    # -- outcomes (event loop) --------------------------------------------------------------------
    def _mark_idle(self) -> None:
        with self._lock:
            idle = not self._scheduled
        if idle:
            self._idle.set()

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
