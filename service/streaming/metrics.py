"""Stream metrics, registered on the app's own ``CollectorRegistry`` (see ``service.metrics``).

=====================================  =========  ======================================================
afrnn_streams_open                     gauge      model — streams open now
afrnn_streams_opened_total             counter    model
afrnn_streams_closed_total             counter    model, reason — final, client_closed, idle_timeout,
                                                  too_long, chunk_too_large, invalid_input, bad_message,
                                                  shutdown, internal (``afrnn_schemas.stream``)
afrnn_stream_steps_total               counter    model — time steps advanced (rate() = steps/s)
afrnn_stream_steps_per_second          gauge      model — steps advanced over the last 10 s, per second
afrnn_stream_batch_streams             histogram  model — streams advanced in one batched step
afrnn_stream_step_seconds              histogram  model — one batched step (the model's thread)
afrnn_stream_chunk_seconds             histogram  model — server time of one chunk, decode to answer
=====================================  =========  ======================================================
"""

import time
from collections import deque

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

from service.metrics import BATCH_BUCKETS, LATENCY_BUCKETS

RATE_WINDOW_S = 10.0


class _Rate:
    """Steps per second over the last ``RATE_WINDOW_S`` seconds (evaluated when scraped)."""

    def __init__(self) -> None:
        self.events: deque[tuple[float, int]] = deque()

    def add(self, steps: int) -> None:
        now = time.monotonic()
        self.events.append((now, steps))
        self._trim(now)

    def _trim(self, now: float) -> None:
        while self.events and now - self.events[0][0] > RATE_WINDOW_S:
            self.events.popleft()

    def value(self) -> float:
        self._trim(time.monotonic())
        return sum(n for _, n in self.events) / RATE_WINDOW_S


class StreamMetrics:
    def __init__(self, registry: CollectorRegistry):
        r = registry
        self.open = Gauge("afrnn_streams_open", "Streams open now", ["model"], registry=r)
        self.opened = Counter("afrnn_streams_opened", "Streams opened", ["model"], registry=r)
        self.closed = Counter("afrnn_streams_closed", "Streams closed, by reason", ["model", "reason"],
                              registry=r)
        self.steps = Counter("afrnn_stream_steps", "Time steps advanced by streams", ["model"], registry=r)
        self.steps_per_second = Gauge("afrnn_stream_steps_per_second",
                                      f"Stream steps per second over the last {RATE_WINDOW_S:g} s",
                                      ["model"], registry=r)
        self.batch_streams = Histogram("afrnn_stream_batch_streams", "Streams advanced in one batched step",
                                       ["model"], buckets=BATCH_BUCKETS, registry=r)
        self.step_seconds = Histogram("afrnn_stream_step_seconds", "Time of one batched stream step",
                                      ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self.chunk_seconds = Histogram("afrnn_stream_chunk_seconds", "Server time of one chunk",
                                       ["model"], buckets=LATENCY_BUCKETS, registry=r)
        self._rates: dict[str, _Rate] = {}

    def for_model(self, model: str) -> dict:
        """The observer hooks of one model's ``SequenceBatcher``."""
        rate = self._rates.setdefault(model, _Rate())
        self.steps_per_second.labels(model=model).set_function(rate.value)
        self.open.labels(model=model).set(0)
        opened, open_ = self.opened.labels(model=model), self.open.labels(model=model)
        steps, batch, step_s = (self.steps.labels(model=model), self.batch_streams.labels(model=model),
                                self.step_seconds.labels(model=model))

        def on_open() -> None:
            opened.inc()
            open_.inc()

        def on_close(reason: str) -> None:
            open_.dec()
            self.closed.labels(model=model, reason=reason).inc()

        def on_step(streams: int, n_steps: int, seconds: float) -> None:
            steps.inc(n_steps)
            rate.add(n_steps)
            batch.observe(streams)
            step_s.observe(seconds)

        return {"on_open": on_open, "on_close": on_close, "on_step": on_step}
