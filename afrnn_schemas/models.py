"""``GET /models``, ``GET /models/{name}`` and the health probes."""

from typing import Any, Literal

from pydantic import Field

from afrnn_schemas.common import Response


class SignatureInfo(Response):
    """A model version's OpenSSF signature (``model.sig`` in its folder), as checked at load."""

    signed: bool = Field(description="the version folder holds a model.sig")
    verified: bool = Field(description="it verified against the trusted key (AFRNN_TRUSTED_KEY)")
    key_fingerprint: str | None = Field(None, description="SHA-256 of the trusted key that verified it")
    detail: str = ""


class ModelVersion(Response):
    """One version of a model in the repository (``<name>/<version>/``; the flat layout is version 1)."""

    version: int = Field(examples=[1])
    status: Literal["ready", "unavailable"]
    reason: str | None = Field(None, description="why the version is unavailable ('loading' while it loads)")
    signature: SignatureInfo | None = None


class ModelSummary(Response):
    name: str = Field(examples=["mnist"])
    task: str | None = Field(examples=["mnist"])
    variant: str | None = Field(examples=["afrnn"])
    parameters: int | None = Field(examples=[50826])
    status: Literal["ready", "unavailable"]
    reason: str | None = Field(None, description="why the model is unavailable ('loading' while it loads)")
    device: str = Field(examples=["cpu"])
    metrics: dict[str, float] = Field(default_factory=dict, description="the manifest's test metrics")
    version: str | None = None
    description: str | None = Field(None, description="the manifest's description of the model")
    checksum_verified: bool = Field(description="the artifact's SHA-256 matched its manifest")
    served_version: int | None = Field(None, description="the repository version that answers requests "
                                                         "without /versions/{v} (the highest ready one)")
    versions: list[ModelVersion] = Field(default_factory=list, description="every version of the name")
    signature: SignatureInfo | None = Field(None, description="the served version's signature check")


class ModelList(Response):
    models: list[ModelSummary]


class ModelDetail(ModelSummary):
    manifest: dict[str, Any] | None = Field(description="the full manifest (null if it did not parse)")
    load_seconds: float | None = None
    queue_depth: int | None = None


class DeviceInfo(Response):
    device: str = Field(examples=["cpu"])
    cuda_available: bool
    cuda_device_name: str | None = None
    torch_version: str
    torch_threads: int


class Liveness(Response):
    status: Literal["alive"] = "alive"


class Readiness(Response):
    status: Literal["ready", "not_ready"]
    reason: str | None = Field(None, description="why not ready: the models loading or unavailable, and why")
    models: dict[str, str] = Field(description="model name → 'ready', or the reason it is not")
    device: DeviceInfo
