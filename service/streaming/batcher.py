"""The sequence batcher: one model's open streams, their states, and batched steps.

Every open stream owns one row (a *slot*) of a state matrix Z of shape (max_streams, D) that lives
with the model. A handler ``await batcher.advance(stream, x)`` with the chunk x (T, C) of its stream;
a worker task takes every chunk waiting when the model becomes free (at most ``max_batch_streams``),
groups them by length T and, in the model's thread under ``torch.inference_mode``, for each group

    z ← Z[slots];   z ← advance(z, x);   Z[slots] ← z;   y ← readout(z)

i.e. ONE batched call of the model's ``advance`` (``model.recurrence.euler_recurrence`` over the
chunk) for all the streams of the group. Rows are independent, so a stream's answer does not depend
on which streams it shared a step with. With ``max_batch_streams`` = 1 every chunk runs alone: the
unbatched baseline of ``bench/streaming.py``.

Rules, each raising ``StreamRuleError`` with its reason (see ``afrnn_schemas.stream.CLOSE_CODES``):

* ``open`` past ``max_streams`` open streams → ``too_many_streams`` (the caller retries later);
* a chunk of more than ``max_chunk_steps`` steps → ``chunk_too_large``; one that would take the stream
  past ``max_steps`` → ``too_long``; a second chunk while one is in flight → ``bad_message``;
* a stream without a chunk for ``idle_timeout_s`` is closed by the reaper (``idle_timeout``);
* ``advance`` on a closed stream raises the reason it was closed with.

A stream that breaks a rule is closed by its handler; the other streams never see it. Observers
(metrics) are passed in: ``on_open()``, ``on_close(reason)``, ``on_step(streams, steps, seconds)``.
"""

import asyncio
import contextlib
import itertools
import logging
import math
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
import torch

from service.errors import RETRY_AFTER_SHUTDOWN_S
from service.streaming.errors import StreamRuleError
from service.streaming.stepper import StreamStepper

log = logging.getLogger(__name__)


@dataclass
class ChunkResult:
    """One chunk's answer: the readout after its last step."""

    output: np.ndarray            # (classes,) probabilities (or the raw readout)
    steps: int                    # steps the stream has seen, this chunk included
    batch_streams: int            # streams advanced in the same batched call
    queue_wait_s: float           # submission → start of the batched step
    step_s: float                 # that batched step (all groups of the tick)


@dataclass(eq=False)
class Stream:
    """One open stream: its slot in the state matrix and its bookkeeping (touched on the event loop)."""

    id: str
    slot: int
    steps: int = 0
    last_active: float = field(default_factory=time.monotonic)
    closed_reason: str | None = None
    in_flight: bool = False
    fresh: bool = True            # its slot still holds the previous owner's state: reset before use
    closed: asyncio.Event = field(default_factory=asyncio.Event)
    owner: object = None          # the session object that serves the stream (the hub's lookups)

    @property
    def is_open(self) -> bool:
        return self.closed_reason is None


@dataclass(eq=False)
class _Pending:
    stream: Stream
    x: np.ndarray                 # (T, C) float32, normalised
    future: asyncio.Future
    enqueued_at: float = field(default_factory=time.perf_counter)


class SequenceBatcher:
    """The open streams of one model and the worker that advances them in batched steps.

    Args:
        name: the model's name (logs, errors).
        stepper: the model's ``initial_state`` / ``advance`` / ``readout``.
        max_streams: open streams at most (the rows of the state matrix).
        max_steps: steps one stream may receive in all.
        max_chunk_steps: steps one chunk may hold.
        idle_timeout_s: a stream without a chunk this long is closed.
        max_batch_streams: chunks advanced together at most (1: no batching).
        executor: the model's single thread (shared with its ``DynamicBatcher``, so that stream steps
            and forward passes of one model never run concurrently); by default a private one.
        id_factory: ``() -> str``, the ids of new streams (default: a counter).
    """

    def __init__(self, name: str, stepper: StreamStepper, *, max_streams: int, max_steps: int,
                 max_chunk_steps: int, idle_timeout_s: float, max_batch_streams: int | None = None,
                 executor: ThreadPoolExecutor | None = None, id_factory: Callable[[], str] | None = None,
                 on_open: Callable[[], None] | None = None,
                 on_close: Callable[[str], None] | None = None,
                 on_step: Callable[[int, int, float], None] | None = None):
        if min(max_streams, max_steps, max_chunk_steps) < 1:
            raise ValueError(f"max_streams, max_steps and max_chunk_steps must be ≥ 1, got {max_streams}, "
                             f"{max_steps}, {max_chunk_steps}")
        if idle_timeout_s <= 0:
            raise ValueError(f"idle_timeout_s must be > 0, got {idle_timeout_s}")
        self.name = name
        self.stepper = stepper
        self.max_streams = max_streams
        self.max_steps = max_steps
        self.max_chunk_steps = max_chunk_steps
        self.idle_timeout_s = idle_timeout_s
        self.max_batch_streams = max_batch_streams or max_streams
        self._own_executor = executor is None
        self._executor = executor or ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"stream-{name}")
        counter = itertools.count(1)
        self._new_id = id_factory or (lambda: str(next(counter)))
        self._on_open, self._on_close, self._on_step = on_open, on_close, on_step
        with torch.inference_mode():
            self._states = stepper.initial_row.expand(max_streams, -1).clone()    # Z, (max_streams, D)
        self._free_slots = list(range(max_streams - 1, -1, -1))                  # pop() takes slot 0 first
        self._release_after_step: list[int] = []
        self.streams: dict[str, Stream] = {}
        self.recently_closed: OrderedDict[str, str] = OrderedDict()     # id → reason, the last 1024
        self._pending: dict[str, _Pending] = {}
        self._wakeup: asyncio.Event | None = None
        self._worker: asyncio.Task | None = None
        self._reaper: asyncio.Task | None = None
        self._closing = False
        self._last_step_s = 0.0

    # -- lifecycle --------------------------------------------------------------------------------
    def start(self) -> None:
        """Start the worker and the idle reaper on the running event loop."""
        if self._worker is None:
            loop = asyncio.get_running_loop()
            self._wakeup = asyncio.Event()
            self._worker = loop.create_task(self._work(), name=f"streams-{self.name}")
            self._reaper = loop.create_task(self._reap(), name=f"streams-reaper-{self.name}")

    async def close(self) -> None:
        """Close every stream (reason ``shutdown``), fail the waiting chunks, stop the tasks."""
        self._closing = True
        for stream in list(self.streams.values()):
            self.close_stream(stream, "shutdown")
        for task in (self._worker, self._reaper):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        if self._own_executor:
            self._executor.shutdown(wait=False)

    @property
    def open_streams(self) -> int:
        return len(self.streams)

    # -- the stream side --------------------------------------------------------------------------
    def open(self) -> Stream:
        """A new stream at z_0, or ``StreamRuleError('too_many_streams' | 'shutdown')``."""
        if self._closing:
            raise self._shutdown_error()
        if not self._free_slots:
            raise StreamRuleError("too_many_streams", f"model {self.name!r} has {len(self.streams)} open "
                                  f"streams (the limit is stream_max_open = {self.max_streams})",
                                  retry_after_s=max(1, math.ceil(min(self.idle_timeout_s, 5.0))))
        stream = Stream(self._new_id(), self._free_slots.pop())
        self.streams[stream.id] = stream
        if self._on_open is not None:
            self._on_open()
        return stream

    def get(self, stream_id: str) -> Stream | None:
        return self.streams.get(stream_id)

    def close_stream(self, stream: Stream, reason: str) -> bool:
        """Close ``stream`` with ``reason`` (idempotent: False if it was closed already)."""
        if not stream.is_open:
            return False
        stream.closed_reason = reason
        stream.closed.set()
        self.streams.pop(stream.id, None)
        self.recently_closed[stream.id] = reason
        if len(self.recently_closed) > 1024:
            self.recently_closed.popitem(last=False)
        pending = self._pending.pop(stream.id, None)
        if pending is not None and not pending.future.done():
            pending.future.set_exception(self._closed_error(stream))
        if stream.in_flight:
            self._release_after_step.append(stream.slot)     # the worker still writes its row
        else:
            self._free_slots.append(stream.slot)
        if self._on_close is not None:
            self._on_close(reason)
        return True

    def check_chunk(self, stream: Stream, steps: int) -> None:
        """The size rules for a chunk of ``steps`` steps, without queueing it."""
        if not stream.is_open:
            raise self._closed_error(stream)
        if steps > self.max_chunk_steps:
            raise StreamRuleError("chunk_too_large", f"a chunk holds at most stream_max_chunk_steps = "
                                  f"{self.max_chunk_steps} steps, got {steps}", loc=["values"])
        if stream.steps + steps > self.max_steps:
            raise StreamRuleError("too_long", f"the stream would reach {stream.steps + steps} steps; "
                                  f"max_steps = {self.max_steps} for model {self.name!r} (it has seen "
                                  f"{stream.steps})", loc=["values"])

    async def advance(self, stream: Stream, x: np.ndarray) -> ChunkResult:
        """Queue the chunk x (T, C) of ``stream`` and wait for the readout after its last step."""
        if self._worker is None:
            raise RuntimeError(f"sequence batcher {self.name!r} was not started")
        self.check_chunk(stream, x.shape[0])
        if stream.in_flight or stream.id in self._pending:
            raise StreamRuleError("bad_message", "a chunk of this stream is still being processed; send the "
                                  "next one after its answer")
        stream.last_active = time.monotonic()
        future = asyncio.get_running_loop().create_future()
        self._pending[stream.id] = _Pending(stream, x, future)
        self._wakeup.set()
        result = await future
        stream.last_active = time.monotonic()
        return result

    def _shutdown_error(self) -> StreamRuleError:
        return StreamRuleError("shutdown", f"model {self.name!r} is shutting down",
                               retry_after_s=RETRY_AFTER_SHUTDOWN_S)

    def _closed_error(self, stream: Stream) -> StreamRuleError:
        reason = stream.closed_reason
        if reason == "idle_timeout":
            return StreamRuleError("idle_timeout", f"stream {stream.id} was closed after "
                                   f"stream_idle_timeout_s = {self.idle_timeout_s:g} s without a chunk")
        if reason == "shutdown":
            return self._shutdown_error()
        return StreamRuleError("not_found", f"stream {stream.id} is closed ({reason})")

    # -- the worker side --------------------------------------------------------------------------
    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wakeup.clear()
                await self._wakeup.wait()
                continue
            batch: list[_Pending] = []
            for key in list(itertools.islice(self._pending, self.max_batch_streams)):
                item = self._pending.pop(key)
                if not item.future.done():
                    item.stream.in_flight = True
                    batch.append(item)
            if not batch:
                continue
            fresh = [item.stream.slot for item in batch if item.stream.fresh]
            started = time.perf_counter()
            try:
                outputs, step_s = await loop.run_in_executor(self._executor, self._step, batch, fresh)
            except Exception as error:                    # noqa: BLE001 — a model fault fails this tick only
                log.error("stream step failed", exc_info=error, extra={"model": self.name,
                                                                       "streams": len(batch)})
                for item in batch:
                    self._finish(item)
                    self.close_stream(item.stream, "internal")
                    if not item.future.done():
                        item.future.set_exception(StreamRuleError(
                            "internal", "the model failed on this step; the stream is closed"))
                continue
            finally:
                self._release_slots()
            self._last_step_s = step_s
            steps = 0
            for item, output in zip(batch, outputs, strict=True):
                self._finish(item)
                n = item.x.shape[0]
                steps += n
                if item.stream.is_open:
                    item.stream.steps += n
                if not item.future.done():
                    item.future.set_result(ChunkResult(output, item.stream.steps, len(batch),
                                                       started - item.enqueued_at, step_s))
            if self._on_step is not None:
                self._on_step(len(batch), steps, step_s)

    @staticmethod
    def _finish(item: _Pending) -> None:
        item.stream.in_flight = False
        item.stream.fresh = False

    def _release_slots(self) -> None:
        if self._release_after_step:
            self._free_slots.extend(self._release_after_step)
            self._release_after_step.clear()

    def _step(self, batch: list[_Pending], fresh: list[int]) -> tuple[list[np.ndarray], float]:
        """In the model's thread: reset fresh slots, then one ``advance`` per chunk length."""
        start = time.perf_counter()
        outputs: list[np.ndarray | None] = [None] * len(batch)
        with torch.inference_mode():
            device = self.stepper.device
            if fresh:
                self._states[fresh] = self.stepper.initial_row
            groups: dict[int, list[int]] = {}
            for i, item in enumerate(batch):
                groups.setdefault(item.x.shape[0], []).append(i)
            for members in groups.values():
                slots = torch.tensor([batch[i].stream.slot for i in members], device=self._states.device)
                x = np.stack([batch[i].x for i in members]) if len(members) > 1 else batch[members[0]].x[None]
                z = self._states.index_select(0, slots)
                z = self.stepper.advance(z, torch.from_numpy(x).to(device, non_blocking=True))
                self._states.index_copy_(0, slots, z)
                probabilities = self.stepper.output(z).cpu().numpy()
                for row, i in enumerate(members):
                    outputs[i] = probabilities[row]
        return outputs, time.perf_counter() - start

    async def _reap(self) -> None:
        """Close streams idle for ``idle_timeout_s`` (checked a few times per timeout)."""
        period = min(1.0, self.idle_timeout_s / 4)
        while True:
            await asyncio.sleep(period)
            now = time.monotonic()
            for stream in list(self.streams.values()):
                if not stream.in_flight and stream.id not in self._pending \
                        and now - stream.last_active > self.idle_timeout_s:
                    self.close_stream(stream, "idle_timeout")
