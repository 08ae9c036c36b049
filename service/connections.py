"""Connection hygiene for uvicorn: a header read timeout, a 503 with Retry-After at the connection cap,
and a SIGTERM that exits 0 after a clean drain.

uvicorn bounds idle keep-alive connections (``timeout_keep_alive``) and the number of connections plus
in-flight requests (``limit_concurrency``; both fixed in ``service.__main__``), but not the time a
client may take to send its request headers: 50 clients sending headers one byte at a time hold 50
connections for ever. So:

* ``with_header_timeout(protocol_class, header_timeout_s)`` subclasses uvicorn's HTTP protocol (h11
  or httptools): from the moment a connection opens, or a byte of a new request arrives after a
  response, the complete request headers must arrive within ``header_timeout_s``. Otherwise a client
  that sent part of a request gets ``408 Request Timeout``, and the connection is closed. The body has
  its own timeout in ``service.middleware`` (the app reads it).
* ``install_overload_response(retry_after_s)`` replaces uvicorn's plain-text 503 at
  ``limit_concurrency`` with the service's JSON 503 and a ``Retry-After`` header (every 503 of the
  service carries one).
* ``Server`` is ``uvicorn.Server`` minus one behaviour: after a graceful shutdown started by SIGTERM,
  uvicorn re-raises the signal so that the process dies of it (exit status 143). A drained server has
  done what SIGTERM asks, so the process exits 0 (SIGINT still re-raises, as for any Ctrl-C).
"""

import asyncio
import json
import signal
from collections.abc import Callable

import uvicorn
from uvicorn.protocols.http import h11_impl, httptools_impl

REQUEST_TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                            b"connection: close\r\ncontent-length: %d\r\n\r\n%s")


def with_header_timeout(protocol_class: type, header_timeout_s: float) -> type:
    """``protocol_class`` whose connections must deliver each request's headers in ``header_timeout_s``."""

    class HeaderTimeoutProtocol(protocol_class):
        _header_timer: asyncio.TimerHandle | None = None
        _header_got_bytes = False

        def connection_made(self, transport) -> None:
            super().connection_made(transport)
            self._arm_header_timer()

        def _arm_header_timer(self) -> None:
            self._header_got_bytes = False
            self._header_timer = self.loop.call_later(header_timeout_s, self._header_timeout, self.cycle)

        def _waiting_for_headers(self) -> bool:
            return self.cycle is None or self.cycle.response_complete

        def data_received(self, data: bytes) -> None:
            if self._header_timer is None and self._waiting_for_headers():
                self._arm_header_timer()              # a new request starts on a kept-alive connection
            self._header_got_bytes = self._header_got_bytes or bool(data)
            cycle = self.cycle
            super().data_received(data)
            # headers complete, or the connection was upgraded (a WebSocket now owns the transport:
            # a 408 written into it would corrupt its frames)
            if self._header_timer is not None and (self.cycle is not cycle
                                                   or self.transport.get_protocol() is not self):
                self._header_timer.cancel()
                self._header_timer = None

        def connection_lost(self, exc) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            super().connection_lost(exc)

        def _header_timeout(self, cycle) -> None:
            self._header_timer = None
            if self.transport.is_closing() or self.cycle is not cycle or not self._waiting_for_headers():
                return
            if self._header_got_bytes:
                body = json.dumps({"detail": f"request headers not received within header_timeout_s = "
                                             f"{header_timeout_s:g} s"}).encode()
                self.transport.write(REQUEST_TIMEOUT_RESPONSE % (len(body), body))
            self.transport.close()

    HeaderTimeoutProtocol.__name__ = f"HeaderTimeout{protocol_class.__name__}"
    return HeaderTimeoutProtocol


def install_overload_response(retry_after_s: int = 1) -> None:
    """uvicorn's 503 at ``limit_concurrency``, as the service's JSON error with Retry-After."""
    body = json.dumps({"detail": "overloaded: too many open connections; retry later"}).encode()

    async def service_unavailable(scope, receive, send) -> None:
        await send({"type": "http.response.start", "status": 503, "headers": [
            (b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
            (b"retry-after", str(retry_after_s).encode()), (b"connection", b"close")]})
        await send({"type": "http.response.body", "body": body, "more_body": False})

    h11_impl.service_unavailable = service_unavailable
    httptools_impl.service_unavailable = service_unavailable


def protocol_class() -> type:
    """uvicorn's HTTP protocol: httptools' C parser (a dependency), h11 where it is missing."""
    try:
        import httptools  # noqa: F401
    except ImportError:
        return h11_impl.H11Protocol
    return httptools_impl.HttpToolsProtocol


class Server(uvicorn.Server):
    """``uvicorn.Server`` whose SIGTERM-initiated graceful shutdown ends with exit status 0, and which
    calls ``on_exit()`` as soon as the signal arrives (before uvicorn waits for in-flight requests:
    the health port's readiness turns 503 for the whole drain)."""

    def __init__(self, config: uvicorn.Config, on_exit: Callable[[], None] | None = None):
        super().__init__(config)
        self.on_exit = on_exit

    def handle_exit(self, sig, frame) -> None:
        if self.on_exit is not None:
            self.on_exit()
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM:
            while signal.SIGTERM in self._captured_signals:
                self._captured_signals.remove(signal.SIGTERM)
