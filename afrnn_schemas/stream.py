"""Streams (``/models/{name}/stream`` WebSocket, ``/models/{name}/streams`` HTTP): the wire messages.

A stream feeds a classifier its input sequence as it arrives. The server holds the recurrent state;
after every chunk of time steps it answers with the anytime prediction at the last step, and the
final message gives the full-sequence answer (equal to ``POST /classify`` on the same sequence).

Client → server: ``StreamOpen`` (first), then ``StreamChunk`` any number of times, then ``StreamEnd``.
Server → client: ``StreamOpened``, one ``StreamUpdate`` per chunk, ``StreamFinal``; or ``StreamError``
followed by the WebSocket close with ``code`` (see ``CLOSE_CODES``).
"""

from typing import Annotated, Any, Literal

from pydantic import Field, TypeAdapter

from afrnn_schemas.classify import Prediction
from afrnn_schemas.common import Request, Response

# WebSocket close codes (4000–4999 are the application's; the others are RFC 6455's) and the HTTP
# status the same rule gets from the HTTP fallback.
CLOSE_CODES: dict[str, tuple[int, int]] = {
    #  reason              (close code, HTTP status)
    "final": (1000, 200),              # the client sent `end` and got `final`
    "client_closed": (1000, 204),      # the client went away or DELETEd the stream
    "shutdown": (1001, 503),           # the server is stopping
    "internal": (1011, 500),           # a server fault (logged); the other streams are unaffected
    "too_many_streams": (1013, 503),   # stream_max_open streams of this model are open (Retry-After)
    "unavailable": (1013, 503),        # the model is loading or unavailable
    "bad_message": (4400, 422),        # not JSON, not a known message, or out of order
    "unauthorized": (4401, 401),       # API key missing or wrong (when one is configured)
    "not_found": (4404, 404),          # unknown model (HTTP: also an unknown or closed stream id)
    "idle_timeout": (4408, 410),       # no chunk for stream_idle_timeout_s
    "chunk_too_large": (4413, 422),    # more than stream_max_chunk_steps steps in one chunk
    "too_long": (4414, 422),           # the stream would pass max_steps (the trained length)
    "unsupported_model": (4415, 422),  # not a classifier, or its artifact lacks the stream methods
    "invalid_input": (4422, 422),      # values of the wrong shape, not finite, or out of range
}
CloseReason = Literal["final", "client_closed", "shutdown", "internal", "too_many_streams", "unavailable",
                      "bad_message", "unauthorized", "not_found", "idle_timeout", "chunk_too_large",
                      "too_long", "unsupported_model", "invalid_input"]


class StreamOpen(Request):
    """First message: the stream's options (all optional)."""

    type: Literal["open"] = "open"
    scale: Literal[1, 255] | None = Field(None, description="default `scale` of the chunks: 255 for 0–255 "
                                                            "values, 1 for 0–1 values")
    threshold: float | None = Field(None, gt=0.0, le=1.0,
                                    description="early exit: `threshold_reached` turns true once the top "
                                                "class's probability is ≥ this")
    top_k: int = Field(1, ge=1, description="classes listed in the final prediction's `top_k`")


class StreamChunk(Request):
    """One or more time steps: n·C values (flat, C channels interleaved per step) or n rows of C."""

    type: Literal["chunk"] = "chunk"
    values: list[Any] = Field(min_length=1, description="the next n ≥ 1 steps: a flat list of n·C numbers "
                                                        "or a nested n × C list, raw as in /classify")
    scale: Literal[1, 255] | None = Field(None, description="overrides the stream's default scale")

    model_config = {"json_schema_extra": {"examples": [{"type": "chunk", "values": [0, 12, 255],
                                                       "scale": 255}]}}


class StreamEnd(Request):
    """Last message: answer with ``StreamFinal`` and close the stream."""

    type: Literal["end"] = "end"


StreamClientMessage = Annotated[StreamOpen | StreamChunk | StreamEnd, Field(discriminator="type")]
CLIENT_MESSAGE = TypeAdapter(StreamClientMessage)


class StreamOpened(Response):
    type: Literal["opened"] = "opened"
    stream_id: str = Field(description="the stream's id (HTTP fallback: part of its URL)")
    model: str = Field(examples=["mnist"])
    version: str
    channels: int = Field(description="values per step")
    sequence_length: int = Field(description="the trained length T: `final` equals /classify after T steps")
    max_steps: int = Field(description="most steps this stream may receive")
    max_chunk_steps: int = Field(description="most steps in one chunk")
    idle_timeout_s: float = Field(description="the stream is closed after this long without a chunk")


class StreamUpdate(Response):
    """The anytime prediction after the chunk's last step."""

    type: Literal["update"] = "update"
    steps: int = Field(description="steps seen so far")
    label: int
    class_name: str
    confidence: float = Field(description="probability of `label`")
    probabilities: list[float] = Field(description="softmax over all classes, in label order")
    threshold_reached: bool = Field(description="confidence ≥ the stream's threshold (false without one)")
    batch_streams: int = Field(description="streams advanced in the same batched step as this chunk")
    latency_ms: float = Field(description="server time for this chunk: decode, queue, step, encode")


class StreamFinal(Response):
    type: Literal["final"] = "final"
    steps: int
    complete: bool = Field(description="steps == sequence_length: `prediction` is /classify's answer")
    prediction: Prediction = Field(description="as in /classify, after the last step received")
    threshold_step: int | None = Field(None, description="first step count at which the threshold was "
                                                         "reached (null if never or without threshold)")


class StreamError(Response):
    """Sent before the WebSocket closes with ``code``; the HTTP fallback's errors are the usual bodies."""

    type: Literal["error"] = "error"
    code: int = Field(description="the WebSocket close code that follows", examples=[4414])
    reason: CloseReason
    detail: str = Field(examples=["stream would reach 785 steps; max_steps = 784 for model 'mnist'"])
    loc: list[str | int] | None = Field(None, description="the offending field, e.g. ['values', 3]")


StreamServerMessage = Annotated[StreamOpened | StreamUpdate | StreamFinal | StreamError,
                                Field(discriminator="type")]
SERVER_MESSAGE = TypeAdapter(StreamServerMessage)
