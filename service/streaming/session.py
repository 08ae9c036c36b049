"""One classifier stream: decode a chunk as ``/classify`` decodes an image, advance, encode the answer.

A chunk's values are raw pixels (``scale`` 255 or 1, as in ``/classify``), n·C numbers flat (channels
interleaved per step, the HWC order of ``/classify``) or n rows of C. They are checked against the
manifest's value range and normalised with its mean and std: x = (v / scale − mean) / std.
The final prediction is encoded by the classifier's own ``encode``, so after T = sequence_length
steps it is exactly the answer ``/classify`` gives for the same pixels.
"""

import time
from typing import Any

import numpy as np

from afrnn_schemas.stream import StreamChunk, StreamFinal, StreamOpen, StreamOpened, StreamUpdate
from service.streaming.batcher import SequenceBatcher, Stream
from service.streaming.errors import StreamRuleError


def check_values(arr: np.ndarray, scale: float, value_range: tuple[float, float]) -> None:
    """Raw step values (float32) finite and inside the manifest's value range at ``scale``, else
    ``StreamRuleError('invalid_input')`` naming the first value that is not."""
    low, high = value_range[0] * scale, value_range[1] * scale
    bad = ~np.isfinite(arr) | (arr < low) | (arr > high)
    if bad.any():
        index = int(np.flatnonzero(bad.ravel())[0])
        raise StreamRuleError("invalid_input", f"values must be finite and lie in [{low:g}, {high:g}] "
                              f"for scale {scale:g}; found {arr.ravel()[index]:g} at flat index {index}",
                              loc=["values", index])


class ClassifierStream:
    """``api`` is the model's ``service.tasks.ClassifierAPI`` (decode constants and ``encode``)."""

    def __init__(self, model: str, version: str, api: Any, batcher: SequenceBatcher, stream: Stream,
                 options: StreamOpen):
        self.model = model
        self.version = version
        self.api = api
        self.batcher = batcher
        self.stream = stream
        self.options = options
        self.probabilities: np.ndarray | None = None
        self.threshold_step: int | None = None

    @property
    def id(self) -> str:
        return self.stream.id

    def opened(self) -> StreamOpened:
        b = self.batcher
        return StreamOpened(stream_id=self.stream.id, model=self.model, version=self.version,
                            channels=self.api.channels, sequence_length=self.api.steps, max_steps=b.max_steps,
                            max_chunk_steps=b.max_chunk_steps, idle_timeout_s=b.idle_timeout_s)

    # -- decode -----------------------------------------------------------------------------------
    def decode(self, chunk: StreamChunk) -> np.ndarray:
        """The chunk's values → normalised (n, C) float32, or ``StreamRuleError('invalid_input')``."""
        scale = chunk.scale if chunk.scale is not None else self.options.scale
        if scale is None:
            raise StreamRuleError("invalid_input", "scale is required: 255 when the values are 0–255, 1 when "
                                  "they are 0–1 (give it in `open` or in the chunk)", loc=["scale"])
        c = self.api.channels
        try:
            arr = np.asarray(chunk.values)
        except (ValueError, TypeError):
            arr = None
        if arr is None or arr.dtype.kind not in "iuf" or arr.size == 0:
            raise StreamRuleError("invalid_input", f"values must be a flat list of n·{c} numbers or n rows "
                                  f"of {c} numbers", loc=["values"])
        if arr.ndim == 1 and arr.size % c == 0:
            arr = arr.reshape(-1, c)
        elif not (arr.ndim == 2 and arr.shape[1] == c):
            raise StreamRuleError("invalid_input", f"values of shape {tuple(arr.shape)} are not steps of "
                                  f"model {self.model!r}: give n·{c} numbers flat or n rows of {c} "
                                  f"({c} channel{'s' if c > 1 else ''} per step)", loc=["values"])
        self.batcher.check_chunk(self.stream, arr.shape[0])        # size rules before the value scan
        arr = arr.astype(np.float32, copy=False)
        check_values(arr, scale, self.api.value_range)
        return self.normalise(arr, scale)

    def normalise(self, arr: np.ndarray, scale: float) -> np.ndarray:
        """Checked raw values (n, C) float32 → the network's input, x = (v / scale − mean) / std."""
        return ((arr / np.float32(scale) - self.api.mean) / self.api.std).astype(np.float32, copy=False)

    # -- advance and encode -----------------------------------------------------------------------
    async def chunk(self, chunk: StreamChunk) -> StreamUpdate:
        return await self.advance(self.decode(chunk))

    async def advance(self, x: np.ndarray) -> StreamUpdate:
        """Advance by the normalised steps ``x`` (n, C) float32 (``decode``, or a V2 sequence's pixels,
        normalised alike); the answer is the anytime prediction after the last of them."""
        started = time.perf_counter()
        result = await self.batcher.advance(self.stream, x)
        probs = result.output
        self.probabilities = probs
        label = int(probs.argmax())
        confidence = float(probs[label])
        threshold = self.options.threshold
        reached = threshold is not None and confidence >= threshold
        if reached and self.threshold_step is None:
            self.threshold_step = result.steps
        return StreamUpdate(steps=result.steps, label=label, class_name=self.api.class_name(label),
                            confidence=confidence, probabilities=probs.tolist(), threshold_reached=reached,
                            batch_streams=result.batch_streams,
                            latency_ms=(time.perf_counter() - started) * 1000)

    def final(self) -> StreamFinal:
        """The answer after the last step received; closes the stream (reason ``final``)."""
        if self.probabilities is None:
            self.close("bad_message")
            raise StreamRuleError("bad_message", "`end` before any chunk: a stream needs at least one step")
        top_k = min(self.options.top_k, len(self.probabilities))
        prediction = self.api.encode(self.probabilities[None], top_k, False)[0]
        steps = self.stream.steps
        self.close("final")
        return StreamFinal(steps=steps, complete=steps == self.api.steps, prediction=prediction,
                           threshold_step=self.threshold_step)

    def close(self, reason: str) -> bool:
        return self.batcher.close_stream(self.stream, reason)
