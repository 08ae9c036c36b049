"""Health probes on a port of their own, answered by a thread: ``health_port``.

On the main port, ``/health/live`` is answered by the request middleware before routing and before any
body is read, but it is still answered by the *event loop*. During a burst of a thousand requests the
loop has a thousand connections to accept and parse before it reaches the probe, so the probe waits
(docs/reliability.md: p99 0.8 s in the soak's 1000-request burst), long enough for an orchestrator
with a one-second timeout to restart a healthy pod.

With ``health_port`` set, a ``ThreadingHTTPServer`` in a daemon thread of the same process answers

* ``GET``/``HEAD /health/live`` — 200 ``{"status": "alive"}``;
* ``GET``/``HEAD /health/ready`` — the same answer and policy as the main port's ``/health/ready``
  (``service.api.routes.health.readiness``), plus 503 "shutting down" once the drain has begun,

and 404 for anything else. The thread shares nothing with the event loop but the GIL, which the loop
hands over at least every 5 ms (Python's switch interval), so a probe waits milliseconds, not behind the
loop's queue. Point the orchestrator's probes at this port (``deploy/k8s.yaml``, the image's
``HEALTHCHECK``); the main port's routes stay for clients and humans.
"""

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from service.errors import RETRY_AFTER_LOADING_S, retry_after

log = logging.getLogger(__name__)

LIVE_PATH, READY_PATH = "/health/live", "/health/ready"


class _ProbeHandler(BaseHTTPRequestHandler):
    server: "HealthServer"
    protocol_version = "HTTP/1.1"
    timeout = 5.0           # a probe that connects and sends nothing must not hold a thread for ever
    error_content_type = "application/json"
    error_message_format = '{"detail": "%(message)s"}'

    def _answer(self, with_body: bool) -> None:
        path = self.path.split("?", 1)[0]
        if path == LIVE_PATH:
            status, body, headers = 200, {"status": "alive"}, {}
        elif path == READY_PATH:
            status, body = self.server.readiness()
            headers = {} if status == 200 else retry_after(RETRY_AFTER_LOADING_S)
        else:
            status, body, headers = 404, {"detail": f"the health port answers {LIVE_PATH} and {READY_PATH} "
                                                    "only"}, {}
        payload = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        for name, value in headers.items():
            self.send_header(name, value)
        self.end_headers()
        if with_body:
            self.wfile.write(payload)

    def do_GET(self) -> None:  # noqa: N802 (http.server's names)
        self._answer(with_body=True)

    def do_HEAD(self) -> None:  # noqa: N802
        self._answer(with_body=False)

    def log_message(self, format: str, *args) -> None:     # probes every few seconds: no access log
        pass


class HealthServer(ThreadingHTTPServer):
    """The probe server; ``readiness()`` → (status, body) comes from the app (see ``start``)."""

    daemon_threads = True

    def __init__(self, host: str, port: int, readiness: Callable[[], tuple[int, dict]]):
        super().__init__((host, port), _ProbeHandler)
        self.readiness = readiness
        self.thread: threading.Thread | None = None

    def start(self) -> "HealthServer":
        self.thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.2},
                                       name="health-port", daemon=True)
        self.thread.start()
        log.info("health port", extra={"host": self.server_address[0], "port": self.server_address[1]})
        return self

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        if self.thread is not None:
            self.thread.join(timeout=5)
