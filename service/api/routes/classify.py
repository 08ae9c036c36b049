"""``POST /classify``: image classification with dynamic batching.

The handler returns the response already serialised (``ClassifyResponse.model_dump_json``):
``response_model`` still documents it in the OpenAPI schema, but FastAPI does not validate and
serialise the same object a second time.
"""

import time

from fastapi import APIRouter, Request, Response

from afrnn_schemas import ERROR_RESPONSES, ClassifyRequest, ClassifyResponse
from service.api.deps import registry_of, settings_of
from service.api.json_body import FastJSONRoute
from service.api.route_classes import RouteClass, classed
from service.api.submit import submit
from service.errors import InputError
from service.tasks import ClassifierAPI, ClassifyJob
from service.tasks.classifier import no_booleans

router = APIRouter(tags=["inference"], route_class=FastJSONRoute)


@router.post("/classify", response_model=ClassifyResponse, responses=ERROR_RESPONSES)
@classed(RouteClass.WORK)
async def classify(body: ClassifyRequest, request: Request) -> Response:
    """Classify one image (`pixels`) or a batch (`images`) with a pixel-sequence classifier."""
    started = time.perf_counter()
    registry, settings = registry_of(request), settings_of(request)   # not Depends: see service.api.deps
    entry = registry.resolve(body.model, ClassifierAPI.KIND)
    request.state.model, request.state.model_version = entry.name, str(entry.version)
    api = entry.api
    images = body.image_list
    if len(images) > settings.classify_max_batch:
        raise InputError(("images",), f"at most classify_max_batch = {settings.classify_max_batch} images "
                                      f"per request, got {len(images)}")
    if body.top_k > api.num_classes:
        raise InputError(("top_k",), f"top_k must be ≤ the number of classes ({api.num_classes}) of model "
                                     f"{entry.name!r}, got {body.top_k}")
    raw = await request.body()                          # read and parsed before: kept on the request
    x = api.decode(images, body.scale, body.image_locs, booleans_possible=not no_booleans(raw))   # decode
    result = await submit(entry, ClassifyJob(x, body.return_sequence))   # batch → predict → unbatch
    predictions = api.encode(result.value, body.top_k, body.return_sequence)   # encode
    response = ClassifyResponse(
        model=entry.name, version=entry.manifest.version, predictions=predictions,
        latency_ms=(time.perf_counter() - started) * 1000, queue_ms=result.queue_wait_s * 1000,
        inference_ms=result.inference_s * 1000, batch_size=result.batch_rows)
    return Response(response.model_dump_json(), media_type="application/json")
