"""The route class of the JSON inference routes: the body parsed by pydantic-core's Rust parser, and
the hot routes' requests handled without FastAPI's per-request machinery.

* **Parsing.** FastAPI reads a JSON body with ``await request.json()``, i.e. ``json.loads``.
  ``pydantic_core.from_json`` builds the same Python objects several times faster (NaN and ±Infinity
  tokens are accepted, as by ``json.loads``, and left to the handlers' finiteness rules). A malformed
  body still gets FastAPI's 422 ``json_invalid`` error at the position of the fault: the parser's
  ``ValueError`` is re-raised as the ``json.JSONDecodeError`` FastAPI handles.
* **The lean handler.** An endpoint of the form ``async def f(body: Model, request: Request) ->
  Response`` (one pydantic body, the request, an already serialised response, and no dependency but
  the API key, which ``RequestGuardMiddleware`` checks before the body is read) is called by a handler
  that does what FastAPI's does for such an endpoint and nothing else: read the body, take it as JSON
  when the content type says so, validate it with the route's own body field, call the endpoint.
  FastAPI's handler also solves an empty dependency graph, parses the query string, extracts the
  endpoint's source context and builds telemetry per request: most of the HTTP layer's CPU on
  ``POST /classify`` (docs/performance.md, "The serving stack's CPU"). The errors are FastAPI's, field
  for field (tests/service/test_json_body.py compares the two handlers on malformed bodies). Every
  other endpoint keeps FastAPI's handler, with the fast parser.

Routers opt in with ``APIRouter(route_class=FastJSONRoute)``; the OpenAPI document does not change.
"""

import email.message
import functools
import inspect
import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

import pydantic_core
from fastapi import Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from pydantic import BaseModel

from service.api.deps import require_api_key

# Dependencies the lean handler may skip: checked for every protected path by
# ``service.middleware.RequestGuardMiddleware`` before the body is read.
CHECKED_BY_MIDDLEWARE = (require_api_key,)

_POSITION = re.compile(r"line (\d+) column (\d+)")


def parse_json(body: bytes) -> Any:
    """``body`` as Python objects, or ``json.JSONDecodeError`` naming the position of the fault."""
    try:
        return pydantic_core.from_json(body)
    except ValueError as err:
        text = body.decode("utf-8", errors="replace")
        match = _POSITION.search(str(err))
        pos = 0
        if match:                      # 1-based line and column → 0-based character offset
            line, column = int(match[1]), int(match[2])
            line_start = 0
            for _ in range(line - 1):
                line_start = text.find("\n", line_start) + 1
            pos = max(0, min(len(text), line_start + column - 1))
        raise json.JSONDecodeError(str(err).split(" at line ")[0], text, pos) from None


class FastJSONRequest(Request):
    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


@functools.lru_cache(maxsize=64)
def _is_json(content_type: str | None) -> bool:
    """FastAPI's rule: ``application/json`` or ``application/*+json`` (parameters allowed)."""
    if not content_type:
        return False
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (
        subtype == "json" or subtype.endswith("+json"))


class FastJSONRoute(APIRoute):
    """An ``APIRoute`` whose handler parses JSON with pydantic-core, and is the lean handler for
    endpoints of the lean form (module docstring)."""

    def lean_parameters(self) -> tuple[str, str] | None:
        """(body parameter, request parameter) of an endpoint of the lean form, else None."""
        d = self.dependant
        if (self.body_field is None or len(d.body_params) != 1 or d.path_params or d.query_params
                or d.header_params or d.cookie_params or d.background_tasks_param_name
                or d.response_param_name or d.websocket_param_name or d.http_connection_param_name
                or d.security_scopes_param_name or d.request_param_name is None
                or any(dep.call not in CHECKED_BY_MIDDLEWARE for dep in d.dependencies)
                or not inspect.iscoroutinefunction(self.endpoint)):
            return None
        annotation = d.body_params[0].field_info.annotation
        returns = inspect.signature(self.endpoint).return_annotation
        if not (inspect.isclass(annotation) and issubclass(annotation, BaseModel)
                and inspect.isclass(returns) and issubclass(returns, Response)):
            return None
        return d.body_params[0].name, d.request_param_name

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        lean = self.lean_handler()
        if lean is not None:
            return lean
        handle = super().get_route_handler()

        async def handle_with_fast_json(request: Request) -> Response:
            return await handle(FastJSONRequest(request.scope, request.receive, request._send))

        return handle_with_fast_json

    def lean_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]] | None:
        """The lean handler of an endpoint of the lean form, else None. It raises what the endpoint
        raises, and ``RequestValidationError`` for a body that fails the schema, as FastAPI's does."""
        lean = self.lean_parameters()
        if lean is None:
            return None
        body_name, request_name = lean
        endpoint, body_field = self.endpoint, self.body_field

        async def handle_lean(request: Request) -> Response:
            raw = await request.body()
            if not raw:
                raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required",
                                               "input": None}])
            value: Any = raw            # not JSON by its content type: validated as bytes, as by FastAPI
            if _is_json(request.headers.get("content-type")):
                try:
                    value = parse_json(raw)
                except json.JSONDecodeError as e:
                    raise RequestValidationError([{"type": "json_invalid", "loc": ("body", e.pos),
                                                   "msg": "JSON decode error", "input": {},
                                                   "ctx": {"error": e.msg}}], body=e.doc) from e
            body, errors = body_field.validate(value, {}, loc=("body",))
            if errors:
                raise RequestValidationError(errors, body=value)
            return await endpoint(**{body_name: body, request_name: request})

        return handle_lean
