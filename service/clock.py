"""The time that the batcher and the work lane read: a ``Clock`` protocol, the system's clock, and a
clock that moves only when it is told to.

A clock gives ``now()`` (seconds on a monotonic scale) and ``wait(condition, deadline)``: wait on a
``threading.Condition`` whose lock the caller holds, until it is notified or ``now()`` reaches
``deadline``. Like ``Condition.wait`` it may return early; callers re-check what they wait for.

* ``SYSTEM_CLOCK`` — ``time.perf_counter`` and ``Condition.wait(deadline − now)``: what the service runs
  on. Its ``now`` *is* ``time.perf_counter``, so reading it through a clock costs one attribute
  lookup, which the batcher and the lane do once, at construction.
* ``ManualClock`` — time that moves only by ``advance``, with an asyncio event loop whose ``time()`` is
  that clock (``run``): timers (request timeouts, ``asyncio.wait_for``, ``call_later``) fire when the
  clock is advanced past them, and a thread waiting in ``wait`` wakes when it is. A job or a forward
  pass "takes" d seconds by advancing the clock by d; the rules that depend on measured times (the
  batch window, the lane's admission) then see exactly the times a test gives them, however loaded
  the machine is.
"""

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from typing import Any, Protocol, TypeVar

T = TypeVar("T")


class Clock(Protocol):
    def now(self) -> float:
        """Seconds on a monotonic scale."""
        ...

    def wait(self, condition: threading.Condition, deadline: float) -> None:
        """Wait on ``condition`` (its lock held) until notified or until ``now() ≥ deadline``."""
        ...


class SystemClock:
    """``time.perf_counter``; waits are ``Condition.wait`` with the time left."""

    now = staticmethod(time.perf_counter)

    @staticmethod
    def wait(condition: threading.Condition, deadline: float) -> None:
        condition.wait(deadline - time.perf_counter())


SYSTEM_CLOCK = SystemClock()


class ManualClock:
    """A clock that stands still until ``advance`` moves it (thread-safe).

    ``wait`` blocks until the waiting thread is notified on its condition or the clock is advanced to
    its deadline, never on real time. ``until(predicate)`` blocks the caller until ``predicate()``
    holds, re-checked whenever the clock moves, a thread starts waiting in ``wait``, or ``notify`` is
    called (what a simulated job calls when it reaches a point a test waits for).

    ``guard_s`` of real time bounds them only so that a broken rule fails instead of hanging: a thread
    that waits that long with nothing advancing the clock moves it to its deadline and is recorded in
    ``stalls``, which ``run`` reports as an error; and ``run`` cancels a coroutine still running after
    twice that (one that awaits a timer the clock never reaches). These are hang guards, not margins:
    what a test asserts never depends on how long anything took.
    """

    def __init__(self, start: float = 1000.0, guard_s: float = 30.0):
        self._now = start
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._sleepers: list[threading.Condition] = []
        self.waits = 0                   # calls of ``wait`` that slept (a held batch, say)
        self.guard_s = guard_s
        self.stalls: list[float] = []    # deadlines that only the guard reached

    def now(self) -> float:
        return self._now

    @property
    def sleeping(self) -> int:
        """Threads waiting in ``wait`` now."""
        return len(self._sleepers)

    def advance(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError(f"a clock does not go back ({seconds} s)")
        with self._lock:
            self._now += seconds
            sleepers = list(self._sleepers)
            self._changed.notify_all()
        for condition in sleepers:       # outside our lock: a sleeper takes its lock, then ours
            with condition:
                condition.notify_all()

    def wait(self, condition: threading.Condition, deadline: float) -> None:
        with self._lock:
            if self._now >= deadline:
                return
            self._sleepers.append(condition)
            self.waits += 1
            self._changed.notify_all()
        try:
            if not condition.wait(self.guard_s):     # woken by its own notify, or by ``advance``
                with self._lock:
                    self.stalls.append(deadline)
                    self._now = max(self._now, deadline)
        finally:
            with self._lock:
                self._sleepers.remove(condition)
                self._changed.notify_all()

    def notify(self) -> None:
        """Wake ``until`` to re-check its predicate."""
        with self._lock:
            self._changed.notify_all()

    def until(self, predicate: Callable[[], bool]) -> None:
        """Block until ``predicate()`` holds (which must not take a lock that a thread holds while it
        waits in ``wait``); AssertionError if it does not within ``guard_s`` of real time."""
        with self._changed:
            if not self._changed.wait_for(predicate, self.guard_s):
                raise AssertionError(f"still not true after {self.guard_s} s: {predicate}")

    def event_loop(self) -> asyncio.AbstractEventLoop:
        """A new event loop whose ``time()`` is this clock."""
        clock = self

        class ManualTimeLoop(asyncio.SelectorEventLoop):
            def time(self) -> float:
                return clock.now()

        return ManualTimeLoop()

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """``asyncio.run(coro)`` on an event loop that keeps this clock's time; cancelled (a
        ``TimeoutError``) when it has not finished within ``2 × guard_s`` of real time."""
        async def guarded() -> T:
            task = asyncio.current_task()
            loop = asyncio.get_running_loop()
            guard = threading.Timer(2 * self.guard_s, loop.call_soon_threadsafe, (task.cancel,))
            guard.start()
            try:
                return await coro
            except asyncio.CancelledError:
                raise TimeoutError(f"still running after {2 * self.guard_s} s: a timer the clock "
                                   f"never reached?") from None
            finally:
                guard.cancel()

        with asyncio.Runner(loop_factory=self.event_loop) as runner:
            result = runner.run(guarded())
        if self.stalls:
            raise AssertionError(f"a thread waited for the clock to reach {self.stalls} and nothing "
                                 f"advanced it (the guard did, after {self.guard_s} s)")
        return result
