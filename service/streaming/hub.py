"""The streams of one app: a ``SequenceBatcher`` per model version, created on its first stream.

Limits come from ``service.config.Settings`` (``stream_*``); the longest stream is the model's trained
sequence length (its manifest's ``input.sequence_length``). A model's batcher shares the model's
thread with its ``DynamicBatcher``. Stream ids are random (``secrets.token_urlsafe``): the HTTP
fallback addresses a stream by its id alone, so an id must not be guessable. A stream stays on the
version it was opened on: when a load replaces that version, the stream is still found by its id and
ends there, and the registry frees the version only after its last stream has ended (``retire``).
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
        self.batchers: dict[str, SequenceBatcher] = {}     # by ServedModel.key, name@version
        # Open Inference Protocol sequences: (model name, the client's sequence_id) → stream id
        self.sequences: dict[tuple[str, str], str] = {}

    def batcher_for(self, entry: Any) -> SequenceBatcher:
        """The sequence batcher of a ready registry entry (``service.registry.ServedModel``)."""
        batcher = self.batchers.get(entry.key)
        if batcher is not None:
            return batcher
        if not entry.api.STREAMS:
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
        self.batchers[entry.key] = batcher
        return batcher

    def open(self, entry: Any, options: StreamOpen) -> ClassifierStream:
        batcher = self.batcher_for(entry)
        stream = batcher.open()
        session = ClassifierStream(entry.name, entry.manifest.version, entry.api, batcher, stream, options)
        stream.owner = session
        return session

    def session(self, entry: Any, stream_id: str) -> ClassifierStream:
        """The open stream ``stream_id`` of model ``entry`` (on whichever of its versions it was opened),
        or ``StreamRuleError`` saying why not."""
        batchers = self._of_name(entry.name)
        for batcher in batchers:
            stream = batcher.get(stream_id)
            if stream is not None:
                return stream.owner
        reason = next((b.recently_closed[stream_id] for b in batchers if stream_id in b.recently_closed),
                      None)
        if reason == "idle_timeout":
            raise StreamRuleError("idle_timeout", f"stream {stream_id} was closed after "
                                  f"stream_idle_timeout_s = {self.settings.stream_idle_timeout_s:g} s "
                                  "without a chunk")
        closed = f" (closed: {reason})" if reason else ""
        raise StreamRuleError("not_found", f"no open stream {stream_id!r} of model {entry.name!r}{closed}")

    def start_sequence(self, entry: Any, sequence_id: str, options: StreamOpen) -> ClassifierStream:
        """A new stream for the client's ``sequence_id`` (one that was open under it is closed first)."""
        old = self.sequences.pop((entry.name, sequence_id), None)
        if old is not None:
            for batcher in self._of_name(entry.name):
                stream = batcher.get(old)
                if stream is not None:
                    stream.owner.close("client_closed")
        session = self.open(entry, options)
        self.sequences[(entry.name, sequence_id)] = session.id
        if len(self.sequences) > 4 * self.settings.stream_max_open:     # forget ids whose streams ended
            self.sequences = {k: v for k, v in self.sequences.items()
                              if any(b.get(v) is not None for b in self._of_name(k[0]))}
        return session

    def sequence(self, entry: Any, sequence_id: str) -> ClassifierStream:
        """The open stream of ``sequence_id``, or ``StreamRuleError`` (not_found, idle_timeout)."""
        stream_id = self.sequences.get((entry.name, sequence_id))
        if stream_id is None:
            raise StreamRuleError("not_found", f"unknown sequence_id {sequence_id!r} of model "
                                  f"{entry.name!r}: start it with parameters.sequence_start = true")
        try:
            return self.session(entry, stream_id)
        except StreamRuleError:
            self.sequences.pop((entry.name, sequence_id), None)
            raise

    def end_sequence(self, entry: Any, sequence_id: str) -> None:
        self.sequences.pop((entry.name, sequence_id), None)

    def _of_name(self, name: str) -> list[SequenceBatcher]:
        return [b for key, b in self.batchers.items() if key.rpartition("@")[0] == name]

    def open_streams(self, entry: Any) -> int:
        """Streams still open on this version of the model."""
        batcher = self.batchers.get(entry.key)
        return batcher.open_streams if batcher is not None else 0

    async def retire(self, entry: Any) -> None:
        """Stop this version's stream batcher (its streams have ended, or outlived the drain)."""
        batcher = self.batchers.pop(entry.key, None)
        if batcher is not None:
            await batcher.close()

    async def close(self) -> None:
        """Shutdown: close every stream (reason ``shutdown``) and stop the batchers."""
        for batcher in self.batchers.values():
            await batcher.close()
