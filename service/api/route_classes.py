"""Every route declares its class; the request guard (``service.middleware``) reads it.

=======  ==========================  ===========  =========  ======================================
class    routes                      API key      admission  meaning
=======  ==========================  ===========  =========  ======================================
probe    ``/health/*``, ``/v2/health/*``  no      no         the orchestrator's probes
open     ``/``, ``/static/*``, docs, ``/metrics``  no  no    the page, the OpenAPI docs, the scrape
read     ``/models*``, ``/samples/*``, streams,   yes  no    metadata and the streams (which have
         V2 metadata                                         their own limit, ``stream_max_open``)
work     ``/classify``, ``/pendulum/predict``,    yes  yes   inference through the batchers
         V2 ``infer``
heavy    stability reports                       yes  yes   CPU-heavy jobs of the work lane
admin    ``/v2/repository/*``         admin key   no         loading and unloading models
=======  ==========================  ===========  =========  ======================================

A route declares its class with the ``classed`` decorator under the router's own decorator::

    @router.post("/classify", ...)
    @classed(RouteClass.WORK)
    async def classify(...): ...

``RouteTable.for_app(app)`` reads the classes of every route of the app when the middleware is built, and
refuses to build when one has none: a new route cannot silently skip the key or the admission gate.
Only FastAPI's own OpenAPI document and mounted static folders are open without declaring it.
"""

import enum
import re
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from starlette.routing import BaseRoute, Mount, Route, WebSocketRoute, compile_path

F = TypeVar("F", bound=Callable[..., Any])
_ATTRIBUTE = "__afrnn_route_class__"


class RouteClass(enum.StrEnum):
    PROBE = "probe"
    OPEN = "open"
    READ = "read"
    WORK = "work"
    HEAVY = "heavy"
    ADMIN = "admin"

    @property
    def needs_key(self) -> bool:
        """The inference API key, when one is configured."""
        return self in (RouteClass.READ, RouteClass.WORK, RouteClass.HEAVY)

    @property
    def admitted(self) -> bool:
        """Counted against ``max_inflight_requests`` before the body is read (503 beyond)."""
        return self in (RouteClass.WORK, RouteClass.HEAVY)


def classed(route_class: RouteClass) -> Callable[[F], F]:
    """Mark an endpoint with its route class."""
    def mark(endpoint: F) -> F:
        setattr(endpoint, _ATTRIBUTE, route_class)
        return endpoint
    return mark


def class_of(endpoint: Callable[..., Any]) -> RouteClass | None:
    return getattr(endpoint, _ATTRIBUTE, None)


class UnclassedRouteError(RuntimeError):
    """An app route without a declared class."""


def _flatten(routes: Iterable[Any], prefix: str) -> Iterable[tuple[str, Any]]:
    """(prefix, route) for every route, inside included routers too (FastAPI keeps an included router
    as one entry of the app's routes, with the router's own routes and the prefix it was included at)."""
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            context = getattr(route, "include_context", None)
            yield from _flatten(original.routes, prefix + (getattr(context, "prefix", "") or ""))
        else:
            yield prefix, route


class RouteTable:
    """``(method, path)`` → (route template, class): static paths by one dict lookup, templated paths by
    their compiled patterns, in the app's order."""

    def __init__(self, static: dict[tuple[str, str], tuple[str, RouteClass]],
                 templated: list[tuple[frozenset[str], re.Pattern[str], str, RouteClass]]):
        self.static = static
        self.templated = templated

    @classmethod
    def of(cls, routes: Iterable[BaseRoute], open_paths: Iterable[str] = ()) -> "RouteTable":
        open_paths = set(open_paths)
        static: dict[tuple[str, str], tuple[str, RouteClass]] = {}
        templated = []
        missing = []
        for prefix, route in _flatten(routes, ""):
            # static folders; the WebSocket route checks its own key
            if isinstance(route, (Mount, WebSocketRoute)) or not isinstance(route, Route):
                continue
            path = prefix + route.path
            found = class_of(route.endpoint)
            if found is None and path in open_paths:
                found = RouteClass.OPEN
            if found is None:
                missing.append(f"{sorted(route.methods or [])} {path}")
                continue
            methods = frozenset(route.methods or ())
            regex, _, convertors = compile_path(path)
            if convertors:
                templated.append((methods, regex, path, found))
            else:
                static.update({(method, path): (path, found) for method in methods})
        if missing:
            raise UnclassedRouteError(f"routes without a route class (service.api.route_classes): {missing}")
        return cls(static, templated)

    @classmethod
    def for_app(cls, app: Any) -> "RouteTable":
        """The table of a FastAPI app: its routes, with FastAPI's own OpenAPI document and docs pages open."""
        framework = (getattr(app, "openapi_url", None), getattr(app, "docs_url", None),
                     getattr(app, "redoc_url", None), getattr(app, "swagger_ui_oauth2_redirect_url", None))
        return cls.of(app.routes, open_paths=[p for p in framework if p])

    def match(self, method: str, path: str) -> tuple[str, RouteClass] | None:
        """The template and class of the route that serves ``method path``, or None (404 or 405 ahead)."""
        found = self.static.get((method, path))
        if found is not None:
            return found
        for methods, pattern, template, route_class in self.templated:
            if method in methods and pattern.match(path):
                return template, route_class
        return None
