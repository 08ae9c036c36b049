"""The model registry: the model repository, loaded, verified, warmed up and batched, by name and version.

**Layout.** The model dir holds Triton-style version folders, ``<name>/<version>/`` (a positive
integer), each with one manifest (``*.json``) and its artifact; a manifest directly in the model dir
(the flat layout, ``<name>.json`` + ``<name>.pt``) is version 1 of its name. By default a name is served
by its highest *ready* version; every loaded version is reachable by number.

Start-up (LitServe's ``setup`` step, run from the app's lifespan):

1. ``discover`` reads every manifest as a ``artifact.manifest.Manifest``. A file that does not parse, a
   name that differs from its folder's, or a name served twice becomes an *unavailable* entry with the
   reason.
2. ``load_all`` loads each version in a worker thread with ``artifact.export.load_exported``, which checks
   the artifact's SHA-256 against the manifest BEFORE ``torch.jit.load`` (a TorchScript file is code:
   a file that fails the check is never loaded), and has the module compute what depends on its weights
   alone once (``fix_weights``). With a trusted key configured, the version folder's signature is checked
   first (``artifact.signing``). The module goes to the device, its task API is built from the manifest
   (``service.tasks``), and it is warmed up with real-shaped batches. Then its ``DynamicBatcher``
   starts and the entry turns *ready*.
3. A version that fails any step is *unavailable*, with the reason; the others are still served (and
   under the default ``readiness_policy`` "all" the service does not turn ready).

Repository control (``model_control = "explicit"``): ``load(name)`` re-reads that name's versions and
loads what is new or changed *beside* what serves, then switches traffic in one assignment on the
event loop; ``unload(name)`` takes the name out of traffic. A version taken out of traffic is
*retired*: its batcher refuses new work and finishes what it holds, its open streams end on it, and
only then are its thread and module freed. A failed load never touches the serving version.

Between resolving a model and queueing its job, a request handler does not await (decode is
synchronous), so a request that resolved a version always reaches that version's batcher before it can
retire: a swap fails no request.

Each entry has one ``state``: "loading" → "ready" | "unavailable"; ``reason`` says why an unavailable
entry is unavailable (and is None otherwise). The wire format (``GET /models``) shows a loading model
as status "unavailable" with reason "loading": see ``service.api.routes.models``.
"""

import asyncio
import contextlib
import hashlib
import logging
import os
import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import ValidationError

from artifact.export import ArtifactIntegrityError, load_exported
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
from service.signatures import SignatureRefusedError
from service.tasks import TaskAPI, build_task_api

log = logging.getLogger(__name__)

ModelState = Literal["loading", "ready", "unavailable"]
LOADING: ModelState = "loading"
READY: ModelState = "ready"
UNAVAILABLE: ModelState = "unavailable"

# A model name as the repository API accepts it: a folder name of the model dir, never a path or a URL.
MODEL_NAME = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,63}$")
# How often a retiring version looks whether its open streams have ended.
RETIRE_POLL_S = 0.1
# The loading thread's nice value: a version that loads and warms up beside the serving ones takes the
# CPU the model threads leave (Linux schedules threads by their own nice value).
LOADER_NICE = 19


def _lower_priority() -> None:
    """Make the calling thread (the loader) yield the CPU to the model threads; where the OS does not
    allow it, it runs at the process's priority."""
    with contextlib.suppress(AttributeError, OSError):
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), LOADER_NICE)


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


def check_model_name(name: str) -> str:
    """``name`` if it can only name a folder of the model dir, else ``InputError`` (400 on the repository
    routes): no separators, no ``..``, no scheme, at most 64 characters."""
    if not MODEL_NAME.fullmatch(name) or ".." in name:
        shown = name if len(name) <= 64 else name[:64] + f"… ({len(name)} characters)"
        raise InputError(("name",), f"{shown!r} is not a model name: a model is named by its folder in the "
                                    "model dir, 1–64 characters of a–z, 0–9, '.', '_', '-' (starting with a "
                                    "letter or digit, no '..'), never a path or a URL")
    return name


@dataclass
class ServedModel:
    """One manifest's entry (one version of a name): its state, and once ready its module, task API and
    batcher."""

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
    version: int = 1                        # the repository version (flat layout: 1)
    flat: bool = True                       # a manifest directly in the model dir
    fingerprint: str = ""                   # what a load compares to tell a changed version from the same
    signature: Any = None                   # artifact.signing.SignatureStatus, when checked or reported

    @property
    def module(self) -> torch.jit.ScriptModule | None:
        return self.api.module if self.api is not None else None

    @property
    def key(self) -> str:
        """``name@version``: the entry's identity for its batcher threads and stream batchers."""
        return f"{self.name}@{self.version}"

    @property
    def folder(self) -> Path:
        return self.manifest_path.parent

    def require_ready(self) -> "ServedModel":
        """This entry, or ``ModelNotReadyError`` (503) saying why not."""
        if self.state == LOADING:
            raise ModelNotReadyError(f"model {self.name!r} is still loading",
                                     headers=retry_after(RETRY_AFTER_LOADING_S))
        if self.state != READY:
            raise ModelNotReadyError(f"model {self.name!r} is unavailable: {self.reason}")
        return self


@dataclass
class LoadOutcome:
    """What one ``load(name)`` did: the versions loaded, kept, retired, and those that failed (with
    their reasons)."""

    name: str
    loaded: list[int] = field(default_factory=list)
    unchanged: list[int] = field(default_factory=list)
    retired: list[int] = field(default_factory=list)
    failed: dict[int, str] = field(default_factory=dict)
    serving: int | None = None


class ModelRegistry:
    """All served models of one app, by name and version."""

    def __init__(self, settings: Settings, metrics: ServiceMetrics, streams: Any = None,
                 verifier: Any = None):
        self.settings = settings
        self.metrics = metrics
        self.streams = streams              # service.streaming.StreamHub: retiring versions wait for it
        self.verifier = verifier            # service.signatures.SignaturePolicy (None: not checked)
        if verifier is not None and verifier.enforced:
            log.info("model signatures enforced", extra={"trusted_key_fingerprint": verifier.fingerprint})
        self.device = resolve_device(settings.device)
        self.versions: dict[str, dict[int, ServedModel]] = {}
        self.models: dict[str, ServedModel] = {}     # the entry that serves each name by default
        self.loaded = asyncio.Event()
        self._control = asyncio.Lock()               # one load or unload at a time
        self._loader = ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-loader",
                                          initializer=_lower_priority)
        self._retiring: set[asyncio.Task] = set()

    # -- discovery --------------------------------------------------------------------------------
    def _scan(self, only: str | None = None) -> list[ServedModel]:
        """Fresh entries for the manifests in the model dir (of name ``only``, when given)."""
        model_dir = self.settings.model_dir
        if not model_dir.is_dir():
            return []
        found: list[ServedModel] = []
        flat = sorted(model_dir.glob("*.json"))
        folders = sorted(p for p in model_dir.iterdir() if p.is_dir() and not p.name.startswith("."))
        for path in flat:
            entry = self._entry(path, version=1, flat=True, folder_name=None)
            if only is None or entry.name == only or path.stem == only:
                found.append(entry)
        for folder in folders:
            if only is not None and folder.name != only:
                continue
            for sub in sorted(folder.iterdir(), key=lambda p: p.name):
                if not (sub.is_dir() and sub.name.isdigit() and int(sub.name) > 0):
                    continue
                manifests = sorted(sub.glob("*.json"))
                named = [p for p in manifests if p.stem == folder.name]
                path = (named or manifests or [sub / f"{folder.name}.json"])[0]
                found.append(self._entry(path, version=int(sub.name), flat=False, folder_name=folder.name))
        return found

    def _entry(self, path: Path, *, version: int, flat: bool, folder_name: str | None) -> ServedModel:
        name = folder_name or path.stem
        try:
            data = path.read_bytes()
            manifest = Manifest.model_validate_json(data)
        except (ValidationError, ValueError, OSError) as err:
            what = path.name if flat else f"{name}/{version}/{path.name}"
            return ServedModel(name, path, state=UNAVAILABLE, version=version, flat=flat,
                               reason=f"invalid manifest {what}: {_one_line(err)}")
        entry = ServedModel(manifest.name, path, manifest, device=str(self.device), version=version,
                            flat=flat, fingerprint=hashlib.sha256(data).hexdigest())
        if folder_name is not None and manifest.name != folder_name:
            entry.name = folder_name
            entry.state, entry.reason = UNAVAILABLE, (f"manifest {path.name} names model {manifest.name!r}, "
                                                      f"but it lies in folder {folder_name!r}")
        return entry

    def discover(self) -> None:
        """Read the manifests (cheap); every entry starts 'loading' or, if unreadable, 'unavailable'."""
        entries = self._scan()
        if not entries:
            log.warning(f"no manifests in model dir {self.settings.model_dir} (neither <name>.json nor "
                        "<name>/<version>/*.json); serving no models")
        for entry in entries:
            existing = self.versions.get(entry.name, {}).get(entry.version)
            if existing is not None:
                where = "the flat layout" if existing.flat else f"folder {entry.name}/{entry.version}"
                entry.name = f"{entry.name}@{entry.manifest_path.name}"
                entry.state, entry.reason = UNAVAILABLE, (f"duplicate model {existing.name!r} version "
                                                          f"{entry.version} (already served from {where})")
            self._add(entry)
        for name in list(self.versions):
            self._publish(name)

    def _add(self, entry: ServedModel) -> None:
        self.versions.setdefault(entry.name, {})[entry.version] = entry
        self.metrics.model_ready.labels(model=entry.name).set(0)
        if entry.state == UNAVAILABLE:
            log.error("model unavailable", extra={"model": entry.name, "version": entry.version,
                                                  "reason": entry.reason})

    def _publish(self, name: str) -> None:
        """Point ``models[name]`` at the highest ready version, else the highest version (one assignment:
        the switch requests see)."""
        versions = self.versions.get(name)
        if not versions:
            self.models.pop(name, None)
            self.metrics.model_ready.labels(model=name).set(0)
            return
        ready = [v for v, e in versions.items() if e.state == READY]
        serving = versions[max(ready)] if ready else versions[max(versions)]
        self.models[name] = serving
        self.metrics.model_ready.labels(model=name).set(1 if serving.state == READY else 0)

    # -- loading ----------------------------------------------------------------------------------
    async def load_all(self) -> None:
        """Load, verify and warm every discovered version (one at a time, each in a thread)."""
        try:
            for versions in list(self.versions.values()):
                for entry in list(versions.values()):
                    if entry.state == LOADING:
                        await self._load(entry)
                        self._publish(entry.name)
        finally:
            self.loaded.set()

    async def _load(self, entry: ServedModel) -> None:
        started = time.perf_counter()
        try:
            api = await asyncio.get_running_loop().run_in_executor(self._loader, self._load_and_warm, entry)
        except ArtifactIntegrityError as err:
            entry.state, entry.reason = UNAVAILABLE, f"artifact refused: {_one_line(err)}"
        except SignatureRefusedError as err:
            entry.state, entry.reason = UNAVAILABLE, f"signature refused: {_one_line(err)}"
        except Exception as err:                                   # noqa: BLE001 — any failure marks it
            entry.state, entry.reason = UNAVAILABLE, f"{type(err).__name__}: {_one_line(err)}"
        else:
            s = self.settings
            entry.api = api
            entry.executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"model-{entry.key}")
            name, version = entry.name, str(entry.version)
            entry.batcher = DynamicBatcher(
                entry.name, api.run_batch, max_batch_size=s.max_batch_size,
                max_queue_delay_s=s.max_queue_delay_s, max_queue_length=s.max_queue_length,
                request_timeout_s=s.request_timeout_s, executor=entry.executor,
                on_batch=lambda rows, t, waits: self.metrics.observe_batch(name, rows, t, waits),
                on_queue_depth=self.metrics.queue_depth.labels(model=name).set,
                on_error=lambda err: self.metrics.inference_errors.labels(model=name).inc())
            entry.batcher.start()
            entry.state, entry.reason = READY, None
            entry.load_seconds = time.perf_counter() - started
            self.metrics.models_loaded.inc()
            self.metrics.model_loads.labels(model=name, outcome="loaded").inc()
            log.info("model ready", extra={"model": name, "version": version, "device": entry.device,
                                           "load_seconds": round(entry.load_seconds, 3)})
            return
        self.metrics.model_loads.labels(model=entry.name, outcome="failed").inc()
        log.error("model unavailable", extra={"model": entry.name, "version": entry.version,
                                              "reason": entry.reason})

    def _load_and_warm(self, entry: ServedModel) -> TaskAPI:
        if self.verifier is not None:
            entry.signature = self.verifier.check(entry)      # raises: refused, with the reason
        module, manifest = load_exported(entry.manifest_path, map_location=self.device)
        check_manifest_matches_module(manifest, module)          # before any forward pass
        entry.checksum_verified = True
        entry.manifest = manifest
        api = build_task_api(manifest, module, self.device)
        api.warmup(self.settings.max_batch_size)
        return api

    # -- repository control -----------------------------------------------------------------------
    async def load(self, name: str) -> LoadOutcome:
        """(Re)read the versions of ``name`` in the model dir: load what is new or changed beside what
        serves, switch traffic to the highest ready version, retire versions that are gone or replaced.
        A version that fails leaves the serving one untouched."""
        check_model_name(name)
        async with self._control:
            outcome = LoadOutcome(name)
            found = {e.version: e for e in self._scan(only=name) if e.name == name or e.state == UNAVAILABLE}
            if not found:
                self.metrics.model_loads.labels(model="(unknown)", outcome="not_found").inc()
                raise ModelNotFoundError(f"no model {name!r} in the model dir (looked for {name}/<version>/ "
                                         f"folders and {name}.json)")
            current = dict(self.versions.get(name, {}))
            replaced: list[ServedModel] = []
            for version, entry in sorted(found.items()):
                old = current.get(version)
                if old is not None and old.state == READY and old.fingerprint == entry.fingerprint:
                    outcome.unchanged.append(version)
                    continue
                if entry.state == LOADING:
                    await self._load(entry)
                if entry.state != READY:
                    outcome.failed[version] = entry.reason or "unavailable"
                    if old is None or old.state != READY:
                        self.versions.setdefault(name, {})[version] = entry      # shown in the index
                    continue
                outcome.loaded.append(version)
                if old is not None:
                    replaced.append(old)
                self.versions.setdefault(name, {})[version] = entry
            for version, old in current.items():
                if version not in found:
                    replaced.append(old)
                    del self.versions[name][version]
            self._publish(name)                                     # the switch
            outcome.retired = sorted(e.version for e in replaced)
            for old in replaced:
                self._retire(old)
            serving = self.models.get(name)
            outcome.serving = serving.version if serving is not None and serving.state == READY else None
            log.info("model load", extra={"model": name, "loaded": outcome.loaded, "retired": outcome.retired,
                                          "failed": outcome.failed, "serving_version": outcome.serving})
            return outcome

    async def unload(self, name: str) -> list[int]:
        """Take every version of ``name`` out of traffic (later requests: 404) and retire it."""
        check_model_name(name)
        async with self._control:
            versions = self.versions.pop(name, None)
            if versions is None:
                self.metrics.model_unloads.labels(model="(unknown)", outcome="not_found").inc()
                raise ModelNotFoundError(f"model {name!r} is not loaded; loaded models: "
                                         f"{sorted(self.models)}")
            self._publish(name)
            for entry in versions.values():
                self._retire(entry)
            self.metrics.model_unloads.labels(model=name, outcome="unloaded").inc()
            log.info("model unloaded", extra={"model": name, "versions": sorted(versions)})
            return sorted(versions)

    def _retire(self, entry: ServedModel) -> None:
        """Drain ``entry`` in the background: its queued work and open streams finish on it, then its
        thread, batchers and module are freed."""
        task = asyncio.get_running_loop().create_task(self._drain(entry), name=f"retire-{entry.key}")
        self._retiring.add(task)
        task.add_done_callback(self._retiring.discard)

    async def _drain(self, entry: ServedModel) -> None:
        if entry.batcher is None:
            return
        started = time.perf_counter()
        timeout = self.settings.request_timeout_s
        await entry.batcher.close(timeout)             # refuses new work, finishes what it holds
        if self.streams is not None:
            idle = self.settings.stream_idle_timeout_s
            deadline = time.monotonic() + idle + timeout
            while self.streams.open_streams(entry) and time.monotonic() < deadline:
                await asyncio.sleep(RETIRE_POLL_S)
            await self.streams.retire(entry)
        await asyncio.to_thread(entry.executor.shutdown, True)
        entry.api = entry.batcher = entry.executor = None    # the module goes with its last reference
        self.metrics.models_loaded.dec()
        entry.state, entry.reason = UNAVAILABLE, "retired"
        log.info("model version retired", extra={"model": entry.name, "version": entry.version,
                                                 "drain_seconds": round(time.perf_counter() - started, 3)})

    async def settled(self) -> None:
        """Wait until every retiring version has been freed (tests, benchmarks, shutdown)."""
        while self._retiring:
            await asyncio.gather(*list(self._retiring), return_exceptions=True)

    def index(self) -> list[ServedModel]:
        """Every version known, by name then version: served, loading, failed."""
        return [e for name in sorted(self.versions) for _, e in sorted(self.versions[name].items())]

    # -- lookups ----------------------------------------------------------------------------------
    def get(self, name: str, version: int | None = None) -> ServedModel:
        """The entry serving ``name`` (any state), or that ``version`` of it; ``ModelNotFoundError``
        (404) listing the served names or versions otherwise."""
        entry = self.models.get(name)
        if entry is None:
            shown = name if len(name) <= 64 else name[:64] + f"… ({len(name)} characters)"
            raise ModelNotFoundError(f"unknown model {shown!r}; served models: {sorted(self.models)}")
        if version is None:
            return entry
        versioned = self.versions.get(name, {}).get(version)
        if versioned is None:
            raise ModelNotFoundError(f"model {name!r} has no version {version}; versions: "
                                     f"{sorted(self.versions.get(name, {}))}")
        return versioned

    def resolve(self, name: str | None, kind: OutputKind, default: str | None = None,
                version: int | None = None) -> ServedModel:
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
        entry = self.get(name, version)
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

    @property
    def queued_rows(self) -> int:
        """Rows waiting in every serving version's batcher (the Retry-After estimate's queue)."""
        return sum(e.batcher.queued_rows for e in self.models.values() if e.batcher is not None)

    # -- shutdown ---------------------------------------------------------------------------------
    async def close(self, drain_timeout_s: float) -> None:
        """Stop every batcher after its queue has drained (graceful shutdown)."""
        await self.settled()                 # gathers with return_exceptions: never raises
        batchers = [e for versions in self.versions.values() for e in versions.values() if e.batcher]
        await asyncio.gather(*(e.batcher.close(drain_timeout_s) for e in batchers))
        for entry in batchers:
            entry.executor.shutdown(wait=True)
        self._loader.shutdown(wait=False, cancel_futures=True)


# An absolute file path: reasons are shown by open endpoints, so only the file name is kept.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/])/(?:[^\s/:'\"]+/)+([^\s/:'\"]+)")


def _one_line(err: BaseException) -> str:
    """The error's message on one line, at most 500 characters, with server paths cut to file names."""
    return _ABSOLUTE_PATH.sub(r"\1", " ".join(str(err).split()))[:500]
