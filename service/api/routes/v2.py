"""The Open Inference Protocol (KServe V2) over the registry and the batchers.

Routes (kserve/open-inference-protocol ``inference_rest.md`` and Triton's extensions):

* ``GET /v2``, ``/v2/health/live``, ``/v2/health/ready`` — server metadata and probes;
* ``GET /v2/models/{name}[/versions/{version}]``, ``…/ready``, ``…/config`` — model metadata (tensor
  names, datatypes and shapes, the versions), readiness, and the Triton-style configuration that
  ``perf_analyzer`` reads before its first request;
* ``POST /v2/models/{name}[/versions/{version}]/infer`` — inference, JSON tensors or the binary tensor
  extension (``service.v2_tensors``), and the sequence extension for classifiers;
* ``POST /v2/repository/index``, ``/v2/repository/models/{name}/load`` and ``…/unload`` — the model
  repository (admin key; load and unload with ``model_control = "explicit"``).

One contract per model kind, declared by its task API (``service.tasks``): classifiers take ``pixels``
(UINT8 0–255 or FP32 in [0, 1], [n, T·C]) and answer ``label`` and ``probabilities`` (and on request the
per-step ``sequence_labels`` and ``sequence_confidence``); the pendulum takes ``initial_state`` (FP32
[n, 4] radians) and the parameter ``steps``, and answers ``trajectory`` and ``times``.

An inference request is a work route (``service.api.route_classes``): the same API key, admission,
deadline, metrics and **the same batcher** as ``/classify`` and ``/pendulum/predict``, so a V2 row and a
JSON row share a forward pass, and their answers are equal bit for bit. Errors are ``{"error": ...}``
(400 for a request that breaks a rule, 404 for an unknown model or version, 503 with Retry-After for
load, 504 past the deadline).

**Sequences** (``parameters.sequence_id``, a uint64 or a string the client chooses; ``sequence_start``;
``sequence_end``) map onto the server-held recurrent state of the streams (``service.streaming``): each
request carries the next pixels of one image ([1, k·C]), answers the anytime prediction after them, and
``sequence_end`` answers the prediction of the whole sequence. An id that was never started, or whose
stream was closed after ``stream_idle_timeout_s``, gets 400.
"""

import json
import time
from importlib.metadata import PackageNotFoundError, version
from typing import Any

import numpy as np
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from afrnn_schemas import LoadResult, RepositoryEntry, UnloadResult
from afrnn_schemas.inference_protocol import (
    ADMIN_ERRORS,
    PROTOCOL_ERRORS,
    InferRequest,
    InferResponse,
    ModelMetadata,
    ModelReady,
    ProtocolError,
    ServerLive,
    ServerMetadata,
    ServerReady,
)
from afrnn_schemas.stream import StreamOpen
from service.admission import request_deadline
from service.api.route_classes import RouteClass, classed
from service.api.routes.health import readiness
from service.api.submit import admission_error
from service.batching import BatcherClosedError, QueueFullError, RequestTimeoutError
from service.errors import InputError, ServiceError
from service.registry import READY, ServedModel
from service.streaming import StreamRuleError
from service.streaming.session import check_values
from service.tasks import ClassifierAPI, ClassifyJob, PendulumJob
from service.v2_tensors import HEADER_LENGTH, OutputTensor, TensorError, encode_response, parse_request

router = APIRouter(prefix="/v2", tags=["open inference protocol"])
repository_router = APIRouter(prefix="/v2/repository", tags=["model repository"])

try:
    SERVER_VERSION = version("afrnn-serving")
except PackageNotFoundError:                       # run from a source tree without installing
    SERVER_VERSION = "0"
EXTENSIONS = ["binary_tensor_data", "sequence", "model_repository", "model_configuration"]
PLATFORM = "pytorch_torchscript"


def _inlined(schema: dict) -> dict:
    """A JSON schema with its ``$defs`` substituted where they are referenced (an OpenAPI requestBody
    given by ``openapi_extra`` cannot refer to definitions of its own)."""
    defs = schema.pop("$defs", {})

    def resolve(node):
        if isinstance(node, dict):
            ref = node.get("$ref")
            if ref is not None and ref.startswith("#/$defs/"):
                return resolve(dict(defs[ref.rsplit("/", 1)[1]]))
            return {k: resolve(v) for k, v in node.items()}
        if isinstance(node, list):
            return [resolve(v) for v in node]
        return node

    return resolve(schema)


# The request body is read by service.v2_tensors (JSON, or a JSON header and binary tensors), not by
# FastAPI: the document says what it is.
INFER_BODY = {"requestBody": {"required": True, "content": {
    "application/json": {"schema": _inlined(InferRequest.model_json_schema())},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary",
                                            "description": "a JSON header of Inference-Header-Content-Length "
                                                           "bytes, then the binary tensors"}}}}}
BINARY_ANSWER = {200: {"content": {"application/octet-stream": {"schema": {"type": "string",
                                                                          "format": "binary"}}},
                       "description": "JSON, or a JSON header (Inference-Header-Content-Length) and binary "
                                      "outputs"}}


def error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def error_of(request: Request, exc: Exception) -> JSONResponse:
    """The protocol's form of the service's errors: 400 for input, the service's status otherwise."""
    if isinstance(exc, (QueueFullError, RequestTimeoutError, BatcherClosedError)):
        exc = admission_error(request, exc)
    if isinstance(exc, (InputError, TensorError)):
        where = f"{'.'.join(map(str, exc.loc))}: " if isinstance(exc, InputError) and exc.loc else ""
        request.app.state.metrics.errors.labels(kind="validation").inc()
        return error(400, where + str(exc))
    request.app.state.metrics.errors.labels(kind=exc.category).inc()
    return error(exc.status_code, exc.detail, exc.headers)


def _version(text: str | None) -> int | None:
    if text is None:
        return None
    if not text.isdigit() or int(text) < 1:
        raise InputError(("version",), f"a model version is a positive integer, got {text!r}")
    return int(text)


def _model(request: Request, name: str, version_text: str | None) -> ServedModel:
    entry = request.app.state.registry.get(name, _version(version_text))
    request.state.model, request.state.model_version = entry.name, str(entry.version)
    return entry


def _tensors(specs: list[tuple[str, str, list[int]]]) -> list[dict[str, Any]]:
    return [{"name": name, "datatype": datatype, "shape": shape} for name, datatype, shape in specs]


# -- server ---------------------------------------------------------------------------------------
@router.get("", response_model=ServerMetadata)
@classed(RouteClass.OPEN)
async def server_metadata() -> dict:
    """The server's name, version and protocol extensions."""
    return {"name": "afrnn-serving", "version": SERVER_VERSION, "extensions": EXTENSIONS}


@router.get("/health/live", response_model=ServerLive)
@classed(RouteClass.PROBE)
async def server_live() -> dict:
    return {"live": True}


@router.get("/health/ready", response_model=ServerReady, responses={503: {"model": ServerReady}})
@classed(RouteClass.PROBE)
async def server_ready(request: Request) -> Response:
    app = request.app
    reason = ("shutting down" if app.state.draining
              else readiness(app.state.registry, app.state.settings.readiness_policy))
    return JSONResponse({"ready": reason is None} | ({} if reason is None else {"error": reason}),
                        status_code=200 if reason is None else 503)


# -- model metadata -------------------------------------------------------------------------------
def _metadata(request: Request, name: str, version_text: str | None) -> Response:
    try:
        entry = _model(request, name, version_text)
        entry.require_ready()
    except (ServiceError, InputError) as exc:
        return error_of(request, exc)
    inputs, outputs = entry.api.v2_signature()
    versions = [str(v) for v, e in sorted(request.app.state.registry.versions.get(name, {}).items())
                if e.state == READY]
    signature = entry.signature
    return JSONResponse({
        "name": entry.name, "versions": versions, "platform": PLATFORM,
        "inputs": _tensors(inputs), "outputs": _tensors(outputs),
        "parameters": {"version": str(entry.version), "task": entry.manifest.task,
                       "checksum_verified": entry.checksum_verified,
                       "signature_verified": bool(signature and signature.verified),
                       "signature_key_fingerprint": signature.key_fingerprint if signature else None}})


@router.get("/models/{name}", response_model=ModelMetadata, responses=PROTOCOL_ERRORS)
@classed(RouteClass.READ)
async def model_metadata(name: str, request: Request) -> Response:
    """A model's tensors (name, datatype, shape; −1 is the batch) and its ready versions."""
    return _metadata(request, name, None)


@router.get("/models/{name}/versions/{version}", response_model=ModelMetadata, responses=PROTOCOL_ERRORS)
@classed(RouteClass.READ)
async def model_version_metadata(name: str, version: str, request: Request) -> Response:
    return _metadata(request, name, version)


def _ready(request: Request, name: str, version_text: str | None) -> Response:
    try:
        entry = _model(request, name, version_text)
    except (ServiceError, InputError) as exc:
        return error_of(request, exc)
    ready = entry.state == READY
    return JSONResponse({"name": entry.name, "version": str(entry.version), "ready": ready},
                        status_code=200 if ready else 503)


@router.get("/models/{name}/ready", response_model=ModelReady,
            responses={**PROTOCOL_ERRORS, 503: {"model": ModelReady}})
@classed(RouteClass.READ)
async def model_ready(name: str, request: Request) -> Response:
    return _ready(request, name, None)


@router.get("/models/{name}/versions/{version}/ready", response_model=ModelReady,
            responses={**PROTOCOL_ERRORS, 503: {"model": ModelReady}})
@classed(RouteClass.READ)
async def model_version_ready(name: str, version: str, request: Request) -> Response:
    return _ready(request, name, version)


def _config(request: Request, name: str, version_text: str | None) -> Response:
    """Triton's model configuration (``model_config.proto`` as JSON): dims exclude the batch."""
    try:
        entry = _model(request, name, version_text).require_ready()
    except (ServiceError, InputError) as exc:
        return error_of(request, exc)
    settings = request.app.state.settings
    inputs, outputs = entry.api.v2_signature()
    classifier = isinstance(entry.api, ClassifierAPI)
    max_batch = settings.classify_max_batch if classifier else settings.pendulum_max_batch

    def dims(specs):
        return [{"name": n, "data_type": f"TYPE_{d}", "dims": shape[1:] if shape[0] == -1 else shape}
                for n, d, shape in specs]

    return JSONResponse({
        "name": entry.name, "platform": PLATFORM, "backend": "afrnn", "max_batch_size": max_batch,
        "version_policy": {"latest": {"num_versions": 1}},
        "input": dims(inputs), "output": dims(outputs),
        "dynamic_batching": {"max_queue_delay_microseconds": int(settings.max_queue_delay_ms * 1000),
                             "preferred_batch_size": [settings.max_batch_size]},
        "parameters": {"stream_idle_timeout_s": {"string_value": f"{settings.stream_idle_timeout_s:g}"}}})


@router.get("/models/{name}/config", response_model=dict[str, Any], responses=PROTOCOL_ERRORS)
@classed(RouteClass.READ)
async def model_config(name: str, request: Request) -> Response:
    return _config(request, name, None)


@router.get("/models/{name}/versions/{version}/config", response_model=dict[str, Any],
            responses=PROTOCOL_ERRORS)
@classed(RouteClass.READ)
async def model_version_config(name: str, version: str, request: Request) -> Response:
    return _config(request, name, version)


# -- inference ------------------------------------------------------------------------------------
async def _infer(request: Request, name: str, version_text: str | None) -> Response:
    try:
        body = await request.body()                   # read by the request guard already
        # from here to the batcher's submit nothing awaits: the version resolved is the one that
        # answers, even while a load switches traffic (service.registry)
        entry = _model(request, name, version_text).require_ready()
        infer = parse_request(body, request.headers.get(HEADER_LENGTH))
        api = entry.api
        known_outputs = api.V2_OUTPUTS
        requested = None if infer.outputs is None else set(infer.outputs)
        if requested is not None and not requested <= known_outputs:
            raise InputError(("outputs",), f"unknown outputs {sorted(requested - known_outputs)} of model "
                                           f"{entry.name!r}; its outputs: {sorted(known_outputs)}")
        if set(infer.inputs) != {api.V2_INPUT}:
            raise InputError(("inputs",), f"model {entry.name!r} takes one input, {api.V2_INPUT!r}; got "
                                          f"{sorted(infer.inputs)}")
        where = f"inputs[0] ({api.V2_INPUT!r})"
        array, datatype = infer.inputs[api.V2_INPUT], infer.datatypes[api.V2_INPUT]
        settings = request.app.state.settings
        parameters: dict[str, Any] = {}
        if isinstance(api, ClassifierAPI):
            if "sequence_id" in infer.parameters:
                outputs, parameters = await _sequence_step(request, entry, infer, array, datatype, where)
            else:
                every_step = requested is not None and bool(requested & set(api.V2_SEQUENCE_OUTPUTS))
                x = api.v2_pixels(array, datatype, where, settings.classify_max_batch)
                result = await entry.batcher.submit(ClassifyJob(x, every_step), x.shape[0],
                                                    deadline=request_deadline.get())
                outputs = api.v2_outputs(result.value, requested)
                parameters = {"batch_size": result.batch_rows}
        else:
            steps = infer.parameters.get("steps", api.trained_steps)
            if type(steps) is not int or not 1 <= steps <= settings.pendulum_max_steps:
                limit = settings.pendulum_max_steps
                raise InputError(("parameters", "steps"), f"steps must be an integer in [1, "
                                                          f"pendulum_max_steps = {limit}], got {steps!r}")
            x0 = api.v2_states(array, datatype, where, settings.pendulum_max_batch)
            result = await entry.batcher.submit(PendulumJob(x0, steps), x0.shape[0],
                                                deadline=request_deadline.get())
            outputs = [("trajectory", np.ascontiguousarray(result.value, dtype=np.float32)),
                       ("times", np.asarray(api.times(steps), dtype=np.float64))]
            if requested is not None:
                outputs = [(n, a) for n, a in outputs if n in requested]
            parameters = {"extrapolated": steps > api.trained_steps}
    except (ServiceError, InputError, TensorError, QueueFullError, RequestTimeoutError,
            BatcherClosedError) as exc:
        return error_of(request, exc)
    binary = infer.outputs if infer.outputs is not None else {n: infer.binary_default for n, _ in outputs}
    payload, headers = encode_response(entry.name, str(entry.version), infer.id,
                                       [OutputTensor(n, a) for n, a in outputs], binary, parameters)
    return Response(payload, headers=headers)


async def _sequence_step(request: Request, entry: ServedModel, infer, array: np.ndarray, datatype: str,
                         where: str) -> tuple[list[tuple[str, np.ndarray]], dict[str, Any]]:
    """One request of a sequence: the next steps of one image through its stream."""
    params = infer.parameters
    sequence_id = params["sequence_id"]
    if type(sequence_id) is int and sequence_id >= 0:
        sequence_id = str(sequence_id)
    if type(sequence_id) is not str or not sequence_id or len(sequence_id) > 128 or sequence_id == "0":
        raise InputError(("parameters", "sequence_id"), "sequence_id must be a non-zero uint64 or a "
                                                        "non-empty string of at most 128 characters")
    api = entry.api
    if array.ndim != 2 or array.shape[0] != 1 or array.shape[1] == 0 or array.shape[1] % api.channels:
        raise InputError((where,), f"a sequence request carries the next steps of one image: shape [1, k·"
                                   f"{api.channels}] (k ≥ 1), got {list(array.shape)}")
    scale = api.v2_scale(datatype, where)
    values = array.reshape(-1, api.channels).astype(np.float32)
    try:                                     # before a sequence starts: a refused start opens nothing
        check_values(values, scale, api.value_range)
    except StreamRuleError as err:
        raise InputError((where, *err.loc[1:]), err.detail) from None
    hub = request.app.state.streams
    try:
        if params.get("sequence_start"):
            session = hub.start_sequence(entry, sequence_id, StreamOpen(scale=int(scale)))
        else:
            session = hub.sequence(entry, sequence_id)
        started = time.perf_counter()
        update = await session.advance(session.normalise(values, scale))
        hub.metrics.chunk_seconds.labels(model=entry.name).observe(time.perf_counter() - started)
        probabilities = session.probabilities
        if params.get("sequence_end"):
            session.final()
            hub.end_sequence(entry, sequence_id)
    except StreamRuleError as err:
        status = 503 if err.http_status == 503 else 400
        if status == 400:
            raise InputError(("parameters", "sequence_id"), f"{err.detail}") from None
        raise ServiceError(err.detail, status_code=503) from None
    outputs = [("label", np.asarray([update.label], dtype=np.int64)),
               ("probabilities", probabilities[None].astype(np.float32, copy=False))]
    requested = infer.outputs
    if requested is not None:
        outputs = [(n, a) for n, a in outputs if n in requested]
    return outputs, {"sequence_id": params["sequence_id"], "sequence_steps": update.steps,
                     "sequence_end": bool(params.get("sequence_end"))}


@router.post("/models/{name}/infer", response_model=InferResponse,
             responses={**PROTOCOL_ERRORS, **BINARY_ANSWER}, openapi_extra=INFER_BODY)
@classed(RouteClass.WORK)
async def infer(name: str, request: Request) -> Response:
    """Inference: JSON tensors, or a JSON header and binary tensors (``Inference-Header-Content-Length``)."""
    return await _infer(request, name, None)


@router.post("/models/{name}/versions/{version}/infer", response_model=InferResponse,
             responses={**PROTOCOL_ERRORS, **BINARY_ANSWER}, openapi_extra=INFER_BODY)
@classed(RouteClass.WORK)
async def infer_version(name: str, version: str, request: Request) -> Response:
    return await _infer(request, name, version)


def direct_routes() -> dict[tuple[str, str], tuple[Any, Any]]:
    """The ``infer`` routes for the request guard to call directly (``service.middleware``): the same
    answers without FastAPI's router, whose route matching would try every template per request."""
    handlers = {infer: _direct_infer, infer_version: _direct_infer}
    return {("POST", route.path): (route, handlers[route.endpoint])
            for route in router.routes if getattr(route, "endpoint", None) in handlers}


async def _direct_infer(request: Request) -> Response:
    """``/v2/models/{name}/infer`` or ``/v2/models/{name}/versions/{version}/infer``, its parameters read
    off the (decoded) path as the router would."""
    parts = request.scope["path"].split("/")
    name, version_text = parts[3], (parts[5] if len(parts) == 7 else None)
    request.scope["path_params"] = {"name": name} | ({"version": version_text} if version_text else {})
    return await _infer(request, name, version_text)


# -- the model repository -------------------------------------------------------------------------
def _state(entry: ServedModel) -> str:
    return {"ready": "READY", "loading": "LOADING"}.get(entry.state, "UNAVAILABLE")


@repository_router.post("/index", response_model=list[RepositoryEntry], responses=ADMIN_ERRORS)
@classed(RouteClass.ADMIN)
async def repository_index(request: Request) -> Response:
    """Every version in the repository: READY, LOADING or UNAVAILABLE with the reason."""
    body = await request.body()
    only_ready = False
    if body.strip():
        try:
            only_ready = bool(json.loads(body).get("ready", False))
        except (ValueError, AttributeError):
            return error(400, "the index request body must be a JSON object, e.g. {\"ready\": true}")
    registry = request.app.state.registry
    rows = []
    for entry in registry.index():
        if only_ready and entry.state != READY:
            continue
        rows.append(RepositoryEntry(
            name=entry.name, version=str(entry.version), state=_state(entry), reason=entry.reason or "",
            signature_verified=entry.signature.verified if entry.signature is not None else None
        ).model_dump(exclude_none=True))
    return JSONResponse(rows)


def _explicit(request: Request) -> JSONResponse | None:
    if request.app.state.settings.model_control != "explicit":
        return error(400, "model_control is 'none': the model dir is read at start; start the server with "
                          "AFRNN_MODEL_CONTROL=explicit to load and unload models")
    return None


@repository_router.post("/models/{name:path}/load", response_model=LoadResult,
                        responses={**ADMIN_ERRORS, 400: {"model": LoadResult | ProtocolError, "description":
                                                         "a version failed to load (LoadResult.error), or "
                                                         "the name is refused"}})
@classed(RouteClass.ADMIN)
async def repository_load(name: str, request: Request) -> Response:
    """(Re)read the folder of ``name`` in the model dir: new and changed versions load and warm up beside
    the serving one, then traffic switches; a failure leaves the serving version untouched."""
    refused = _explicit(request)
    if refused is not None:
        return refused
    registry = request.app.state.registry
    try:
        outcome = await registry.load(name)
    except (ServiceError, InputError) as exc:
        return error_of(request, exc)
    result = LoadResult(name=name, loaded=[str(v) for v in outcome.loaded],
                        unchanged=[str(v) for v in outcome.unchanged],
                        retired=[str(v) for v in outcome.retired],
                        serving_version=str(outcome.serving) if outcome.serving is not None else None)
    if outcome.failed:
        failed = "; ".join(f"version {v}: {reason}" for v, reason in sorted(outcome.failed.items()))
        result.error = f"failed to load {name!r}: {failed}"
        return JSONResponse(result.model_dump(), status_code=400)
    return JSONResponse(result.model_dump(exclude_none=True))


@repository_router.post("/models/{name:path}/unload", response_model=UnloadResult, responses=ADMIN_ERRORS)
@classed(RouteClass.ADMIN)
async def repository_unload(name: str, request: Request) -> Response:
    """Take ``name`` out of traffic; its versions finish their requests and streams, then are freed."""
    refused = _explicit(request)
    if refused is not None:
        return refused
    try:
        versions = await request.app.state.registry.unload(name)
    except (ServiceError, InputError) as exc:
        return error_of(request, exc)
    return JSONResponse(UnloadResult(name=name, unloaded=[str(v) for v in versions]).model_dump())
