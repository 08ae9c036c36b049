"""What each endpoint call sends and how its answer is read: shared by the sync and async clients."""

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from pydantic import BaseModel

from afrnn_client.errors import ApiError
from afrnn_client.retry import parse_retry_after
from afrnn_schemas import (
    ClassifyRequest,
    ClassifyResponse,
    Liveness,
    LoadResult,
    ModelDetail,
    ModelList,
    PendulumRequest,
    PendulumResponse,
    Readiness,
    RepositoryEntry,
    StabilityReport,
    StabilityRequest,
    UnloadResult,
)

DEFAULT_URL = "http://127.0.0.1:8000"
API_KEY_ENV = "AFRNN_API_KEY"
URL_ENV = "AFRNN_URL"


@dataclass
class Call:
    method: str
    path: str
    parse: Callable[[httpx.Response], Any]
    json: Any = None
    params: Any = None
    retry: bool = True
    ok: tuple[int, ...] = (200,)          # statuses that are answers, not errors


def settings(base_url: str | None, api_key: str | None) -> tuple[str, dict[str, str]]:
    """The base URL (argument, ``AFRNN_URL``, default) and headers (API key: argument or
    ``AFRNN_API_KEY``)."""
    url = (base_url or os.environ.get(URL_ENV) or DEFAULT_URL).rstrip("/")
    key = api_key if api_key is not None else os.environ.get(API_KEY_ENV)
    return url, ({"X-API-Key": key} if key else {})


def body(model: BaseModel) -> dict:
    """A request model as JSON with only the fields that were set: defaults stay the server's, and a
    field the server checks for presence (e.g. stability's `units`) is sent only when given."""
    return model.model_dump(mode="json", exclude_unset=True)


def typed(cls: type[BaseModel]) -> Callable[[httpx.Response], Any]:
    return lambda response: cls.model_validate_json(response.content)


def error_of(response: httpx.Response) -> ApiError:
    """The ``ApiError`` of an error response: status, the server's detail and the field it named."""
    retry_after = parse_retry_after(response.headers.get("retry-after"))
    try:
        payload = response.json()
    except ValueError:
        return ApiError(response.status_code, response.text[:500] or response.reason_phrase,
                        retry_after_s=retry_after)
    # our routes say "detail"; the Open Inference Protocol's (/v2) say "error"
    detail = (payload.get("detail", payload.get("error"))) if isinstance(payload, dict) else None
    if isinstance(detail, list) and detail:
        first = detail[0]
        loc = list(first.get("loc", []))
        if loc and loc[0] in ("body", "query", "path", "header"):
            loc = loc[1:]
        return ApiError(response.status_code, str(first.get("msg", "")), tuple(loc) or None, detail,
                        retry_after)
    return ApiError(response.status_code, str(detail if detail is not None else payload), None, None,
                    retry_after)


# -- the endpoints --------------------------------------------------------------------------------
def classify(request: ClassifyRequest | None, kwargs: dict) -> Call:
    request = request if request is not None else ClassifyRequest(**kwargs)
    return Call("POST", "/classify", typed(ClassifyResponse), json=body(request))


def predict_pendulum(request: PendulumRequest | None, kwargs: dict) -> Call:
    request = request if request is not None else PendulumRequest(**kwargs)
    return Call("POST", "/pendulum/predict", typed(PendulumResponse), json=body(request))


def models() -> Call:
    return Call("GET", "/models", typed(ModelList))


def model(name: str) -> Call:
    return Call("GET", f"/models/{name}", typed(ModelDetail))


def index() -> Call:
    """``POST /v2/repository/index`` (the admin key)."""
    return Call("POST", "/v2/repository/index",
                lambda r: [RepositoryEntry.model_validate(row) for row in r.json()], json={}, retry=False)


def load(name: str) -> Call:
    """``POST /v2/repository/models/{name}/load`` (the admin key): 400 carries the failed versions."""
    return Call("POST", f"/v2/repository/models/{quote(name, safe='')}/load", typed(LoadResult), retry=False)


def unload(name: str) -> Call:
    # the name travels as one path segment, whatever it holds: the server judges it (400 for a path)
    return Call("POST", f"/v2/repository/models/{quote(name, safe='')}/unload", typed(UnloadResult),
                retry=False)


def stability(name: str, request: StabilityRequest | None, kwargs: dict) -> Call:
    request = request if request is not None else StabilityRequest(**kwargs)
    return Call("POST", f"/models/{name}/stability", typed(StabilityReport), json=body(request))


def stability_png(name: str, sections: list[str] | None, lyapunov_k: int) -> Call:
    params: dict[str, Any] = {"lyapunov_k": lyapunov_k}
    if sections:
        params["sections"] = list(sections)
    return Call("GET", f"/models/{name}/stability.png", lambda r: r.content, params=params)


def health_live() -> Call:
    return Call("GET", "/health/live", typed(Liveness))


def health_ready() -> Call:
    """Readiness: a 503 is an answer here (status 'not_ready'), not an error to retry."""
    return Call("GET", "/health/ready", typed(Readiness), retry=False, ok=(200, 503))


def metrics() -> Call:
    return Call("GET", "/metrics", lambda r: r.text)
