"""The model registry: every manifest in the model dir, loaded, verified, warmed up and batched.

Start-up (LitServe's ``setup`` step, run from the app's lifespan):

1. ``discover`` reads every ``*.json`` in the model dir as a ``training.manifest.Manifest``. A file that
   does not parse, or repeats a name, becomes an *unavailable* entry with the reason.
2. ``load_all`` loads each model in a worker thread with ``artifact.export.load_exported``, which checks
   the artifact's SHA-256 against the manifest BEFORE ``torch.jit.load`` (a TorchScript file is code:
   a file that fails the check is never loaded), and has the module compute what depends on its weights
   alone once (``fix_weights``). The module goes to the device, its task API is built from the manifest
   (``service.tasks``), and it is warmed up with real-shaped batches. Then its ``DynamicBatcher``
   starts and the entry turns *ready*.
3. A model that fails any step is *unavailable*, with the reason; the others are still served (and under
   the default ``readiness_policy`` "all" the service does not turn ready).

Each entry has one ``state``: "loading" → "ready" | "unavailable"; ``reason`` says why an unavailable
entry is unavailable (and is None otherwise). The wire format (``GET /models``) shows a loading model
as status "unavailable" with reason "loading": see ``service.api.routes.models``.
"""

import asyncio
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import torch
from pydantic import ValidationError

from artifact.export import ArtifactIntegrityError, load_exported, read_manifest
from artifact.manifest import Manifest, OutputKind
from service.batching import DynamicBatcher
from service.config import Settings
from service.consistency import check_manifest_matches_module
from service.errors import (
    RETRY_AFTER_LOADING_S,
    InputError,
    ModelNotFoundError,
    ModelNotReadyError,
    retry_after,
)
from service.metrics import ServiceMetrics
from service.tasks import TaskAPI, build_task_api

log = logging.getLogger(__name__)

ModelState = Literal["loading", "ready", "unavailable"]
LOADING: ModelState = "loading"
READY: ModelState = "ready"
UNAVAILABLE: ModelState = "unavailable"


class ModelLoadError(RuntimeError):
    """The registry cannot start: device 'cuda' was requested and torch sees none."""


def resolve_device(requested: str) -> torch.device:
    """'auto' → CUDA when available, else CPU; 'cuda' without a GPU is a configuration error."""
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if requested == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was requested (AFRNN_DEVICE / --device) but torch sees no CUDA "
                             "device; use 'auto' or 'cpu'")
    return torch.device(requested)


@dataclass
class ServedModel:
    """One manifest's entry: its state, and once ready its module, task API and batcher."""

    name: str
    manifest_path: Path
    manifest: Manifest | None = None
    state: ModelState = LOADING
    reason: str | None = None               # why it is unavailable (None while loading or ready)
    device: str = "cpu"
    checksum_verified: bool = False
    load_seconds: float | None = None
    api: TaskAPI | None = None
    batcher: DynamicBatcher | None = None
    executor: ThreadPoolExecutor | None = field(default=None, repr=False)

    @property
    def module(self) -> torch.jit.ScriptModule | None:
        return self.api.module if self.api is not None else None

    def require_ready(self) -> "ServedModel":
        """This entry, or ``ModelNotReadyError`` (503) saying why not."""
        if self.state == LOADING:
            raise ModelNotReadyError(f"model {self.name!r} is still loading",
                                     headers=retry_after(RETRY_AFTER_LOADING_S))
        if self.state != READY:
            raise ModelNotReadyError(f"model {self.name!r} is unavailable: {self.reason}")
        return self


class ModelRegistry:
    """All served models of one app, by name."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics):
        self.settings = settings
        self.metrics = metrics
        self.device = resolve_device(settings.device)
        self.models: dict[str, ServedModel] = {}
        self.loaded = asyncio.Event()

    # -- start-up ---------------------------------------------------------------------------------
    def discover(self) -> None:
        """Read the manifests (cheap); every entry starts 'loading' or, if unreadable, 'unavailable'."""
        model_dir = self.settings.model_dir
        paths = sorted(model_dir.glob("*.json")) if model_dir.is_dir() else []
        if not paths:
            log.warning(f"no manifests (*.json) in model dir {model_dir}; serving no models")
        for path in paths:
            try:
                manifest = read_manifest(path)
            except (ValidationError, ValueError, OSError) as err:
                self._add(ServedModel(path.stem, path, state=UNAVAILABLE,
                                      reason=f"invalid manifest {path.name}: {_one_line(err)}"))
                continue
            if manifest.name in self.models:
                self._add(ServedModel(f"{manifest.name}@{path.name}", path, manifest, state=UNAVAILABLE,
                                      reason=f"duplicate model name {manifest.name!r} (already served from "
                                             f"{self.models[manifest.name].manifest_path.name})"))
                continue
            self._add(ServedModel(manifest.name, path, manifest, device=str(self.device)))

    def _add(self, entry: ServedModel) -> None:
        self.models[entry.name] = entry
        self.metrics.model_ready.labels(model=entry.name).set(0)
        if entry.state == UNAVAILABLE:
            log.error("model unavailable", extra={"model": entry.name, "reason": entry.reason})

    async def load_all(self) -> None:
        """Load, verify and warm every discovered model (one at a time, each in a thread)."""
        try:
            for entry in list(self.models.values()):
                if entry.state == LOADING:
                    await self._load(entry)
        finally:
            self.loaded.set()

    async def _load(self, entry: ServedModel) -> None:
        started = time.perf_counter()
        try:
            module, api = await asyncio.to_thread(self._load_and_warm, entry)
        except ArtifactIntegrityError as err:
            entry.state, entry.reason = UNAVAILABLE, f"artifact refused: {_one_line(err)}"
        except Exception as err:                                   # noqa: BLE001 — any failure marks it
            entry.state, entry.reason = UNAVAILABLE, f"{type(err).__name__}: {_one_line(err)}"
        else:
            s = self.settings
            entry.api = api
            entry.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-{entry.name}")
            entry.batcher = DynamicBatcher(
                entry.name, api.run_batch, max_batch_size=s.max_batch_size,
                max_queue_delay_s=s.max_queue_delay_s, max_queue_length=s.max_queue_length,
                request_timeout_s=s.request_timeout_s, executor=entry.executor,
                on_batch=lambda rows, t, waits, name=entry.name: self.metrics.observe_batch(
                    name, rows, t, waits),
                on_queue_depth=self.metrics.queue_depth.labels(model=entry.name).set,
                on_error=lambda err, name=entry.name: self.metrics.inference_errors.labels(model=name).inc())
            entry.batcher.start()
            entry.state, entry.reason = READY, None
            entry.load_seconds = time.perf_counter() - started
            self.metrics.model_ready.labels(model=entry.name).set(1)
            self.metrics.models_loaded.inc()
            log.info("model ready", extra={"model": entry.name, "device": entry.device,
                                           "load_seconds": round(entry.load_seconds, 3)})
            return
        log.error("model unavailable", extra={"model": entry.name, "reason": entry.reason})

    def _load_and_warm(self, entry: ServedModel) -> tuple[torch.jit.ScriptModule, TaskAPI]:
        module, manifest = load_exported(entry.manifest_path, map_location=self.device)
        check_manifest_matches_module(manifest, module)          # before any forward pass
        entry.checksum_verified = True
        entry.manifest = manifest
        api = build_task_api(manifest, module, self.device)
        api.warmup(self.settings.max_batch_size)
        return module, api

    # -- lookups ----------------------------------------------------------------------------------
    def get(self, name: str) -> ServedModel:
        """The entry called ``name`` (any state), or ``ModelNotFoundError`` (404) listing the served names."""
        try:
            return self.models[name]
        except KeyError:
            shown = name if len(name) <= 64 else name[:64] + f"… ({len(name)} characters)"
            raise ModelNotFoundError(f"unknown model {shown!r}; served models: {sorted(self.models)}"
                                     ) from None

    def resolve(self, name: str | None, kind: OutputKind, default: str | None = None) -> ServedModel:
        """The ready model a request asks for, of the ``kind`` (``output.kind``) the endpoint serves.

        ``name`` may be omitted when exactly one model of that kind is served, or when one of them is
        called ``default`` (``/pendulum/predict``'s ``pendulum`` among ``pendulum``, ``pendulum-10s`` and
        ``pendulum-paper``).
        """
        if name is None:
            candidates = self.names_of(kind)
            if len(candidates) == 1:
                name = candidates[0]
            elif default is not None and default in candidates:
                name = default
            else:
                unnamed = f", none of them named {default!r}" if default is not None else ""
                raise InputError(("model",), f"model is required: {len(candidates)} models with output.kind "
                                             f"{kind!r} are served{unnamed} ({sorted(candidates)})")
            entry = self.models[name]
        else:
            entry = self.get(name)
        if entry.manifest is not None and entry.manifest.output.kind != kind:
            raise InputError(("model",), f"model {entry.name!r} (task {entry.manifest.task}) is not served "
                                         f"here: its output.kind is {entry.manifest.output.kind!r}, this "
                                         f"endpoint serves output.kind {kind!r} "
                                         f"({sorted(self.names_of(kind))})")
        return entry.require_ready()

    def names_of(self, kind: OutputKind) -> list[str]:
        """The served models whose manifest's ``output.kind`` is ``kind``."""
        return [e.name for e in self.models.values()
                if e.manifest is not None and e.manifest.output.kind == kind]

    @property
    def ready(self) -> bool:
        """Loading has finished and every model not marked unavailable is loaded and warm."""
        return self.loaded.is_set() and all(e.state != LOADING for e in self.models.values())

    # -- shutdown ---------------------------------------------------------------------------------
    async def close(self, drain_timeout_s: float) -> None:
        """Stop every batcher after its queue has drained (graceful shutdown)."""
        batchers = [e for e in self.models.values() if e.batcher is not None]
        await asyncio.gather(*(e.batcher.close(drain_timeout_s) for e in batchers))
        for entry in batchers:
            entry.executor.shutdown(wait=True)


# An absolute file path: reasons are shown by open endpoints, so only the file name is kept.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/])/(?:[^\s/:'\"]+/)+([^\s/:'\"]+)")


def _one_line(err: BaseException) -> str:
    """The error's message on one line, at most 500 characters, with server paths cut to file names."""
    return _ABSOLUTE_PATH.sub(r"\1", " ".join(str(err).split()))[:500]
