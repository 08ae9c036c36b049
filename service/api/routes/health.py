"""Liveness and readiness probes (never behind the API key).

* ``GET /health/live`` — 200 while the process runs and its event loop answers.
* ``GET /health/ready`` — 200 once every model not marked unavailable is loaded and warm; 503 (with
  Retry-After) before that. A model that failed to load does not hold readiness back: it is reported
  in ``models`` and in ``GET /models``.
"""

import torch
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from service.api.deps import RegistryDep
from service.registry import ModelRegistry
from service.schemas import DeviceInfo, Liveness, Readiness

router = APIRouter(prefix="/health", tags=["health"])


def device_info(registry: ModelRegistry) -> DeviceInfo:
    cuda = registry.device.type == "cuda"
    return DeviceInfo(device=str(registry.device), cuda_available=torch.cuda.is_available(),
                      cuda_device_name=torch.cuda.get_device_name(registry.device) if cuda else None,
                      torch_version=torch.__version__, torch_threads=torch.get_num_threads())


@router.get("/live", response_model=Liveness)
async def live() -> Liveness:
    """The process is up."""
    return Liveness()


@router.get("/ready", response_model=Readiness, responses={503: {"model": Readiness}})
async def ready(registry: RegistryDep):
    """Every model not marked unavailable is loaded and warm (else 503)."""
    body = Readiness(status="ready" if registry.ready else "not_ready",
                     models={e.name: e.reason or e.state      # 'ready', 'loading' or why it is unavailable
                             for e in registry.models.values()},
                     device=device_info(registry))
    if registry.ready:
        return body
    return JSONResponse(status_code=503, content=body.model_dump(), headers={"Retry-After": "2"})
