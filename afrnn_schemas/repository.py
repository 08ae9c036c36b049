"""The model repository's answers (``/v2/repository/*``, the Open Inference Protocol's extension)."""

from typing import Literal

from pydantic import Field

from afrnn_schemas.common import Response


class RepositoryEntry(Response):
    name: str = Field(examples=["mnist"])
    version: str = Field(examples=["2"])
    state: Literal["READY", "LOADING", "UNAVAILABLE"]
    reason: str = Field("", description="why the version is unavailable (empty when ready)")
    signature_verified: bool | None = None


class LoadResult(Response):
    name: str
    loaded: list[str] = Field(description="versions loaded (new or changed)")
    unchanged: list[str] = Field(description="versions already serving, the same files")
    retired: list[str] = Field(description="versions replaced or gone: they drain, then are freed")
    serving_version: str | None = Field(description="the version that now answers by default")
    error: str | None = Field(None, description="the versions that failed, with their reasons")


class UnloadResult(Response):
    name: str
    unloaded: list[str]
