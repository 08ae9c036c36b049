"""Streams: the WebSocket ``/models/{name}/stream`` and its HTTP fallback ``/models/{name}/streams``.

Protocol and message schemas: ``afrnn_schemas.stream`` and docs/streaming.md. The handlers are
thin: parse a message, hand it to the stream (``service.streaming``), send the answer. A message that
breaks a rule gets ``StreamError`` and the close code of the rule (WebSocket), or the HTTP status of
the rule (fallback); either way that stream is closed and the other streams are unaffected.

The WebSocket route checks the API key itself (``X-API-Key`` header, or the ``api_key`` query
parameter for browsers, which cannot set headers on a WebSocket); the HTTP routes are registered
behind the app's ``require_api_key`` like every other model route.
"""

import asyncio
import logging
import time

from fastapi import APIRouter, Request, Response, WebSocket, WebSocketDisconnect
from pydantic import ValidationError

from afrnn_schemas import ERROR_RESPONSES
from afrnn_schemas.stream import (
    CLIENT_MESSAGE,
    StreamChunk,
    StreamEnd,
    StreamError,
    StreamFinal,
    StreamOpen,
    StreamOpened,
    StreamUpdate,
)
from service.api.json_body import FastJSONRoute
from service.api.route_classes import RouteClass, classed
from service.errors import (
    RETRY_AFTER_LOADING_S,
    InputError,
    ModelNotFoundError,
    ModelNotReadyError,
    OverloadedError,
    ServiceError,
    api_key_error,
    retry_after,
)
from service.streaming import ClassifierStream, StreamHub, StreamRuleError

log = logging.getLogger(__name__)

router = APIRouter(prefix="/models", tags=["streams"], route_class=FastJSONRoute)
ws_router = APIRouter(prefix="/models", tags=["streams"])


# Not the Depends types of service.api.deps: the WebSocket route and the HTTP fallback share these
# lookups, and their errors are stream rules (WebSocket close codes or HTTP statuses).
def hub_of(app) -> StreamHub:
    return app.state.streams


def _entry(app, name: str):
    """The ready registry entry ``name``, or ``StreamRuleError`` (not_found / unavailable)."""
    try:
        return app.state.registry.get(name).require_ready()
    except ModelNotFoundError as err:
        raise StreamRuleError("not_found", err.detail) from None
    except ModelNotReadyError as err:
        raise StreamRuleError("unavailable", err.detail, retry_after_s=RETRY_AFTER_LOADING_S) from None


# -- WebSocket ------------------------------------------------------------------------------------
@ws_router.websocket("/{name}/stream")
async def stream_ws(websocket: WebSocket, name: str) -> None:
    """Open with ``StreamOpen``, send ``StreamChunk``s (each answered by ``StreamUpdate``), finish with
    ``StreamEnd`` (answered by ``StreamFinal``, then close 1000)."""
    await websocket.accept()
    session: ClassifierStream | None = None
    settings = websocket.app.state.settings
    metrics = hub_of(websocket.app).metrics
    try:
        _check_key(websocket, settings.api_key)
        entry = _entry(websocket.app, name)
        message = await _receive(websocket, settings.stream_idle_timeout_s, settings.max_body_bytes)
        if not isinstance(message, StreamOpen):
            raise StreamRuleError("bad_message", f"the first message must be `open`, got `{message.type}`",
                                  loc=["type"])
        session = hub_of(websocket.app).open(entry, message)
        await websocket.send_text(session.opened().model_dump_json())
        chunk_seconds = metrics.chunk_seconds.labels(model=entry.name)
        while True:
            message = await _receive(websocket, settings.stream_idle_timeout_s, settings.max_body_bytes)
            if isinstance(message, StreamChunk):
                started = time.perf_counter()
                update = await session.chunk(message)
                await websocket.send_text(update.model_dump_json())
                chunk_seconds.observe(time.perf_counter() - started)
            elif isinstance(message, StreamEnd):
                await websocket.send_text(session.final().model_dump_json())
                await websocket.close(1000)
                return
            else:
                raise StreamRuleError("bad_message", "`open` was already sent; send `chunk` or `end`",
                                      loc=["type"])
    except WebSocketDisconnect:
        pass
    except StreamRuleError as err:
        if session is not None:
            session.close(err.reason)
        await _close_with(websocket, err)
    except Exception as err:                              # noqa: BLE001 — never take the server down
        log.error("stream failed", exc_info=err, extra={"model": name})
        if session is not None:
            session.close("internal")
        await _close_with(websocket, StreamRuleError("internal", "internal server error"))
    finally:
        if session is not None:
            session.close("client_closed")                 # no-op unless still open


def _check_key(websocket: WebSocket, expected) -> None:
    """The API key from the X-API-Key header, or the ``api_key`` query parameter (browsers)."""
    key = websocket.headers.get("x-api-key") or websocket.query_params.get("api_key")
    error = api_key_error(key, expected.get_secret_value() if expected is not None else None)
    if error is not None:
        raise StreamRuleError("unauthorized", error.detail)


async def _receive(websocket: WebSocket, idle_timeout_s: float, max_bytes: int):
    """The next client message, parsed; ``StreamRuleError`` for a bad one or after the idle timeout."""
    try:
        frame = await asyncio.wait_for(websocket.receive(), idle_timeout_s)
    except TimeoutError:
        raise StreamRuleError("idle_timeout", f"no message for stream_idle_timeout_s = {idle_timeout_s:g} s"
                              ) from None
    if frame["type"] == "websocket.disconnect":
        raise WebSocketDisconnect(frame.get("code", 1000))
    data = frame.get("text")
    if data is None:
        data = frame.get("bytes") or b""
    if len(data) > max_bytes:
        raise StreamRuleError("chunk_too_large", f"a message holds at most max_body_bytes = {max_bytes} "
                                                 f"bytes, got {len(data)}")
    try:
        return CLIENT_MESSAGE.validate_json(data)
    except ValidationError as err:
        first = err.errors()[0]
        loc = [p for p in first.get("loc", ()) if p not in ("open", "chunk", "end")]
        raise StreamRuleError("bad_message", f"{first.get('msg')}: a message is a JSON object with `type` "
                                             "'open', 'chunk' or 'end' (see docs/streaming.md)",
                              loc=loc or None) from None


async def _close_with(websocket: WebSocket, err: StreamRuleError) -> None:
    body = StreamError(code=err.close_code, reason=err.reason, detail=err.detail, loc=err.loc)
    try:
        await websocket.send_text(body.model_dump_json())
        await websocket.close(err.close_code, reason=err.reason)
    except (WebSocketDisconnect, RuntimeError):
        pass                                               # the client is already gone


# -- HTTP fallback --------------------------------------------------------------------------------
def _http_error(err: StreamRuleError) -> Exception:
    """The HTTP form of a broken rule: 422 naming the field, or the rule's status with a detail."""
    if err.http_status == 422:
        return InputError(err.loc or ["type"], err.detail)
    headers = retry_after(err.retry_after_s) if err.retry_after_s else None
    if err.reason == "too_many_streams":
        return OverloadedError(err.detail, headers)
    return ServiceError(err.detail, headers, status_code=err.http_status)


@router.post("/{name}/streams", status_code=201, response_model=StreamOpened, responses=ERROR_RESPONSES)
@classed(RouteClass.READ)
async def open_stream(name: str, body: StreamOpen, request: Request) -> StreamOpened:
    """Open a stream (the HTTP fallback of the WebSocket): POST chunks to the returned id."""
    request.state.model = name
    try:
        return hub_of(request.app).open(_entry(request.app, name), body).opened()
    except StreamRuleError as err:
        raise _http_error(err) from None


@router.post("/{name}/streams/{stream_id}", response_model=StreamUpdate, responses=ERROR_RESPONSES)
@classed(RouteClass.READ)
async def send_chunk(name: str, stream_id: str, body: StreamChunk, request: Request) -> StreamUpdate:
    """Advance the stream by a chunk; the answer is the prediction after its last step. A chunk that
    breaks a rule closes the stream."""
    request.state.model = name
    session = None
    try:
        entry = _entry(request.app, name)
        session = hub_of(request.app).session(entry, stream_id)
        started = time.perf_counter()
        update = await session.chunk(body)
        hub_of(request.app).metrics.chunk_seconds.labels(model=entry.name).observe(
            time.perf_counter() - started)
        return update
    except StreamRuleError as err:
        if session is not None and err.reason not in ("not_found", "idle_timeout", "shutdown"):
            session.close(err.reason)
        raise _http_error(err) from None


@router.post("/{name}/streams/{stream_id}/end", response_model=StreamFinal, responses=ERROR_RESPONSES)
@classed(RouteClass.READ)
async def end_stream(name: str, stream_id: str, request: Request) -> StreamFinal:
    """The full-sequence answer after the last chunk; closes the stream."""
    request.state.model = name
    try:
        return hub_of(request.app).session(_entry(request.app, name), stream_id).final()
    except StreamRuleError as err:
        raise _http_error(err) from None


@router.delete("/{name}/streams/{stream_id}", status_code=204, responses=ERROR_RESPONSES)
@classed(RouteClass.READ)
async def delete_stream(name: str, stream_id: str, request: Request) -> Response:
    """Close the stream without an answer."""
    request.state.model = name
    try:
        hub_of(request.app).session(_entry(request.app, name), stream_id).close("client_closed")
    except StreamRuleError as err:
        raise _http_error(err) from None
    return Response(status_code=204)
