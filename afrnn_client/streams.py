"""Streams from the client's side: over a WebSocket (``websockets``) or the HTTP fallback (``httpx``).

Both transports give the same object: ``opened`` (the server's ``StreamOpened``), ``send(values)`` →
``StreamUpdate``, ``end()`` → ``StreamFinal`` and ``close()``; it is a (async) context manager that
closes the stream on exit. A stream the server closes raises ``StreamClosedError`` (WebSocket) or
``ApiError`` (HTTP), carrying the rule and the field it named.
"""

import json
from typing import Any

import httpx

from afrnn_client._calls import error_of
from afrnn_client.errors import StreamClosedError
from afrnn_schemas import (
    SERVER_MESSAGE,
    StreamChunk,
    StreamError,
    StreamFinal,
    StreamOpen,
    StreamOpened,
    StreamUpdate,
)


def ws_url(base_url: str, model: str) -> str:
    scheme, rest = base_url.split("://", 1)
    return f"{'wss' if scheme == 'https' else 'ws'}://{rest}/models/{model}/stream"


def chunk_json(values: Any, scale: int | None) -> str:
    values = values.tolist() if hasattr(values, "tolist") else list(values)
    return StreamChunk(values=values, scale=scale).model_dump_json(exclude_none=True)


def _expect(raw: str | bytes, kind: type):
    message = SERVER_MESSAGE.validate_json(raw)
    if isinstance(message, StreamError):
        raise StreamClosedError(message.code, message.reason, message.detail,
                                tuple(message.loc) if message.loc else None)
    if not isinstance(message, kind):
        raise StreamClosedError(1002, "protocol", f"expected `{kind.__name__}`, got `{message.type}`")
    return message


def _closed(err) -> StreamClosedError:
    frame = getattr(err, "rcvd", None)
    code = frame.code if frame is not None else 1006
    reason = frame.reason if frame is not None else "connection lost"
    return StreamClosedError(code, reason or "closed", str(err))


# -- sync -----------------------------------------------------------------------------------------
class WebSocketStream:
    def __init__(self, base_url: str, headers: dict[str, str], model: str, options: StreamOpen,
                 open_timeout_s: float):
        from websockets.exceptions import ConnectionClosed
        from websockets.sync.client import connect

        self._closed_exc = ConnectionClosed
        # legacy=True: a connection held by this object, not by a `with` block (websockets ≥ 16)
        self._ws = connect(ws_url(base_url, model), additional_headers=headers, open_timeout=open_timeout_s,
                           max_size=None, legacy=True)
        self.opened: StreamOpened = self._exchange(options.model_dump_json(exclude_none=True), StreamOpened)

    def _exchange(self, text: str, kind: type):
        try:
            self._ws.send(text)
            return _expect(self._ws.recv(), kind)
        except self._closed_exc as err:
            raise _closed(err) from None

    def send(self, values: Any, scale: int | None = None) -> StreamUpdate:
        """The next steps (n·C values, flat or n rows of C) → the prediction after the last one."""
        return self._exchange(chunk_json(values, scale), StreamUpdate)

    def end(self) -> StreamFinal:
        final = self._exchange('{"type":"end"}', StreamFinal)
        self.close()
        return final

    def close(self) -> None:
        self._ws.close()

    def __enter__(self) -> "WebSocketStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class HttpStream:
    def __init__(self, http: httpx.Client, model: str, options: StreamOpen):
        self._http = http
        self._model = model
        r = http.post(f"/models/{model}/streams", content=options.model_dump_json(exclude_none=True),
                      headers={"content-type": "application/json"})
        if r.status_code != 201:
            raise error_of(r)
        self.opened = StreamOpened.model_validate_json(r.content)
        self._path = f"/models/{model}/streams/{self.opened.stream_id}"
        self._open = True

    def send(self, values: Any, scale: int | None = None) -> StreamUpdate:
        r = self._http.post(self._path, content=chunk_json(values, scale),
                            headers={"content-type": "application/json"})
        if r.status_code != 200:
            self._open = r.status_code not in (404, 410, 422)     # a broken rule closed it
            raise error_of(r)
        return StreamUpdate.model_validate_json(r.content)

    def end(self) -> StreamFinal:
        r = self._http.post(self._path + "/end")
        self._open = False
        if r.status_code != 200:
            raise error_of(r)
        return StreamFinal.model_validate_json(r.content)

    def close(self) -> None:
        if self._open:
            self._open = False
            r = self._http.delete(self._path)
            if r.status_code not in (204, 404, 410):
                raise error_of(r)

    def __enter__(self) -> "HttpStream":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# -- async ----------------------------------------------------------------------------------------
class AsyncWebSocketStream:
    @classmethod
    async def connect(cls, base_url: str, headers: dict[str, str], model: str, options: StreamOpen,
                      open_timeout_s: float) -> "AsyncWebSocketStream":
        from websockets.asyncio.client import connect
        from websockets.exceptions import ConnectionClosed

        self = cls()
        self._closed_exc = ConnectionClosed
        self._ws = await connect(ws_url(base_url, model), additional_headers=headers,
                                 open_timeout=open_timeout_s, max_size=None)
        self.opened = await self._exchange(options.model_dump_json(exclude_none=True), StreamOpened)
        return self

    async def _exchange(self, text: str, kind: type):
        try:
            await self._ws.send(text)
            return _expect(await self._ws.recv(), kind)
        except self._closed_exc as err:
            raise _closed(err) from None

    async def send(self, values: Any, scale: int | None = None) -> StreamUpdate:
        return await self._exchange(chunk_json(values, scale), StreamUpdate)

    async def end(self) -> StreamFinal:
        final = await self._exchange(json.dumps({"type": "end"}), StreamFinal)
        await self.close()
        return final

    async def close(self) -> None:
        await self._ws.close()

    async def __aenter__(self) -> "AsyncWebSocketStream":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()


class AsyncHttpStream:
    @classmethod
    async def connect(cls, http: httpx.AsyncClient, model: str, options: StreamOpen) -> "AsyncHttpStream":
        self = cls()
        self._http = http
        r = await http.post(f"/models/{model}/streams", content=options.model_dump_json(exclude_none=True),
                            headers={"content-type": "application/json"})
        if r.status_code != 201:
            raise error_of(r)
        self.opened = StreamOpened.model_validate_json(r.content)
        self._path = f"/models/{model}/streams/{self.opened.stream_id}"
        self._open = True
        return self

    async def send(self, values: Any, scale: int | None = None) -> StreamUpdate:
        r = await self._http.post(self._path, content=chunk_json(values, scale),
                                  headers={"content-type": "application/json"})
        if r.status_code != 200:
            self._open = r.status_code not in (404, 410, 422)     # a broken rule closed it
            raise error_of(r)
        return StreamUpdate.model_validate_json(r.content)

    async def end(self) -> StreamFinal:
        r = await self._http.post(self._path + "/end")
        self._open = False
        if r.status_code != 200:
            raise error_of(r)
        return StreamFinal.model_validate_json(r.content)

    async def close(self) -> None:
        if self._open:
            self._open = False
            r = await self._http.delete(self._path)
            if r.status_code not in (204, 404, 410):
                raise error_of(r)

    async def __aenter__(self) -> "AsyncHttpStream":
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()
