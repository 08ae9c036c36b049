"""granian's header timeout by HTTP mode: a minimal ASGI app on granian's embedded server with a 1-s
header read timeout; a connection that sends nothing, one that sends half a request line and headers,
and one kept alive after a full request, each timed until the server closes it (6 s at most).
Run: python results/bench-quiet-s11/silent-connection.py {1,auto}"""
import asyncio
import os
import signal
import socket
import sys
import threading
import time

import uvloop
from granian.constants import HTTPModes, Interfaces
from granian.http import HTTP1Settings
from granian.server.embed import Server

PORT = 8931


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            else:
                await send({"type": "lifespan.shutdown.complete"})
                return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"ok"})


def probe(mode: HTTPModes) -> None:
    time.sleep(2)
    for label, data in (("silent", b""), ("partial headers", b"GET / HTTP/1.1\r\n"),
                        ("kept alive after a response", b"GET / HTTP/1.1\r\nhost: x\r\n\r\n")):
        with socket.create_connection(("127.0.0.1", PORT), timeout=6) as s:
            start = time.monotonic()
            if data:
                s.sendall(data)
            try:
                while s.recv(1000):
                    pass
                closed_s = time.monotonic() - start
                print(f"mode {mode.value}: {label}: closed after {closed_s:.2f} s", flush=True)
            except TimeoutError:
                print(f"mode {mode.value}: {label}: still open after 6 s", flush=True)
    os.kill(os.getpid(), signal.SIGTERM)


def main() -> None:
    mode = HTTPModes(sys.argv[1])
    server = Server(app, address="127.0.0.1", port=PORT, interface=Interfaces.ASGI, runtime_threads=1,
                    http=mode, http1_settings=HTTP1Settings(header_read_timeout=1000))
    threading.Thread(target=probe, args=(mode,), daemon=True).start()

    async def serve() -> None:
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, server.stop)
        await server.serve()

    uvloop.run(serve())


if __name__ == "__main__":
    main()
