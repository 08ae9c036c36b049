"""Admission control: every request's deadline, the gate in front of the work routes, the bounded lane
for heavy non-batched work, and the Retry-After estimate.

Three pieces, in the style of ``service.batching`` (no FastAPI dependency; observers passed in):

* **the deadline** — the request middleware stamps each request with ``now + request_timeout_s`` when
  its headers arrive (``request_deadline``, a context variable, so it reaches the batcher and the work
  lane without threading it through every handler). Work whose deadline has passed is never started;
  its caller gets ``RequestTimeoutError`` (→ 504).
* **``AdmissionGate``** — a counter of work requests admitted and not yet answered. At
  ``max_inflight_requests`` the middleware answers 503 *before the body is read or parsed*, so an
  overload costs one dict lookup per rejected request, not a JSON parse.
* **``WorkLane``** — a FIFO queue with a concurrency cap for CPU-heavy work that cannot be batched: the
  physics reference of ``/pendulum/predict``, stability reports and their PNG figures. At most
  ``max_concurrency`` jobs run at once (each in the lane's thread pool), at most ``max_queue_length``
  wait; a job still waiting at its deadline is dropped, and one that is running when its deadline
  passes answers 504 at once (its thread finishes the job, holding its slot, so the cap stays true).
  A job that would have to wait is refused at once (503 + Retry-After) when it cannot finish in time.
  Jobs differ by orders of magnitude (a one-state physics reference against sixteen states × 290
  steps; a pendulum's stability report against CIFAR-10's), so each job names its *kind* and its
  *size* u in units of work, and its estimated time is

      ŝ(job) = (a + b·u) × (1 + 2·r),

  with a + b·u the least-squares line through the recent (size, seconds) of its kind (a fixed cost
  and a cost per unit, from exponentially weighted moments; ``JobCost``) and r the mean relative
  deviation of the times from that line (kept as TCP's retransmission timer keeps its RTTVAR,
  RFC 6298): a high estimate, because the times are measured under a load that changes, and an
  estimate that is too low costs a 504 after the whole deadline where one that is too high costs an
  early 503. The line matters: small jobs cost mostly their fixed part, and their time *per unit*
  extrapolated to a large job would refuse it on an idle service. ŝ is 0 — a job is not refused on a
  guess — while the kind has not been seen, and for a job more than twice the size of the largest one
  seen (a line fitted to small jobs says little that far out). With c the cap, the job is refused when

      ( Σ ŝ(waiting) + Σ max(0, ŝ(running) − elapsed) ) / c + ŝ(job)  >  the time left until its deadline,

  so overload answers in milliseconds instead of with a 504 after ``request_timeout_s``. A job that is
  admitted and still waiting when only ŝ(job) is left before its deadline is refused then (503), and
  so is one whose turn comes too late: it could no longer finish, and its slot goes to the next job.
  Each finished job re-judges the waiting ones with the estimate it has just fed (``_rejudge``): the
  first jobs of a kind queue with no estimate, and once one has run, the rest are refused as soon as
  they can no longer finish, not dropped at their deadline with a 504.
  A job that finds a free slot is refused too when ŝ(job) exceeds the time its request has left (it
  spent the rest before it reached the lane, e.g. in the batcher ahead of a physics reference).

``LoadEstimate`` keeps the recent time per batch row and the ``JobCost`` of each kind of heavy job
(fed by the batchers' and the lane's observers) and turns the current backlog into a Retry-After:

    Retry-After = ⌈ queued rows × (time per row) + (the lane's backlog, as above) / max_concurrency ⌉,

at least 1 s.
"""

import asyncio
import contextvars
import logging
import math
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

from service.batching import BatcherClosedError, QueueFullError, RequestTimeoutError
from service.clock import SYSTEM_CLOCK, Clock

R = TypeVar("R")

log = logging.getLogger(__name__)

# perf_counter() time by which the current request must be answered (None outside a request).
request_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar("request_deadline",
                                                                                default=None)


def remaining_s(deadline: float | None, now: Callable[[], float] = time.perf_counter) -> float | None:
    """Seconds left until ``deadline`` (None: no deadline), by the clock ``now``."""
    return None if deadline is None else deadline - now()


def check_deadline(deadline: float | None, what: str, now: Callable[[], float] = time.perf_counter) -> None:
    """``RequestTimeoutError`` when ``deadline`` has passed by the clock ``now`` (called between
    pieces of long work)."""
    if deadline is not None and now() >= deadline:
        raise RequestTimeoutError(f"{what} did not finish within request_timeout_s")


def _measures_cost(job: asyncio.Future) -> bool:
    """Whether a finished lane job's time says what a job of its kind and size costs: it completed,
    or its own deadline check stopped it (``RequestTimeoutError``; then the time is a lower bound of
    the cost, which can only raise an estimate that let the job start too late). A job that failed on
    its input, or was cancelled, stopped early for reasons unrelated to its size."""
    if job.cancelled():
        return False
    error = job.exception()
    return error is None or isinstance(error, RequestTimeoutError)


class JobCost:
    """The recent cost of one kind of heavy job: seconds ≈ a + b·work, with a mean relative deviation.

    (a, b) is the weighted least-squares line through the observed (work, seconds), from exponentially
    weighted moments (weight ``alpha`` for the newest): b = cov(u, s) / var(u), a = E[s] − b·E[u],
    kept at a, b ≥ 0 (a negative fixed cost gives the line through the origin and the mean time per
    unit; a negative slope, a constant). While every size seen is the same (var(u) ≈ 0) the line is
    the constant E[s]: the cost of that size, with no guess at how it scales. The deviation r is the
    exponential mean of |s − line(u)| / line(u), measured before each observation joins the line;
    the first observation gives r = ½, as RFC 6298's first RTTVAR is half the first sample.
    """

    def __init__(self, alpha: float, work: float, seconds: float):
        self.alpha = alpha
        self.mean_u, self.mean_s = work, seconds
        self.mean_uu, self.mean_us = work * work, work * seconds
        self.relative_dev = 0.5
        self.max_work = work

    def line(self, work: float) -> float:
        """a + b·work, the expected seconds of a job of this size."""
        var = self.mean_uu - self.mean_u ** 2
        if var <= (0.01 * self.mean_u) ** 2:                     # one size seen (within 1 %)
            return self.mean_s
        slope = max(0.0, (self.mean_us - self.mean_u * self.mean_s) / var)
        fixed = self.mean_s - slope * self.mean_u
        if fixed < 0.0:
            return work * self.mean_s / self.mean_u
        return fixed + slope * work

    def observe(self, work: float, seconds: float) -> None:
        a = self.alpha
        expected = self.line(work)
        if expected > 0.0:
            self.relative_dev = (1 - a) * self.relative_dev + a * abs(seconds - expected) / expected
        self.mean_u = (1 - a) * self.mean_u + a * work
        self.mean_s = (1 - a) * self.mean_s + a * seconds
        self.mean_uu = (1 - a) * self.mean_uu + a * work * work
        self.mean_us = (1 - a) * self.mean_us + a * work * seconds
        self.max_work = max(self.max_work, work)


class LoadEstimate:
    """Recent service times, for Retry-After and the lane's admission. ``alpha`` weighs the newest
    observation."""

    def __init__(self, alpha: float = 0.2, deviations: float = 2.0):
        self.alpha = alpha
        self.deviations = deviations             # k of ŝ = line(u) × (1 + k·r)
        self.row_s = 0.0                         # seconds per row of a batched forward pass
        self.jobs: dict[str, JobCost] = {}       # per kind of heavy job

    def _mix(self, old: float, new: float) -> float:
        return new if old == 0.0 else (1 - self.alpha) * old + self.alpha * new

    def observe_batch(self, rows: int, seconds: float) -> None:
        if rows > 0:
            self.row_s = self._mix(self.row_s, seconds / rows)

    def observe_job(self, kind: str, work: float, seconds: float) -> None:
        if work <= 0:
            return
        if kind not in self.jobs:
            self.jobs[kind] = JobCost(self.alpha, work, seconds)
        else:
            self.jobs[kind].observe(work, seconds)

    def job_seconds(self, kind: str, work: float) -> float:
        """A high estimate of a heavy job's seconds, line(u) × (1 + k·r); 0 while its kind has not been
        observed, or beyond twice the largest size observed."""
        cost = self.jobs.get(kind)
        if cost is None or work > 2 * cost.max_work:
            return 0.0
        return cost.line(work) * (1 + self.deviations * cost.relative_dev)

    def retry_after_s(self, queued_rows: int, lane_backlog_s: float, job_concurrency: int) -> int:
        wait = queued_rows * self.row_s + lane_backlog_s / max(1, job_concurrency)
        return max(1, math.ceil(wait))


class AdmissionGate:
    """Counts the work requests admitted and not yet answered; ``try_enter`` fails at the limit.
    (``afrnn_inflight_requests`` reads ``inflight`` at scrape time.)"""

    def __init__(self, max_inflight: int):
        if max_inflight < 1:
            raise ValueError(f"max_inflight must be ≥ 1, got {max_inflight}")
        self.max_inflight = max_inflight
        self.inflight = 0

    def try_enter(self) -> bool:
        if self.inflight >= self.max_inflight:
            return False
        self.inflight += 1
        return True

    def leave(self) -> None:
        self.inflight -= 1


@dataclass
class _Waiter:
    """A job waiting for a lane slot: its kind and size, its deadline, its current estimate, its timer."""

    kind: str
    work: float
    deadline: float | None
    estimate: float
    timer: asyncio.TimerHandle | None = None


class WorkLane:
    """A bounded FIFO queue with a concurrency cap for heavy jobs, each run in a worker thread.

    Args:
        name: for thread names, logs and error messages.
        max_concurrency: jobs running at once (threads of the lane's pool).
        max_queue_length: jobs waiting beyond which ``run`` raises ``QueueFullError``.
        retry_after: ``() -> seconds`` for the ``QueueFullError`` (by default 1).
        job_seconds: optional ``(kind, work) -> seconds``, a job's estimated time (0 when unknown);
            with it, a job that could not finish before its deadline is refused before it queues.
        on_job: optional observer ``(kind, work, seconds)`` of each job that completed or was stopped
            at its deadline (``_measures_cost``).
        on_queue_depth: optional observer of the number of waiting jobs.
        clock: what deadlines, elapsed and measured times are read from (``service.clock``; the
            system's ``time.perf_counter`` by default, the clock of ``request_deadline``). The
            lane's timers run on the event loop's own time.
    """

    def __init__(self, name: str, *, max_concurrency: int, max_queue_length: int,
                 retry_after: Callable[[], int] | None = None,
                 job_seconds: Callable[[str, float], float] | None = None,
                 on_job: Callable[[str, float, float], None] | None = None,
                 on_queue_depth: Callable[[int], None] | None = None,
                 clock: Clock = SYSTEM_CLOCK):
        if max_concurrency < 1:
            raise ValueError(f"max_concurrency must be ≥ 1, got {max_concurrency}")
        if max_queue_length < 0:
            raise ValueError(f"max_queue_length must be ≥ 0, got {max_queue_length}")
        self.name = name
        self.max_concurrency = max_concurrency
        self.max_queue_length = max_queue_length
        self._retry_after = retry_after or (lambda: 1)
        self._job_seconds = job_seconds or (lambda kind, work: 0.0)
        self._on_job = on_job
        self._on_queue_depth = on_queue_depth
        self._now = clock.now
        self._executor = ThreadPoolExecutor(max_workers=max_concurrency, thread_name_prefix=f"lane-{name}")
        self._waiting: deque[asyncio.Future] = deque()
        self._waiters: dict[asyncio.Future, _Waiter] = {}     # waiting job → what it is, its timer
        self._started: dict[int, tuple[float, float]] = {}     # running job → (start, estimated seconds)
        self._running = 0
        self._idle: asyncio.Event | None = None
        self._closing = False

    @property
    def queue_depth(self) -> int:
        return sum(1 for w in self._waiting if not w.done())

    @property
    def running(self) -> int:
        return self._running

    @property
    def backlog_s(self) -> float:
        """Estimated seconds of work ahead of a new job: the waiting jobs' estimates plus what is left
        of the running ones' (summed over slots; divide by the cap for the wait)."""
        now = self._now()
        waiting = sum(w.estimate for turn, w in self._waiters.items() if not turn.done())
        return waiting + sum(max(0.0, est - (now - start)) for start, est in self._started.values())

    def _depth_changed(self) -> None:
        if self._on_queue_depth is not None:
            self._on_queue_depth(self.queue_depth)

    async def run(self, fn: Callable[..., R], *args: Any, deadline: float | None = None,
                  kind: str = "job", work: float = 1.0) -> R:
        """``fn(*args)`` in a lane thread once a slot is free; ``deadline`` defaults to the request's.
        ``kind`` and ``work`` (the job's size in units of work of its kind, e.g. states × steps of a
        physics reference) feed the estimate by which a job that cannot finish in time is refused."""
        if self._closing:
            raise BatcherClosedError(f"{self.name} is shutting down")
        deadline = request_deadline.get() if deadline is None else deadline
        check_deadline(deadline, f"{self.name} job", self._now)
        loop = asyncio.get_running_loop()
        estimate = self._job_seconds(kind, work)
        waited = self._running >= self.max_concurrency or bool(self.queue_depth)
        if waited:
            if self.queue_depth >= self.max_queue_length:
                raise QueueFullError(f"{self.name} has {self.queue_depth} jobs queued (the limit is "
                                     f"{self.max_queue_length})",
                                     self._retry_after())
            left, ahead = remaining_s(deadline, self._now), self.backlog_s
            if left is not None and estimate > 0:
                expected = ahead / self.max_concurrency + estimate
                if expected > left:
                    raise QueueFullError(f"{self.name} is busy: this {kind} job would finish in about "
                                         f"{expected:.1f} s ({self.queue_depth} waiting, {ahead:.1f} s of "
                                         f"work ahead, about {estimate:.1f} s its own), after the "
                                         f"request's {max(left, 0):.1f} s left", self._retry_after())
            turn = loop.create_future()
            self._waiting.append(turn)
            waiter = self._waiters[turn] = _Waiter(kind, work, deadline, estimate)
            self._depth_changed()
            self._arm(turn, waiter)
            try:
                await turn                 # set by _release: the slot is handed over (already counted)
            except BaseException:
                if turn.done() and not turn.cancelled() and turn.exception() is None:
                    self._release()        # the slot was handed over as we gave up: pass it on
                raise
            finally:
                if waiter.timer is not None:
                    waiter.timer.cancel()
                if turn in self._waiting:
                    self._waiting.remove(turn)
                self._waiters.pop(turn, None)
                self._depth_changed()
            estimate = waiter.estimate     # re-judged while it waited (``_rejudge``)
        else:
            left = remaining_s(deadline, self._now)
            if left is not None and estimate > left:       # the request spent its time before the lane
                raise QueueFullError(f"{self.name} is busy: this {kind} job takes about {estimate:.1f} s, "
                                     f"and the request has {max(left, 0):.1f} s left", self._retry_after())
            self._running += 1
        try:
            check_deadline(deadline, f"{self.name} job", self._now)
            left = remaining_s(deadline, self._now)
            if waited and left is not None and estimate > left:
                raise QueueFullError(self._too_late(kind, estimate, left), self._retry_after())
        except (RequestTimeoutError, QueueFullError):
            self._release()
            raise
        started = self._now()
        job = loop.run_in_executor(self._executor, fn, *args)
        self._started[id(job)] = (started, estimate)

        def finished(_):
            self._started.pop(id(job), None)
            if self._on_job is not None and _measures_cost(job):
                self._on_job(kind, work, self._now() - started)
                self._rejudge()
            self._release()

        job.add_done_callback(finished)
        left = remaining_s(deadline, self._now)
        try:
            return await asyncio.wait_for(asyncio.shield(job), left)
        except TimeoutError:
            raise RequestTimeoutError(f"{self.name} job did not finish within request_timeout_s") from None

    def _arm(self, turn: asyncio.Future, waiter: "_Waiter") -> None:
        """(Re)set a waiting job's timer: refused once only its own estimate is left (503), dropped at
        the deadline (504) while it has no estimate."""
        if waiter.timer is not None:
            waiter.timer.cancel()
            waiter.timer = None
        left = remaining_s(waiter.deadline, self._now)
        if left is not None:
            waiter.timer = asyncio.get_running_loop().call_later(
                max(0.0, left - waiter.estimate), self._give_up, turn, waiter)

    def _rejudge(self) -> None:
        """After a job has finished and fed the estimate: the waiting jobs' estimates move with it, and
        so do their timers. The first jobs of a kind queue with no estimate (0: dropped at their
        deadline with a 504); once one has run, the rest are refused as soon as they can no longer
        finish (503 + Retry-After), their slot time going to the jobs behind them."""
        for turn, waiter in list(self._waiters.items()):
            if turn.done():
                continue
            estimate = self._job_seconds(waiter.kind, waiter.work)
            if estimate != waiter.estimate:
                waiter.estimate = estimate
                self._arm(turn, waiter)

    def _too_late(self, kind: str, estimate: float, left: float) -> str:
        return (f"{self.name} is busy: this {kind} job is still waiting for a slot with {max(left, 0):.1f} s "
                f"left before the request's deadline, and takes about {estimate:.1f} s")

    def _give_up(self, turn: asyncio.Future, waiter: "_Waiter") -> None:
        """The waiting job's timer: with an estimate, it can no longer finish in time (503, retry
        later); without one, its deadline has passed (504)."""
        if turn.done():
            return
        if waiter.estimate > 0:
            left = remaining_s(waiter.deadline, self._now)
            turn.set_exception(QueueFullError(self._too_late(waiter.kind, waiter.estimate, left),
                                              self._retry_after()))
        else:
            turn.set_exception(RequestTimeoutError(
                f"{self.name} job waited past request_timeout_s without a free slot"))

    def _release(self) -> None:
        """A slot is free: hand it to the first live waiter, else count it free."""
        while self._waiting:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                self._depth_changed()
                return
        self._running -= 1
        if self._running == 0 and self._idle is not None:
            self._idle.set()

    async def close(self, drain_timeout_s: float | None = None) -> None:
        """Refuse new jobs, let the queued and running ones finish (up to ``drain_timeout_s``)."""
        self._closing = True
        if self._running:
            self._idle = asyncio.Event()
            try:
                await asyncio.wait_for(self._idle.wait(), drain_timeout_s)
            except TimeoutError:
                log.warning("work lane did not drain in time", extra={"lane": self.name,
                                                                       "running": self._running})
        self._executor.shutdown(wait=False, cancel_futures=True)
