"""``GET /models`` and ``GET /models/{name}``: manifests with load status, device, checksum flag, the
repository versions of each name and their signature checks."""

from fastapi import APIRouter

from afrnn_schemas import ERROR_RESPONSES, ModelDetail, ModelList, ModelSummary, ModelVersion, SignatureInfo
from service.api.deps import ModelDep, RegistryDep
from service.api.route_classes import RouteClass, classed
from service.registry import LOADING, READY, UNAVAILABLE, ModelRegistry, ServedModel

router = APIRouter(prefix="/models", tags=["models"])


def _signature(entry: ServedModel) -> SignatureInfo | None:
    s = entry.signature
    return None if s is None else SignatureInfo(signed=s.signed, verified=s.verified,
                                                key_fingerprint=s.key_fingerprint, detail=s.detail)


def _status(entry: ServedModel) -> tuple[str, str | None]:
    # the wire shows a loading model as "unavailable" with reason "loading"
    return (READY if entry.state == READY else UNAVAILABLE,
            LOADING if entry.state == LOADING else entry.reason)


def _summary(entry: ServedModel, registry: ModelRegistry) -> dict:
    manifest = entry.manifest
    status, reason = _status(entry)
    versions = [ModelVersion(version=v.version, status=_status(v)[0], reason=_status(v)[1],
                             signature=_signature(v))
                for _, v in sorted(registry.versions.get(entry.name, {}).items())]
    return dict(
        name=entry.name, status=status, reason=reason, device=entry.device,
        checksum_verified=entry.checksum_verified,
        task=manifest.task if manifest else None,
        variant=manifest.architecture.variant if manifest else None,
        parameters=manifest.parameters if manifest else None,
        metrics=dict(manifest.metrics) if manifest else {},
        version=manifest.version if manifest else None,
        description=manifest.description if manifest else None,
        served_version=entry.version if entry.state == READY else None, versions=versions,
        signature=_signature(entry))


@router.get("", response_model=ModelList, responses=ERROR_RESPONSES)
@classed(RouteClass.READ)
async def list_models(registry: RegistryDep) -> ModelList:
    """Every model found in the model dir, served or not (then with the reason)."""
    return ModelList(models=[ModelSummary(**_summary(e, registry)) for e in list(registry.models.values())])


@router.get("/{name}", response_model=ModelDetail, responses=ERROR_RESPONSES)
@classed(RouteClass.READ)
async def get_model(entry: ModelDep, registry: RegistryDep) -> ModelDetail:
    """One model: its full manifest, load status, device and whether its checksum was verified."""
    return ModelDetail(
        **_summary(entry, registry),
        manifest=entry.manifest.model_dump(mode="json") if entry.manifest else None,
        load_seconds=entry.load_seconds,
        queue_depth=entry.batcher.queue_depth if entry.batcher else None)
