"""The FastAPI application: ``create_app(settings)``.

No module-level state: each app holds its settings, metrics, model registry and stability engine on
``app.state`` (reached by handlers through ``service.api.deps``), so several apps can live in one
process.

Lifespan:

* start-up — logging, torch threads and the GIL's switch interval are configured, the manifests are
  discovered, and the models are loaded, checksum-verified and warmed up (``service.registry``) in the
  background: ``/health/live`` answers at once and ``/health/ready`` turns 200 when loading is done (under the
  default ``readiness_policy`` "all", never while a model failed to load). Then the start-up heap
  (torch, the models, the app) is moved out of the garbage collector's reach (``gc.freeze``):
  otherwise every full collection scans all of it, with the GIL held, so the event loop and the model
  threads stop for its whole length. And the young generation's threshold is raised from 700 to
  ``YOUNG_GENERATION_THRESHOLD`` net allocations: 64 requests in flight hold more than 700 containers
  at once (parsed bodies, frames, futures), so at 700 the collector ran every few requests and scanned
  them all, while almost none of them is ever garbage in a cycle (docs/decisions/0005-gc-freeze.md).
* shutdown — uvicorn stops accepting connections on SIGTERM/SIGINT and waits for in-flight requests;
  then every batcher refuses new work, drains its queue and stops, and the app logs
  "shutdown complete".

Security: every route declares its class (``service.api.route_classes``). When ``api_key`` is set, the
read, work and heavy routes (``/classify``, ``/pendulum/*``, ``/models*``, ``/samples/*``, ``/v2/models/*``)
need the ``X-API-Key`` header (and only then does the OpenAPI document declare it); the repository routes
(``/v2/repository/*``) need ``admin_key``; the health probes, ``/metrics``, the OpenAPI docs and the demo
page (``/``, ``/static/*``; the page's API calls send the key) stay open (probes and scrapers run inside
the deployment; put ``/metrics`` behind the network policy if it must be private).
"""

import asyncio
import contextlib
import gc
import logging
import os
import sys
from collections.abc import AsyncIterator

import torch
from fastapi import APIRouter, Depends, FastAPI
from starlette.routing import BaseRoute

from service.admission import AdmissionGate, LoadEstimate, WorkLane
from service.api.deps import require_api_key
from service.api.json_body import FastJSONRoute
from service.api.route_classes import RouteTable
from service.api.routes import classify, health, metrics, models, page, pendulum, samples, stability, v2
from service.api.routes import stream as stream_routes
from service.api.routes.health import readiness_report
from service.api.submit import install_admission_handlers
from service.config import Settings
from service.docs import install_offline_docs
from service.errors import install_exception_handlers
from service.health_port import HealthServer
from service.log_format import configure_logging
from service.matplotlib_env import ensure_matplotlib_config_dir
from service.metrics import ServiceMetrics
from service.middleware import LeanHandler, RequestGuardMiddleware, RequestMetricsMiddleware
from service.registry import ModelRegistry
from service.signatures import signature_policy
from service.stability import StabilityReports
from service.streaming import StreamHub

log = logging.getLogger(__name__)

DESCRIPTION = """Serves Antisymmetric Feedback RNNs (Schwabe, Glasmachers & Acosta, ACML 2022):
pixel-by-pixel MNIST and CIFAR-10 classifiers, a double-pendulum predictor, and the stability report of
any served model. Concurrent requests to one model are batched dynamically."""


# How long a thread may keep the GIL while another waits for it (CPython's default: 5 ms). The model
# threads need the GIL only for a few µs between long C calls (a forward pass releases it), but while
# the event loop is busy they wait up to the whole interval for it, once per hand-back
# (docs/decisions/0005-gc-freeze.md).
GIL_SWITCH_INTERVAL_S = 0.0005

# Net container allocations between two young-generation collections, once the models are loaded
# (Python's default: 700).
YOUNG_GENERATION_THRESHOLD = 10_000

# The heavy-job lane (physics references, stability reports, PNG figures): jobs at once, jobs waiting;
# and the default-input stability reports kept per process.
HEAVY_MAX_CONCURRENCY = 1
HEAVY_MAX_QUEUE_LENGTH = 16
STABILITY_CACHE_SIZE = 32


def configure_threads() -> None:
    """Intra-op threads for every forward pass: ``OMP_NUM_THREADS`` when set, else 1 (fastest for the
    small GEMMs of batch-1 recurrences on 2 cores, docs/performance.md); one inter-op thread (the
    recurrence is sequential); and the GIL's switch interval, ``GIL_SWITCH_INTERVAL_S``."""
    if not os.environ.get("OMP_NUM_THREADS"):
        torch.set_num_threads(1)
    with contextlib.suppress(RuntimeError):        # only settable before the first parallel work
        torch.set_num_interop_threads(1)
    sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)


def install_admission(app: FastAPI, settings: Settings) -> None:
    """The admission path of ``service.admission`` on ``app.state``: ``load`` (recent times),
    ``admission`` (the gate before the body is read), ``work_lane`` (heavy jobs) and ``retry_after``."""
    metrics = app.state.metrics
    load = LoadEstimate()
    metrics.batch_observers.append(load.observe_batch)

    lane = WorkLane("work lane", max_concurrency=HEAVY_MAX_CONCURRENCY,
                    max_queue_length=HEAVY_MAX_QUEUE_LENGTH,
                    retry_after=lambda: retry_after(), job_seconds=load.job_seconds,
                    on_job=load.observe_job,
                    on_queue_depth=metrics.work_lane_queue_depth.set)

    def retry_after() -> int:
        registry = getattr(app.state, "registry", None)
        rows = registry.queued_rows if registry else 0
        return load.retry_after_s(rows, lane.backlog_s, HEAVY_MAX_CONCURRENCY)

    app.state.load = load
    app.state.work_lane = lane
    app.state.retry_after = retry_after
    metrics.work_lane_running.set_function(lambda: lane.running)
    gate = app.state.admission = AdmissionGate(settings.max_inflight_requests)
    metrics.inflight_requests.set_function(lambda: gate.inflight)       # read at scrape, not per request


def direct_routes(*routers: APIRouter) -> dict[tuple[str, str], tuple[BaseRoute, LeanHandler]]:
    """The routes of ``routers`` with a lean handler (``service.api.json_body``), for the guard to call
    directly (``service.middleware``): ``(method, path)`` → (route, handler)."""
    table = {}
    for router in routers:
        for route in router.routes:
            handler = route.lean_handler() if isinstance(route, FastJSONRoute) else None
            if handler is not None:
                table.update({(method, route.path): (route, handler) for method in route.methods})
    return table


async def load_then_freeze(registry: ModelRegistry) -> None:
    """Load every model, then freeze the heap built so far (what start-up allocated lives as long as the
    process, so the cyclic collector need never scan it again) and let the young generation grow to
    ``YOUNG_GENERATION_THRESHOLD`` before it is collected."""
    await registry.load_all()
    gc.freeze()
    gc.set_threshold(YOUNG_GENERATION_THRESHOLD, *gc.get_threshold()[1:])


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, settings.log_format)
        configure_threads()
        registry = ModelRegistry(settings, app.state.metrics, streams=app.state.streams,
                                 verifier=signature_policy(settings, app.state.metrics))
        app.state.registry = registry
        app.state.stability = StabilityReports(STABILITY_CACHE_SIZE, lane=app.state.work_lane)
        ensure_matplotlib_config_dir()
        log.info("starting", extra={"model_dir": str(settings.model_dir), "device": str(registry.device),
                                    "torch_threads": torch.get_num_threads(),
                                    "max_batch_size": settings.max_batch_size,
                                    "max_queue_delay_ms": settings.max_queue_delay_ms})
        registry.discover()
        health_server = None
        if settings.health_port is not None:
            def probe_readiness() -> tuple[int, dict]:
                body = readiness_report(registry, settings.readiness_policy, app.state.draining)
                return (200 if body.reason is None else 503), body.model_dump(mode="json")
            health_server = HealthServer(settings.host, settings.health_port, probe_readiness).start()
        loader = asyncio.create_task(load_then_freeze(registry), name="load-models")
        try:
            yield
        finally:
            app.state.draining = True                  # the health port's readiness turns 503
            if not loader.done():
                loader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loader
            await app.state.streams.close()
            await registry.close(drain_timeout_s=settings.request_timeout_s)
            await app.state.work_lane.close(drain_timeout_s=settings.request_timeout_s)
            app.state.stability.close()
            if health_server is not None:
                health_server.stop()
            log.info("shutdown complete")

    # docs_url/redoc_url None: FastAPI's pages load from a CDN; service.docs serves them offline.
    # telemetry off: the service's metrics are Prometheus (/metrics), and FastAPI's OpenTelemetry
    # bridge, which needs an SDK the service does not ship, would look up the global providers on
    # every request.
    app = FastAPI(title="AFRNN serving", version="0.1.0", description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None,
                  telemetry={"tracing": False, "metrics": False, "logs": False})
    install_offline_docs(app)
    app.state.settings = settings
    app.state.draining = False        # set at SIGTERM (service.connections.Server) and at shutdown
    app.state.metrics = ServiceMetrics()
    install_admission(app, settings)
    app.state.streams = StreamHub(settings, app.state.metrics.registry)

    # Without a configured key the check would be a no-op that still costs a dependency solve per
    # request (docs/performance.md, "Fixed costs"), and the OpenAPI document would ask for a key that
    # nobody checks.
    protected = [Depends(require_api_key)] if settings.api_key is not None else []
    app.include_router(classify.router, dependencies=protected)
    app.include_router(pendulum.router, dependencies=protected)
    app.include_router(models.router, dependencies=protected)
    app.include_router(stability.router, dependencies=protected)
    app.include_router(samples.router, dependencies=protected)
    app.include_router(page.router)         # the demo page and its assets: no key (they hold no data)
    app.include_router(stream_routes.router, dependencies=protected)
    app.include_router(stream_routes.ws_router)        # checks the API key itself (see the route)
    app.include_router(v2.router)       # classes per route; the API key is checked by the guard
    app.include_router(v2.repository_router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    install_exception_handlers(app)
    install_admission_handlers(app)
    # The last added middleware is the outermost: metrics see every response, 413s included.
    app.add_middleware(RequestGuardMiddleware, routes=RouteTable.for_app(app),
                       max_body_bytes=settings.max_body_bytes,
                       body_timeout_s=settings.body_timeout_s, request_timeout_s=settings.request_timeout_s,
                       gate=app.state.admission, retry_after=app.state.retry_after,
                       api_key=settings.api_key.get_secret_value() if settings.api_key else None,
                       admin_key=settings.admin_key.get_secret_value() if settings.admin_key else None,
                       metrics=app.state.metrics,
                       direct=direct_routes(classify.router, pendulum.router) | v2.direct_routes())
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.metrics)
    return app
