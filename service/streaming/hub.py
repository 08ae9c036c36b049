"""The streams of one app: a ``SequenceBatcher`` per model, created on the model's first stream.

Limits come from ``service.config.Settings`` (``stream_*``); the longest stream is the model's trained
sequence length (its manifest's ``input.sequence_length``). A model's batcher shares the model's
thread with its ``DynamicBatcher``. Stream ids are random (``secrets.token_urlsafe``): the HTTP
fallback addresses a stream by its id alone, so an id must not be guessable.
"""

import secrets
from typing import Any

from prometheus_client import CollectorRegistry

from afrnn_schemas.stream import StreamOpen
from service.streaming.batcher import SequenceBatcher
from service.streaming.errors import StreamRuleError
from service.streaming.metrics import StreamMetrics
from service.streaming.session import ClassifierStream
from service.streaming.stepper import StreamStepper


class StreamHub:
    """``settings``: ``stream_max_open``, ``stream_idle_timeout_s``, ``stream_max_chunk_steps``,
    ``stream_max_batch`` (None: every waiting stream in one step)."""

    def __init__(self, settings: Any, registry: CollectorRegistry):
        self.settings = settings
        self.metrics = StreamMetrics(registry)
        self.batchers: dict[str, SequenceBatcher] = {}

    def batcher_for(self, entry: Any) -> SequenceBatcher:
        """The sequence batcher of a ready registry entry (``service.registry.ServedModel``)."""
        batcher = self.batchers.get(entry.name)
        if batcher is not None:
            return batcher
        if entry.manifest.output.kind != "classes":
            raise StreamRuleError("unsupported_model", f"model {entry.name!r} (task {entry.manifest.task}) "
                                  "is not a classifier; streams serve classifiers (use /pendulum/predict)")
        stepper = StreamStepper(entry.name, entry.api.module, entry.api.device)
        s = self.settings
        batcher = SequenceBatcher(
            entry.name, stepper, max_streams=s.stream_max_open,
            max_steps=entry.manifest.input.sequence_length,
            max_chunk_steps=s.stream_max_chunk_steps, idle_timeout_s=s.stream_idle_timeout_s,
            max_batch_streams=s.stream_max_batch, executor=entry.executor,
            id_factory=lambda: secrets.token_urlsafe(12), **self.metrics.for_model(entry.name))
        batcher.start()
        self.batchers[entry.name] = batcher
        return batcher

    def open(self, entry: Any, options: StreamOpen) -> ClassifierStream:
        batcher = self.batcher_for(entry)
        stream = batcher.open()
        session = ClassifierStream(entry.name, entry.manifest.version, entry.api, batcher, stream, options)
        stream.owner = session
        return session

    def session(self, entry: Any, stream_id: str) -> ClassifierStream:
        """The open stream ``stream_id`` of model ``entry``, or ``StreamRuleError`` saying why not."""
        batcher = self.batchers.get(entry.name)
        stream = batcher.get(stream_id) if batcher is not None else None
        if stream is not None:
            return stream.owner
        reason = batcher.recently_closed.get(stream_id) if batcher is not None else None
        if reason == "idle_timeout":
            raise StreamRuleError("idle_timeout", f"stream {stream_id} was closed after "
                                  f"stream_idle_timeout_s = {self.settings.stream_idle_timeout_s:g} s "
                                  "without a chunk")
        closed = f" (closed: {reason})" if reason else ""
        raise StreamRuleError("not_found", f"no open stream {stream_id!r} of model {entry.name!r}{closed}")

    async def close(self) -> None:
        """Shutdown: close every stream (reason ``shutdown``) and stop the batchers."""
        for batcher in self.batchers.values():
            await batcher.close()
