"""``GET /models`` and ``GET /models/{name}``: manifests with load status, device and checksum flag."""

from fastapi import APIRouter

from afrnn_schemas import ERROR_RESPONSES, ModelDetail, ModelList, ModelSummary
from service.api.deps import ModelDep, RegistryDep
from service.api.route_classes import RouteClass, classed
from service.registry import LOADING, READY, UNAVAILABLE, ServedModel

router = APIRouter(prefix="/models", tags=["models"])


def _summary(entry: ServedModel) -> dict:
    manifest = entry.manifest
    return dict(
        # the wire shows a loading model as "unavailable" with reason "loading"
        name=entry.name, status=READY if entry.state == READY else UNAVAILABLE,
        reason=LOADING if entry.state == LOADING else entry.reason, device=entry.device,
        checksum_verified=entry.checksum_verified,
        task=manifest.task if manifest else None,
        variant=manifest.architecture.variant if manifest else None,
        parameters=manifest.parameters if manifest else None,
        metrics=dict(manifest.metrics) if manifest else {},
        version=manifest.version if manifest else None,
        description=manifest.description if manifest else None)


@router.get("", response_model=ModelList, responses=ERROR_RESPONSES)
@classed(RouteClass.READ)
async def list_models(registry: RegistryDep) -> ModelList:
    """Every model found in the model dir, served or not (then with the reason)."""
    return ModelList(models=[ModelSummary(**_summary(e)) for e in registry.models.values()])


@router.get("/{name}", response_model=ModelDetail, responses=ERROR_RESPONSES)
@classed(RouteClass.READ)
async def get_model(entry: ModelDep) -> ModelDetail:
    """One model: its full manifest, load status, device and whether its checksum was verified."""
    return ModelDetail(
        **_summary(entry),
        manifest=entry.manifest.model_dump(mode="json") if entry.manifest else None,
        load_seconds=entry.load_seconds,
        queue_depth=entry.batcher.queue_depth if entry.batcher else None)
