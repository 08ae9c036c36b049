"""Dependencies, as ``Annotated`` types: shared state lives on ``app.state`` and reaches handlers here.

The one style: a route declares what it needs as these types (``SettingsDep``, ``RegistryDep``,
``MetricsDep``, ``StabilityDep``, ``ModelDep``). Two places read ``app.state`` through the plain
accessors ``settings_of(request)`` / ``registry_of(request)`` instead, each saying so where it does:

* the hot inference path, ``require_api_key`` and ``POST /classify``: solving a dependency is a
  fixed cost per request, measured against the whole request in docs/performance.md ("Fixed costs",
  ``bench/overheads.py``);
* the stream routes (``service.api.routes.stream``): the WebSocket route and its HTTP fallback share
  one lookup whose errors are stream rules (close codes), not the registry's HTTP errors.

Every dependency is ``async def`` although none awaits: FastAPI runs plain ``def`` dependencies in a
worker thread, one thread hop each, which cost more per request than the rest of the HTTP layer.
"""

from typing import Annotated

from fastapi import Depends, Request, Security
from fastapi.security import APIKeyHeader

from service.config import Settings
from service.errors import API_KEY_HEADER, api_key_error
from service.metrics import ServiceMetrics
from service.registry import ModelRegistry, ServedModel
from service.stability import StabilityReports

_api_key_header = APIKeyHeader(name=API_KEY_HEADER, auto_error=False,
                               description="required on inference and model routes when AFRNN_API_KEY is set")


def settings_of(request: Request) -> Settings:
    return request.app.state.settings


def registry_of(request: Request) -> ModelRegistry:
    return request.app.state.registry


async def get_settings(request: Request) -> Settings:
    return settings_of(request)


async def get_registry(request: Request) -> ModelRegistry:
    return registry_of(request)


async def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


async def get_stability(request: Request) -> StabilityReports:
    return request.app.state.stability


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]
StabilityDep = Annotated[StabilityReports, Depends(get_stability)]


async def require_api_key(request: Request, key: Annotated[str | None, Security(_api_key_header)]) -> None:
    """401 unless the configured API key (if any) is given in the X-API-Key header."""
    expected = settings_of(request).api_key
    error = api_key_error(key, expected.get_secret_value() if expected is not None else None)
    if error is not None:
        raise error


async def get_model(name: str, registry: RegistryDep, request: Request) -> ServedModel:
    """The model named in the path (any state), or 404; tags the request's metrics with it."""
    entry = registry.get(name)
    request.state.model, request.state.model_version = entry.name, str(entry.version)
    return entry


ModelDep = Annotated[ServedModel, Depends(get_model)]
