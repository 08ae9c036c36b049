"""Pure-ASGI middleware (no per-request task switches, unlike ``BaseHTTPMiddleware``).

* ``BodySizeLimitMiddleware`` — answers 413 when a request body exceeds ``max_body_bytes``: at once
  when ``Content-Length`` says so, and otherwise (chunked uploads) as soon as the bytes received pass
  the limit. It reads the body ahead of the app and replays it, so the app never sees a partial body.
  The rest of an oversized body is read and discarded (up to a cap) so that the client, still sending,
  gets the 413 instead of a reset connection.
* ``RequestMetricsMiddleware`` — per request: the latency histogram and counter by route template,
  model and status, and one structured access-log line.
"""

import json
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.metrics import ServiceMetrics

access_log = logging.getLogger("service.access")

# After rejecting a body, read at most this many further bytes before giving up on the client.
DISCARD_LIMIT_BYTES = 64 * 1024 * 1024


async def _send_json(send: Send, status: int, body: dict, headers: list[tuple[bytes, bytes]] = ()) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *headers]})
    await send({"type": "http.response.body", "body": payload})


class BodySizeLimitMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int, metrics: ServiceMetrics | None = None):
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_body_bytes
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await self._discard(receive, int(declared))
            await self._reject(send, f"request body of {int(declared)} bytes (Content-Length) exceeds "
                                     f"max_body_bytes = {limit}")
            return
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":          # http.disconnect
                chunks = None
                break
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                if message.get("more_body", False):
                    await self._discard(receive, DISCARD_LIMIT_BYTES)
                await self._reject(send, f"request body exceeds max_body_bytes = {limit} (more than "
                                         f"{received - len(chunk)} + {len(chunk)} bytes received)")
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed and chunks is not None:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    @staticmethod
    async def _discard(receive: Receive, budget: int) -> None:
        read = 0
        while read <= budget:
            message = await receive()
            if message["type"] != "http.request":
                return
            read += len(message.get("body", b""))
            if not message.get("more_body", False):
                return

    async def _reject(self, send: Send, detail: str) -> None:
        if self.metrics is not None:
            self.metrics.errors.labels(kind="body_too_large").inc()
        await _send_json(send, 413, {"detail": detail}, [(b"connection", b"close")])


class RequestMetricsMiddleware:
    def __init__(self, app: ASGIApp, metrics: ServiceMetrics):
        self.app = app
        self.metrics = metrics
        # (route, method, model, status) → its counter and histogram children: ``labels()`` validates
        # and locks on every call, this is one dict lookup. Bounded like the label sets themselves.
        self._children: dict[tuple[str, str, str, int], tuple] = {}

    def _collectors(self, route: str, method: str, model: str, status: int) -> tuple:
        key = (route, method, model, status)
        children = self._children.get(key)
        if children is None:
            code = str(status)
            children = self._children[key] = (
                self.metrics.requests.labels(route=route, method=method, status=code),
                self.metrics.request_seconds.labels(route=route, model=model, status=code))
        return children

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_and_record(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_and_record)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            template = getattr(route, "path", None) or "unmatched"
            model = scope.get("state", {}).get("model", "")
            requests, seconds = self._collectors(template, scope["method"], model, status)
            requests.inc()
            seconds.observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info("request", extra={
                    "method": scope["method"], "path": scope["path"], "route": template, "model": model,
                    "status": status, "duration_ms": round(elapsed * 1000, 3),
                    "client": scope["client"][0] if scope.get("client") else None})
