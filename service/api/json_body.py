"""JSON request bodies parsed by pydantic-core's Rust parser instead of the standard library's.

FastAPI reads a JSON body with ``await request.json()``, i.e. ``json.loads``, the largest single
cost of a /classify request in the HTTP layer. ``pydantic_core.from_json`` builds the same Python
objects several times faster (docs/performance.md, "Fixed costs"; NaN and ±Infinity tokens are
accepted, as by ``json.loads``, and left to the handlers' finiteness rules). Routers opt in with
``APIRouter(route_class=FastJSONRoute)``; nothing else about the route changes (the body is still
validated against its pydantic model, and documented).

A malformed body still gets FastAPI's 422 ``json_invalid`` error at the position of the fault:
the parser's ``ValueError`` is re-raised as the ``json.JSONDecodeError`` FastAPI handles.
"""

import json
import re
from collections.abc import Callable, Coroutine
from typing import Any

import pydantic_core
from fastapi import Request, Response
from fastapi.routing import APIRoute

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


class FastJSONRoute(APIRoute):
    """An ``APIRoute`` whose handler sees a ``FastJSONRequest``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def handle_with_fast_json(request: Request) -> Response:
            return await handle(FastJSONRequest(request.scope, request.receive, request._send))

        return handle_with_fast_json
