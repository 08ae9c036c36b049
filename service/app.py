"""The FastAPI application: ``create_app(settings)``.

No module-level state: each app holds its settings, metrics, model registry and stability engine on
``app.state`` (reached by handlers through ``service.api.deps``), so several apps can live in one
process.

Lifespan:

* start-up — logging and torch threads are configured, the manifests are discovered, and the models
  are loaded, checksum-verified and warmed up (``service.registry``). With ``strict`` this happens
  before the server accepts connections and any failure aborts the start; otherwise it runs in the
  background, ``/health/live`` answers at once and ``/health/ready`` turns 200 when loading is done.
* shutdown — uvicorn stops accepting connections on SIGTERM/SIGINT and waits for in-flight requests;
  then every batcher refuses new work, drains its queue and stops, and the app logs
  "shutdown complete".

Security: when ``api_key`` is set, ``/classify``, ``/pendulum/*`` and ``/models*`` need the
``X-API-Key`` header (and only then does the OpenAPI document declare it); the health probes,
``/metrics`` and the OpenAPI docs stay open (probes and scrapers run inside the deployment; put
``/metrics`` behind the network policy if it must be private).
"""

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator

import torch
from fastapi import Depends, FastAPI

from service.api.deps import require_api_key
from service.api.routes import stream as stream_routes
from service.api.routes import classify, health, metrics, models, pendulum, stability
from service.config import Settings
from service.errors import install_exception_handlers
from service.logging import configure_logging
from service.metrics import ServiceMetrics
from service.middleware import BodySizeLimitMiddleware, RequestMetricsMiddleware
from service.registry import ModelRegistry
from service.stability import StabilityReports
from service.streaming import StreamHub

log = logging.getLogger(__name__)

DESCRIPTION = """Serves Antisymmetric Feedback RNNs (Schwabe, Glasmachers & Acosta, ACML 2022):
pixel-by-pixel MNIST and CIFAR-10 classifiers, a double-pendulum predictor, and the stability report of
any served model. Concurrent requests to one model are batched dynamically."""


def configure_torch_threads(threads: int) -> None:
    """Intra-op threads for every forward pass; one inter-op thread (the recurrence is sequential)."""
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):        # only settable before the first parallel work
        torch.set_num_interop_threads(1)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level, settings.log_format)
        configure_torch_threads(settings.torch_threads)
        registry = ModelRegistry(settings, app.state.metrics)
        app.state.registry = registry
        app.state.stability = StabilityReports(settings.stability_cache_size)
        log.info("starting", extra={"model_dir": str(settings.model_dir), "device": str(registry.device),
                                    "torch_threads": torch.get_num_threads(),
                                    "max_batch_size": settings.max_batch_size,
                                    "max_queue_delay_ms": settings.max_queue_delay_ms})
        registry.discover()
        loader = None
        if settings.strict:
            await registry.load_all()
        else:
            loader = asyncio.create_task(registry.load_all(), name="load-models")
        try:
            yield
        finally:
            if loader is not None and not loader.done():
                loader.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await loader
            await app.state.streams.close()
            await registry.close(drain_timeout_s=settings.request_timeout_s)
            app.state.stability.close()
            log.info("shutdown complete")

    app = FastAPI(title="AFRNN serving", version="0.1.0", description=DESCRIPTION, lifespan=lifespan)
    app.state.settings = settings
    app.state.metrics = ServiceMetrics()
    app.state.streams = StreamHub(settings, app.state.metrics.registry)

    # Without a configured key the check would be a no-op that still costs a dependency solve
    # (~50 µs) per request, and the OpenAPI document would ask for a key that nobody checks.
    protected = [Depends(require_api_key)] if settings.api_key is not None else []
    app.include_router(classify.router, dependencies=protected)
    app.include_router(pendulum.router, dependencies=protected)
    app.include_router(models.router, dependencies=protected)
    app.include_router(stability.router, dependencies=protected)
    app.include_router(stream_routes.router, dependencies=protected)
    app.include_router(stream_routes.ws_router)        # checks the API key itself (see the route)
    app.include_router(health.router)
    app.include_router(metrics.router)
    install_exception_handlers(app)
    # The last added middleware is the outermost: metrics see every response, 413s included.
    app.add_middleware(BodySizeLimitMiddleware, max_body_bytes=settings.max_body_bytes,
                       metrics=app.state.metrics)
    app.add_middleware(RequestMetricsMiddleware, metrics=app.state.metrics)
    return app
