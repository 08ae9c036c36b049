"""Pure-ASGI middleware (no per-request task switches, unlike ``BaseHTTPMiddleware``).

* ``RequestGuardMiddleware`` — everything that can reject a request cheaply, in this order and all
  *before the body is read or parsed*:

  1. ``GET``/``HEAD /health/live`` is answered here at once: liveness never waits behind routing,
     body reads or request work;
  2. the route's class (``service.api.route_classes``, declared by every route): the API key (when
     configured) of the read, work and heavy routes → 401 (the routes' own ``require_api_key``
     dependency stays, for the OpenAPI document); the admin key of the admin routes → 401 without a
     key, 403 with another (the inference key included);
  3. ``Content-Length`` over ``max_body_bytes`` → 413;
  4. admission of work and heavy routes through the ``AdmissionGate`` → 503 with a Retry-After from
     ``LoadEstimate`` (queue depth × recent time per row);

  then it stamps the request's deadline (``request_timeout_s`` from now, ``service.admission``) and
  reads the body ahead of the app — ``body_timeout_s`` for the whole of it, else 408 and the
  connection is closed (a stalled body, or a ``Content-Length`` larger than what is sent); a chunked
  body over the limit is 413 as soon as the bytes received pass it. The app never sees a partial body.
  A client that disconnects before its body is complete (routine under load) is one INFO line and the
  status ``499`` in the request metrics: nothing to answer, nothing that reaches the server as an error.

  **Direct routes.** A request for one of ``direct`` (``(method, route template)`` → the route and its
  lean handler: ``POST /classify`` and ``POST /pendulum/predict``, ``service.api.json_body``, and the
  Open Inference Protocol's ``infer``, ``service.api.routes.v2``) is then
  handed to that handler here, with the app's own exception handlers for what it raises, instead of
  passing down FastAPI's router, exception middleware and per-request exit stacks: the same
  response, for about half of the HTTP layer's CPU (docs/performance.md, "The serving stack's CPU"). A
  direct route must be a work route (behind the API key check above): its handler skips the route's
  dependencies, the key check included.
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
from service.api.route_classes import RouteClass, RouteTable
from service.errors import API_KEY_HEADER, ServiceError, api_key_error, retry_after
from service.metrics import ServiceMetrics

access_log = logging.getLogger("service.access")
log = logging.getLogger(__name__)

# The status recorded for a request whose client left before sending its whole body (nginx's 499).
CLIENT_CLOSED_REQUEST = 499

# After rejecting a body, read at most this many further bytes before giving up on the client.
DISCARD_LIMIT_BYTES = 64 * 1024 * 1024
KEY_HEADER = API_KEY_HEADER.lower().encode()      # ASGI header names are lower-case bytes
LIVENESS_BODY = b'{"status":"alive"}'


async def _send_json(send: Send, status: int, body: dict, headers: list[tuple[bytes, bytes]] = (),
                     protocol_v2: bool = False) -> None:
    """A JSON error; the Open Inference Protocol's routes (``/v2``) say ``error`` where ours say
    ``detail``."""
    if protocol_v2 and "detail" in body:
        body = {"error": body["detail"]}
    payload = json.dumps(body).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"),
                            (b"content-length", str(len(payload)).encode()), *headers]})
    await send({"type": "http.response.body", "body": payload})


def _raw(headers: dict[str, str]) -> list[tuple[bytes, bytes]]:
    return [(name.lower().encode(), value.encode()) for name, value in headers.items()]


LeanHandler = Callable[[Request], Coroutine[Any, Any, Response]]


class RequestGuardMiddleware:
    """Liveness fast path, auth, body size, admission, deadline, body read timeout and the direct
    routes (see above)."""

    def __init__(self, app: ASGIApp, *, routes: RouteTable, max_body_bytes: int, body_timeout_s: float,
                 request_timeout_s: float, gate: AdmissionGate, retry_after: Callable[[], int],
                 api_key: str | None = None, admin_key: str | None = None,
                 metrics: ServiceMetrics | None = None,
                 direct: Mapping[tuple[str, str], tuple[BaseRoute, LeanHandler]] | None = None):
        unguarded = [path for method, path in (direct or {})
                     if (routes.match(method, path) or ("", None))[1] is not RouteClass.WORK]
        if unguarded:
            raise ValueError(f"direct routes must be work routes (behind the API key check): {unguarded}")
        self.routes = routes
        self.admin_key = admin_key
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
        v2 = path.startswith("/v2")
        matched = self.routes.match(method, path)
        route, route_class = matched if matched is not None else (None, None)
        if route is not None:
            scope["afrnn.route"] = route
        if route_class is not None and (route_class is RouteClass.ADMIN or
                                        (self.api_key is not None and route_class.needs_key)):
            error = (self._admin_error(headers.get(KEY_HEADER)) if route_class is RouteClass.ADMIN
                     else api_key_error(headers.get(KEY_HEADER), self.api_key))
            if error is not None:
                self._count(error.category)
                await _send_json(send, error.status_code, {"detail": error.detail},
                                 _raw(error.headers or {}), v2)
                return
        admitted = route_class is not None and route_class.admitted
        limit = self.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            # Read what the client is sending so that it sees the 413 rather than a reset, within limits.
            try:
                async with asyncio.timeout(self.body_timeout_s):
                    await self._discard(receive, min(int(declared), DISCARD_LIMIT_BYTES))
            except TimeoutError:
                pass
            await self._reject_size(send, v2, f"request body of {int(declared)} bytes (Content-Length) "
                                              f"exceeds max_body_bytes = {limit}")
            return
        if admitted and not self.gate.try_enter():
            self._count("overloaded")
            await _send_json(send, 503, {"detail": f"overloaded: {self.gate.inflight} requests in progress "
                                                   f"(the limit is max_inflight_requests = "
                                                   f"{self.gate.max_inflight}); retry later"},
                             _raw(retry_after(self.retry_after())), v2)
            return
        token = request_deadline.set(time.perf_counter() + self.request_timeout_s)
        try:
            try:
                async with asyncio.timeout(self.body_timeout_s):
                    chunks = await self._read_body(receive, send, limit, v2)
            except TimeoutError:
                self._count("slow_client")
                await _send_json(send, 408, {"detail": f"request body not received within body_timeout_s = "
                                                       f"{self.body_timeout_s:g} s"},
                                 [(b"connection", b"close")], v2)
                return
            if chunks is False:                 # rejected (413 sent)
                return
            if chunks is None:                  # the client left before its body was complete
                self._count("client_disconnected")
                scope["afrnn.disconnected"] = True
                log.info("client disconnected before its request body was complete",
                         extra={"method": method, "path": path})
                return
            replayed = False

            async def replay() -> Message:
                nonlocal replayed
                if not replayed and chunks is not None:
                    replayed = True
                    return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
                return await receive()

            direct = self.direct.get((method, route)) if chunks is not None else None
            if direct is None:
                await self.app(scope, replay, send)
            else:
                await self._run_direct(*direct, scope, replay, send)
        finally:
            request_deadline.reset(token)
            if admitted:
                self.gate.leave()

    def _admin_error(self, given: bytes | None) -> Exception | None:
        """The admin routes' key rule: 401 without a key or with an unknown one, 403 with the inference
        key (it is known, and not allowed here), and 403 while no admin key is configured."""
        if self.admin_key is None:
            return ServiceError("the repository API is off: it needs AFRNN_ADMIN_KEY (and "
                                "AFRNN_MODEL_CONTROL=explicit to load and unload)", status_code=403)
        error = api_key_error(given, self.admin_key)
        if error is not None and given is not None and self.api_key is not None \
                and api_key_error(given, self.api_key) is None:
            return ServiceError("this key may run inference, not administer the model repository: send "
                                "the admin key (AFRNN_ADMIN_KEY) in the X-API-Key header", status_code=403)
        return error

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

    async def _read_body(self, receive: Receive, send: Send, limit: int, v2: bool = False
                         ) -> list[bytes] | None | bool:
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
                await self._reject_size(send, v2, f"request body exceeds max_body_bytes = {limit} (more than "
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

    async def _reject_size(self, send: Send, v2: bool, detail: str) -> None:
        self._count("body_too_large")
        await _send_json(send, 413, {"detail": detail}, [(b"connection", b"close")], v2)


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
        self._children: dict[tuple[str, str, str, str, int], tuple] = {}

    def _collectors(self, route: str, method: str, model: str, version: str, status: int) -> tuple:
        key = (route, method, model, version, status)
        children = self._children.get(key)
        if children is None:
            code = str(status)
            children = self._children[key] = (
                self.metrics.requests.labels(route=route, method=method, status=code),
                self.metrics.request_seconds.labels(route=route, model=model, version=version, status=code))
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
            state = scope.get("state", {})
            model = state.get("model", "")
            version = state.get("model_version", "")
            if scope.get("afrnn.disconnected") and status == 500:
                status = CLIENT_CLOSED_REQUEST
            requests, seconds = self._collectors(template, scope["method"], model, version, status)
            requests.inc()
            seconds.observe(elapsed)
            if access_log.isEnabledFor(logging.INFO):
                access_log.info("request", extra={
                    "method": scope["method"], "path": scope["path"], "route": template, "model": model,
                    "status": status, "duration_ms": round(elapsed * 1000, 3),
                    "client": scope["client"][0] if scope.get("client") else None})
