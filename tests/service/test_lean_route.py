"""The lean handler of ``FastJSONRoute`` (``service.api.json_body``) and the guard's direct routes
(``service.middleware``) against FastAPI's own handler, the oracle: one endpoint served three ways —
FastAPI's handler with the same JSON parser, a ``FastJSONRoute`` (the lean handler inside FastAPI's
router) and the same route called directly by ``RequestGuardMiddleware`` — must answer every request
with the same status and body, the malformed ones included. FastAPI's handler with ``json.loads`` (a
plain ``APIRoute``) answers the same too, except for the position of a truncated document's fault
(tests/service/test_json_body.py)."""

import asyncio

import httpx
import pytest
from fastapi import APIRouter, FastAPI, Request, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, Field

from service.admission import AdmissionGate
from service.api.deps import require_api_key
from service.api.json_body import FastJSONRoute
from service.api.route_classes import RouteClass, RouteTable, UnclassedRouteError, classed
from service.app import direct_routes
from service.errors import InputError, install_exception_handlers
from service.middleware import RequestGuardMiddleware


class Item(BaseModel):
    name: str
    values: list[float] = Field(min_length=1)
    scale: float | None = None


@classed(RouteClass.WORK)
async def echo(body: Item, request: Request) -> Response:
    if body.name == "bad":
        raise InputError(("name",), "name must not be 'bad'")
    if body.name == "crash":
        raise RuntimeError("a bug")
    return Response(body.model_dump_json(), media_type="application/json")


def make_app(route_class: type[APIRoute], direct: bool) -> FastAPI:
    router = APIRouter(route_class=route_class)
    router.add_api_route("/classify", echo, methods=["POST"], response_model=Item)
    app = FastAPI()
    app.include_router(router)
    install_exception_handlers(app)
    app.add_middleware(RequestGuardMiddleware, routes=RouteTable.for_app(app), max_body_bytes=1 << 20,
                       body_timeout_s=5, request_timeout_s=5,
                       gate=AdmissionGate(8), retry_after=lambda: 1,
                       direct=direct_routes(router) if direct else None)
    return app


CASES = [
    ({"content-type": "application/json"}, b'{"name": "a", "values": [1, 2.5], "scale": 255}'),
    ({"content-type": "application/json; charset=utf-8"}, b'{"name": "a", "values": [0]}'),
    ({"content-type": "application/vnd.api+json"}, b'{"name": "a", "values": [0]}'),
    ({"content-type": "application/json"}, b'{"name": "a", "values": []}'),
    ({"content-type": "application/json"}, b'{"name": 3, "values": ["x"], "scale": "big"}'),
    ({"content-type": "application/json"}, b'{"values": [1]}'),
    ({"content-type": "application/json"}, b'[1, 2]'),
    ({"content-type": "application/json"}, b'{"name": "a", "values": [1,]}'),
    ({"content-type": "application/json"}, b'{"name": "a", "val'),
    ({"content-type": "application/json"}, b""),
    ({"content-type": "text/plain"}, b'{"name": "a", "values": [1]}'),
    ({}, b'{"name": "a", "values": [1]}'),
    ({"content-type": "application/json"}, b'{"name": "bad", "values": [1]}'),
    ({"content-type": "application/json"}, b'{"name": "crash", "values": [1]}'),
    ({"content-type": "application/json"}, b"\xff\xfe"),
]


class FastAPIHandlerRoute(FastJSONRoute):
    """FastAPI's own handler with the fast parser: the lean form switched off."""

    def lean_parameters(self):
        return None


TRUNCATED = {b'{"name": "a", "val'}


@pytest.fixture(scope="module")
def apps():
    return {"fastapi": make_app(FastAPIHandlerRoute, direct=False),
            "stdlib": make_app(APIRoute, direct=False),
            "lean": make_app(FastJSONRoute, direct=False), "direct": make_app(FastJSONRoute, direct=True)}


async def post(app: FastAPI, headers: dict, body: bytes) -> tuple[int, object]:
    transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        response = await client.post("/classify", content=body, headers=headers)
    return response.status_code, response.json()


@pytest.mark.parametrize(("headers", "body"), CASES)
def test_every_handler_answers_as_fastapi_does(apps, headers, body):
    answers = {name: asyncio.run(post(app, headers, body)) for name, app in apps.items()}
    assert answers["fastapi"][0] in (200, 422, 500)
    assert answers["lean"] == answers["fastapi"]
    assert answers["direct"] == answers["fastapi"]
    if body not in TRUNCATED:
        assert answers["stdlib"] == answers["fastapi"]


def test_the_lean_form_is_recognised_and_other_endpoints_keep_fastapis_handler():
    async def with_query(body: Item, request: Request, limit: int = 3) -> Response: ...
    async def returns_model(body: Item, request: Request) -> Item: ...
    async def no_request(body: Item) -> Response: ...

    def route(endpoint, **kwargs) -> FastJSONRoute:
        return FastJSONRoute("/x", endpoint, methods=["POST"], **kwargs)

    assert route(echo).lean_parameters() == ("body", "request")
    assert route(echo, dependencies=[]).lean_handler() is not None
    for endpoint in (with_query, returns_model, no_request):
        assert route(endpoint).lean_handler() is None, endpoint.__name__

    async def other_dependency() -> None: ...
    from fastapi import Depends
    assert route(echo, dependencies=[Depends(other_dependency)]).lean_handler() is None
    assert route(echo, dependencies=[Depends(require_api_key)]).lean_handler() is not None


def test_a_direct_route_must_be_behind_the_api_key_check():
    @classed(RouteClass.READ)
    async def read_echo(body: Item, request: Request) -> Response:
        return await echo(body, request)

    router = APIRouter(route_class=FastJSONRoute)
    router.add_api_route("/open", read_echo, methods=["POST"])
    app = FastAPI()
    app.include_router(router)
    with pytest.raises(ValueError, match="work routes"):
        RequestGuardMiddleware(app, routes=RouteTable.for_app(app), max_body_bytes=1024, body_timeout_s=1,
                               request_timeout_s=1, gate=AdmissionGate(1), retry_after=lambda: 1,
                               direct=direct_routes(router))


def test_a_route_without_a_class_stops_the_table():
    """A new route cannot silently skip the key or the admission gate: the app does not build."""
    async def unclassed(body: Item, request: Request) -> Response:
        return await echo(body, request)

    router = APIRouter()
    router.add_api_route("/new", unclassed, methods=["POST"])
    app = FastAPI()
    app.include_router(router)
    with pytest.raises(UnclassedRouteError, match="/new"):
        RouteTable.for_app(app)


def test_every_route_of_the_service_declares_its_class():
    from service.app import create_app

    app = create_app()
    table = RouteTable.for_app(app)
    assert table.match("POST", "/classify") == ("/classify", RouteClass.WORK)
    assert table.match("POST", "/v2/models/m/versions/2/infer")[1] is RouteClass.WORK
    assert table.match("GET", "/v2/models/m")[1] is RouteClass.READ
    assert table.match("POST", "/models/m/stability")[1] is RouteClass.HEAVY
    assert table.match("POST", "/v2/repository/models/m/load")[1] is RouteClass.ADMIN
    assert table.match("GET", "/health/ready")[1] is RouteClass.PROBE
    assert table.match("GET", "/metrics")[1] is RouteClass.OPEN
    assert table.match("GET", "/no/such/route") is None


def test_the_protocols_infer_routes_are_direct_work_routes():
    from service.api.routes import v2

    direct = v2.direct_routes()
    assert set(direct) == {("POST", "/v2/models/{name}/infer"),
                           ("POST", "/v2/models/{name}/versions/{version}/infer")}
    app = FastAPI()
    app.include_router(v2.router)
    RequestGuardMiddleware(app, routes=RouteTable.for_app(app), max_body_bytes=1024, body_timeout_s=1,
                           request_timeout_s=1, gate=AdmissionGate(1), retry_after=lambda: 1, direct=direct)
