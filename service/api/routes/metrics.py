"""``GET /metrics``: the app's Prometheus metrics in the text exposition format (never behind the API key)."""

from fastapi import APIRouter, Response
from prometheus_client import CONTENT_TYPE_LATEST

from service.api.deps import MetricsDep
from service.api.route_classes import RouteClass, classed

router = APIRouter(tags=["metrics"])


@router.get("/metrics", response_class=Response,
            responses={200: {"content": {CONTENT_TYPE_LATEST: {}}, "description": "Prometheus metrics"}})
@classed(RouteClass.OPEN)
async def metrics(collectors: MetricsDep) -> Response:
    """Request latency, inference and queue times, batch sizes, queue depth, models loaded, errors."""
    return Response(content=collectors.render(), media_type=CONTENT_TYPE_LATEST)
