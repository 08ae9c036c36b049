"""Pure-ASGI middleware (no per-request task switches, unlike ``BaseHTTPMiddleware``).

* ``RequestGuardMiddleware`` — everything that can reject a request cheaply, in this order and all
  *before the body is read or parsed*:

  1. ``GET``/``HEAD /health/live`` is answered here at once: liveness never waits behind routing,
     body reads or request work;
  2. the API key (when configured) of the inference, model and sample routes → 401 (the routes'
     own ``require_api_key`` dependency stays, for the OpenAPI document and any route added later);
  3. ``Content-Length`` over ``max_body_bytes`` → 413;
  4. admission of work routes (inference, stability) through the ``AdmissionGate`` → 503 with a
     Retry-After from ``LoadEstimate`` (queue depth × recent time per row);

  then it stamps the request's deadline (``request_timeout_s`` from now, ``service.admission``) and
  reads the body ahead of the app — ``body_timeout_s`` for the whole of it, else 408 and the
  connection is closed (a stalled body, or a ``Content-Length`` larger than what is sent); a chunked
  body over the limit is 413 as soon as the bytes received pass it. The app never sees a partial body.

  **Direct routes.** A request for one of ``direct`` (``(method, path)`` → the route and its lean
  handler, ``service.api.json_body``: ``POST /classify`` and ``POST /pendulum/predict``) is then
  handed to that handler here, with the app's own exception handlers for what it raises, instead of
  passing down FastAPI's router, exception middleware and per-request exit stacks: the same
  response, for about half of the HTTP layer's CPU (docs/performance.md, "Issue 32"). A direct route
  must be behind the API key check above (``protected``): its handler skips the route's dependencies,
  the key check included.
  Non-HTTP scopes (WebSocket, lifespan) pass through untouched.
* ``RequestMetricsMiddleware`` — per request: the latency histogram and counter by route template,
  model and status, and one structured access-log line.
"""

import asyncio
import json
import logging
import time
from collections.abc import Callable, Coroutine, Mapping
from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.admission import AdmissionGate, request_deadline
from service.errors import API_KEY_HEADER, api_key_error, retry_after
from service.metrics import ServiceMetrics

access_log = logging.getLogger("service.access")

# After rejecting a body, read at most this many further bytes before giving up on the client.
DISCARD_LIMIT_BYTES = 64 * 1024 * 1024
KEY_HEADER = API_KEY_HEADER.lower().encode()      # ASGI header names are lower-case bytes
LIVENESS_BODY = b'{"status":"alive"}'


async def _send_json(send: Send, status: int, body: dict, headers: list[tuple[bytes, bytes]] = ()) -> None:
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *headers]})
    await send({"type": "http.response.body", "body": payload})


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


def work_route(method: str, path: str) -> str | None:
    """The route template of a work request (inference or stability), else None."""
    if method == "POST":
        if path == "/classify":
            return "/classify"
        if path == "/pendulum/predict":
            return "/pendulum/predict"
        if path.startswith("/models/") and path.endswith("/stability"):
            return "/models/{name}/stability"
    elif method in ("GET", "HEAD") and path.startswith("/models/") and path.endswith("/stability.png"):
        return "/models/{name}/stability.png"
    return None


def protected(path: str) -> bool:
    """Routes behind the API key (when one is configured)."""
    return path == "/classify" or path.startswith(("/pendulum/", "/models", "/samples/"))


LeanHandler = Callable[[Request], Coroutine[Any, Any, Response]]


class RequestGuardMiddleware:
    """Liveness fast path, auth, body size, admission, deadline, body read timeout and the direct
    routes (see above)."""

    def __init__(self, app: ASGIApp, *, max_body_bytes: int, body_timeout_s: float, request_timeout_s: float,
                 gate: AdmissionGate, retry_after: Callable[[], int], api_key: str | None = None,
                 metrics: ServiceMetrics | None = None,
                 direct: Mapping[tuple[str, str], tuple[BaseRoute, LeanHandler]] | None = None):
        unguarded = [path for _, path in (direct or {}) if not protected(path)]
        if unguarded:
            raise ValueError(f"direct routes must be behind the API key check (protected): {unguarded}")
        self.direct = dict(direct or {})
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.body_timeout_s = body_timeout_s
        self.request_timeout_s = request_timeout_s
        self.gate = gate
        self.retry_after = retry_after
        self.api_key = api_key
        self.metrics = metrics

    def _count(self, kind: str) -> None:
        if self.metrics is not None:
            self.metrics.errors.labels(kind=kind).inc()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        method, path = scope["method"], scope["path"]
        if path == "/health/live" and method in ("GET", "HEAD"):
            scope["afrnn.route"] = "/health/live"
            await send({"type": "http.response.start", "status": 200, "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(LIVENESS_BODY)).encode())]})
            await send({"type": "http.response.body", "body": LIVENESS_BODY if method == "GET" else b""})
            return
        headers = dict(scope["headers"])
        route = work_route(method, path)
        if route is not None:
            scope["afrnn.route"] = route
        if self.api_key is not None and protected(path):
            error = api_key_error(headers.get(KEY_HEADER), self.api_key)
            if error is not None:
                self._count(error.category)
                await _send_json(send, error.status_code, {"detail": error.detail}, _raw(error.headers))
                return
        limit = self.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            # Read what the client is sending so that it sees the 413 rather than a reset, within limits.
            try:
                async with asyncio.timeout(self.body_timeout_s):
                    await self._discard(receive, min(int(declared), DISCARD_LIMIT_BYTES))
            except TimeoutError:
                pass
            await self._reject_size(send, f"request body of {int(declared)} bytes (Content-Length) exceeds "
                                          f"max_body_bytes = {limit}")
            return
        if route is not None and not self.gate.try_enter():
            self._count("overloaded")
            await _send_json(send, 503, {"detail": f"overloaded: {self.gate.inflight} requests in progress "
                                                   f"(the limit is max_inflight_requests = "
                                                   f"{self.gate.max_inflight}); retry later"},
                             _raw(retry_after(self.retry_after())))
            return
        token = request_deadline.set(time.perf_counter() + self.request_timeout_s)
        try:
            try:
                async with asyncio.timeout(self.body_timeout_s):
                    chunks = await self._read_body(receive, send, limit)
            except TimeoutError:
                self._count("slow_client")
                await _send_json(send, 408, {"detail": f"request body not received within body_timeout_s = "
                                                       f"{self.body_timeout_s:g} s"},
                                 [(b"connection", b"close")])
                return
            if chunks is False:                 # rejected (413 sent)
                return
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed and chunks is not None:
                    replayed = True
                    return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                return await receive()

            direct = self.direct.get((method, path)) if chunks is not None else None
            if direct is None:
                await self.app(scope, replay, send)
            else:
                await self._run_direct(*direct, scope, replay, send)
        finally:
            request_deadline.reset(token)
            if route is not None:
                self.gate.leave()

    @staticmethod
    async def _run_direct(route: BaseRoute, handler: LeanHandler, scope: Scope, receive: Receive,
                          send: Send) -> None:
        """``handler``'s response, or that of the app's exception handler for what it raised (looked up
        as Starlette does: an HTTP exception's status code, then the exception's classes in MRO order;
        none → raised on, to the server-error middleware)."""
        scope["route"] = route
        request = Request(scope, receive, send)
        try:
            response = await handler(request)
        except Exception as exc:
            handlers = scope["app"].exception_handlers
            handle = handlers.get(exc.status_code) if isinstance(exc, HTTPException) else None
            handle = handle or next((handlers[c] for c in type(exc).__mro__ if c in handlers), None)
            if handle is None:
                raise
            response = await handle(request, exc)
        await response(scope, receive, send)

    async def _read_body(self, receive: Receive, send: Send, limit: int) -> list[bytes] | None | bool:
        """The body's chunks; None when the client disconnected; False after a 413 was sent."""
        chunks: list[bytes] = []
        received = 0
        while True:
            message = await receive()
            if message["type"] != "http.request":          # http.disconnect
                return None
            chunk = message.get("body", b"")
            received += len(chunk)
            if received > limit:
                if message.get("more_body", False):
                    await self._discard(receive, DISCARD_LIMIT_BYTES)
                await self._reject_size(send, f"request body exceeds max_body_bytes = {limit} (more than "
                                              f"{received - len(chunk)} + {len(chunk)} bytes received)")
                return False
            chunks.append(chunk)
            if not message.get("more_body", False):
                return chunks

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

    async def _reject_size(self, send: Send, detail: str) -> None:
        self._count("body_too_large")
        await _send_json(send, 413, {"detail": detail}, [(b"connection", b"close")])


def _template_of(scope: Scope, root_path: str) -> str:
    """The template of the app's route that ``scope`` matches, or ``unmatched``. FastAPI marks only its
    own routes in ``scope["route"]``; this finds the others (the OpenAPI document, mounted files)."""
    probe = {"type": "http", "path": scope["path"], "root_path": root_path, "method": scope["method"]}
    for route in getattr(scope.get("app"), "routes", ()):
        path = getattr(route, "path", None)          # None: an included router (its routes mark scope)
        if path is not None and route.matches(probe)[0] is Match.FULL:
            return path + "/{path}" if isinstance(route, Mount) else path
    return "unmatched"


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

        root_path = scope.get("root_path", "")
        try:
            await self.app(scope, receive, send_and_record)
        finally:
            elapsed = time.perf_counter() - started
            template = (getattr(scope.get("route"), "path", None) or scope.get("afrnn.route")
                        or _template_of(scope, root_path))
            model = scope.get("state", {}).get("model", "")
            requests, seconds = self._collectors(template, scope["method"], model, status)
            requests.inc()
            seconds.observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info("request", extra={
                    "method": scope["method"], "path": scope["path"], "route": template, "model": model,
                    "status": status, "duration_ms": round(elapsed * 1000, 3),
                    "client": scope["client"][0] if scope.get("client") else None})
