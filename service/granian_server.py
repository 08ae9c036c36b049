"""Serve the app with granian, a Rust HTTP server, in this process (``http_server = "granian"``).

granian parses HTTP and holds the connections in Rust threads that do not take the GIL; only the ASGI
call runs in Python, on this process's event loop. What that buys is the cost of a connection the
service refuses: under a burst of fresh connections the same ASGI app spends less CPU per
refused request than uvicorn's Python protocol, so liveness and 503s stay fast while a burst saturates
the event loop (measured in docs/reliability.md). Under steady load the forward and the ASGI app
dominate, and throughput is uvicorn's (docs/performance.md).

What each connection setting becomes here:

* ``header_timeout_s``: hyper's header read timeout. A client that has not sent a request's complete
  headers in time is disconnected (hyper closes the connection without a 408), and so is a new
  connection that sends nothing at all; it also bounds an idle kept-alive connection, which is closed
  when no new request's headers arrive in time. This needs granian's HTTP/1 mode: in its ``auto``
  mode the first bytes are read to tell HTTP/1 from HTTP/2 before hyper's timer starts, and a
  connection that never sends one stays open (the service speaks HTTP/1.1 only, as under uvicorn).
* ``keep_alive_timeout_s``: hyper has no separate idle timeout, so idle connections live up to
  ``header_timeout_s``.
* ``body_timeout_s``: unchanged, in ``service.middleware`` (the app reads the body).
* ``limit_concurrency``: granian's backpressure, the most requests inside the app at once; beyond it
  new requests wait in Rust for a slot instead of getting uvicorn's 503. Work requests are refused
  with 503 + Retry-After by the app's admission gate before their body is read, under either server.
* memory: granian's Rust side allocates with its own jemalloc, which by default keeps freed pages for
  10 s and purges them only when it allocates again, so the buffers of a burst of connections stayed
  resident in an idle service. ``_RJEM_MALLOC_CONF`` (that jemalloc's name for ``MALLOC_CONF``) gets one
  background purging thread and a 1-s decay unless the environment already sets it; it is read when
  granian's library loads, hence before the import.
* SIGTERM: ``on_exit()`` runs at once (readiness turns 503), granian stops accepting, in-flight
  requests finish within ``request_timeout_s`` + 5 s, the lifespan shutdown drains the queues, and the
  process exits 0. SIGINT does the same and then dies of the signal, as Ctrl-C should.
"""

import asyncio
import os
import signal
from collections.abc import Callable

from service.config import Settings

# granian's own records go to the root logger, which service.logging has configured
_LOGGING = {"loggers": {"_granian": {"handlers": [], "propagate": True},
                        "granian.access": {"handlers": [], "propagate": False}}}


# granian's jemalloc: purge freed pages in a background thread after 1 s (docs/reliability.md, session 11)
JEMALLOC_CONF = "background_thread:true,max_background_threads:1,dirty_decay_ms:1000,muzzy_decay_ms:0"


def serve_with_granian(app, settings: Settings, on_exit: Callable[[], None] | None = None) -> None:
    """Run ``app`` on ``settings.host:settings.port`` with granian until SIGTERM or SIGINT."""
    os.environ.setdefault("_RJEM_MALLOC_CONF", JEMALLOC_CONF)
    import uvloop
    from granian.constants import HTTPModes, Interfaces
    from granian.http import HTTP1Settings
    from granian.log import LogLevels
    from granian.server.embed import Server

    server = Server(
        app, address=settings.host, port=settings.port, interface=Interfaces.ASGI, http=HTTPModes.http1,
        runtime_threads=1, backlog=2048, backpressure=settings.limit_concurrency, log_access=False,
        log_level=LogLevels(settings.log_level), log_dictconfig=_LOGGING,
        http1_settings=HTTP1Settings(header_read_timeout=int(settings.header_timeout_s * 1000)))
    server.workers_kill_timeout = int(settings.request_timeout_s) + 5
    received: list[int] = []

    def stop(sig: int) -> None:
        if received:
            return
        received.append(sig)
        if on_exit is not None:
            on_exit()
        server.stop()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop, sig)
        await server.serve()

    uvloop.run(main())
    if received == [signal.SIGINT]:
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)
