"""Liveness and readiness probes (never behind the API key; ``GET`` and ``HEAD``).

* ``GET /health/live`` — 200 while the process runs and its event loop answers. The request middleware
  answers it before routing and before any body is read (``service.middleware``), so it never waits
  behind request work; this route documents it (and answers when the app runs without that
  middleware).
* ``GET /health/ready`` — 200 when the models meant to be served are loaded and warm, by
  ``readiness_policy``: ``all`` (the default) — every model found in the model dir; ``any`` — loading
  has finished (no model is still loading) and at least one model is ready, the others being
  unavailable. A model dir without models is never ready. Otherwise 503 with Retry-After and ``reason``, which
  names the models that are loading or unavailable and why (never a server path). From SIGTERM on,
  503 "shutting down" while the in-flight requests drain.

With ``health_port`` set, both are also answered on that port by a thread of their own
(``service.health_port``): there they never wait behind the event loop.
"""

import torch
from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from afrnn_schemas import DeviceInfo, Liveness, Readiness
from service.api.deps import RegistryDep, SettingsDep
from service.api.route_classes import RouteClass, classed
from service.errors import RETRY_AFTER_LOADING_S, retry_after
from service.registry import LOADING, READY, ModelRegistry

router = APIRouter(prefix="/health", tags=["health"])


def device_info(registry: ModelRegistry) -> DeviceInfo:
    cuda = registry.device.type == "cuda"
    return DeviceInfo(device=str(registry.device), cuda_available=torch.cuda.is_available(),
                      cuda_device_name=torch.cuda.get_device_name(registry.device) if cuda else None,
                      torch_version=torch.__version__, torch_threads=torch.get_num_threads())


def readiness(registry: ModelRegistry, policy: str) -> str | None:
    """None when ready under ``policy`` ('all' | 'any'), else why not."""
    entries = list(registry.models.values())
    if not entries:
        return "no models: the model dir holds no manifests (*.json)"
    ready = [e for e in entries if e.state == READY]
    settled = all(e.state != LOADING for e in entries)
    if (policy == "all" and len(ready) == len(entries)) or (policy == "any" and settled and ready):
        return None
    waiting = "; ".join(f"{e.name}: {e.reason or e.state}" for e in entries if e.state != READY)
    return f"{len(ready)} of {len(entries)} models ready (readiness_policy = {policy}); {waiting}"


@router.get("/live", response_model=Liveness)
@classed(RouteClass.PROBE)
async def live() -> Liveness:
    """The process is up."""
    return Liveness()


def readiness_report(registry: ModelRegistry, policy: str, draining: bool = False) -> Readiness:
    """The body of ``/health/ready`` (also answered by ``service.health_port``)."""
    reason = "shutting down: draining in-flight requests" if draining else readiness(registry, policy)
    return Readiness(status="ready" if reason is None else "not_ready", reason=reason,
                     models={e.name: e.reason or e.state      # 'ready', 'loading' or why it is unavailable
                             for e in list(registry.models.values())},
                     device=device_info(registry))


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
@classed(RouteClass.PROBE)
async def ready(request: Request, registry: RegistryDep, settings: SettingsDep):
    """The models meant to be served are loaded and warm, by `readiness_policy` (else 503)."""
    body = readiness_report(registry, settings.readiness_policy, request.app.state.draining)
    if body.reason is None:
        return body
    return JSONResponse(status_code=503, content=body.model_dump(),
                        headers=retry_after(RETRY_AFTER_LOADING_S))


# HEAD answers like GET without the body (load balancers probe with HEAD); not a separate operation in
# the OpenAPI document (one operation id per route).
router.add_api_route("/live", live, methods=["HEAD"], include_in_schema=False)
router.add_api_route("/ready", ready, methods=["HEAD"], include_in_schema=False)
