"""Stateful streams: the hidden state of every open stream lives here, and chunks that arrive together
are advanced together in one batched step (a sequence batcher in the sense of Triton's).

* ``batcher.SequenceBatcher`` — the state matrix of one model's streams and its worker (no FastAPI);
* ``stepper.StreamStepper`` — a loaded module's ``initial_state`` / ``advance`` / ``readout``;
* ``session.ClassifierStream`` — one classifier stream: decode a chunk, advance, encode the answer;
* ``hub.StreamHub`` — the batchers of one app, created per model on its first stream, and the metrics.

Wire messages: ``afrnn_schemas.stream``; protocol: docs/streaming.md.
"""

from service.streaming.batcher import ChunkResult, SequenceBatcher, Stream
from service.streaming.errors import StreamRuleError
from service.streaming.hub import StreamHub
from service.streaming.session import ClassifierStream
from service.streaming.stepper import StreamStepper

__all__ = ["ChunkResult", "ClassifierStream", "SequenceBatcher", "Stream", "StreamHub", "StreamRuleError",
           "StreamStepper"]
