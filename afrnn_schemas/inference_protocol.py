"""The Open Inference Protocol's (KServe V2) REST messages, as the service answers them.

kserve/open-inference-protocol ``specification/protocol/inference_rest.md``: server and model metadata,
readiness, the inference request and response (JSON tensors; with Triton's binary tensor extension the
JSON part is a header followed by raw bytes, ``service.v2_tensors``), and the error form
``{"error": "..."}``. The request is read by the server's own parser, not by these models: they document
the wire format (the OpenAPI document, the typed client) and the server's answers are built to match.
"""

from typing import Any, Literal

from pydantic import Field

from afrnn_schemas.common import Response

Datatype = Literal["BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8", "INT16", "INT32", "INT64", "FP16",
                   "FP32", "FP64", "BYTES"]


class ProtocolError(Response):
    error: str = Field(examples=["unknown model 'mnistt'; served models: ['cifar10', 'mnist', 'pendulum']"])


class ServerMetadata(Response):
    name: str = Field(examples=["afrnn-serving"])
    version: str = Field(examples=["0.2.0"])
    extensions: list[str] = Field(examples=[["binary_tensor_data", "sequence", "model_repository"]])


class ServerLive(Response):
    live: bool


class ServerReady(Response):
    ready: bool
    error: str | None = Field(None, description="why the server is not ready")


class TensorMetadata(Response):
    name: str = Field(examples=["pixels"])
    datatype: Datatype = Field(examples=["UINT8"])
    shape: list[int] = Field(description="−1: any size (the batch)", examples=[[-1, 784]])


class ModelMetadata(Response):
    name: str = Field(examples=["mnist"])
    versions: list[str] = Field(description="the versions that serve", examples=[["1", "2"]])
    platform: str = Field(examples=["pytorch_torchscript"])
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any] = Field(default_factory=dict,
                                       description="the answering version, its task, and its checksum and "
                                                   "signature checks")


class ModelReady(Response):
    name: str
    version: str
    ready: bool


class InferInput(Response):
    name: str = Field(examples=["pixels"])
    datatype: Datatype = Field(examples=["UINT8"])
    shape: list[int] = Field(examples=[[1, 784]])
    data: list[Any] | None = Field(None, description="the values in row-major order, flat or nested; absent "
                                                     "when parameters.binary_data_size gives them in binary")
    parameters: dict[str, Any] | None = Field(None, description="binary_data_size: the input's bytes after "
                                                                "the JSON header")


class RequestedOutput(Response):
    name: str = Field(examples=["label"])
    parameters: dict[str, Any] | None = Field(None, description="binary_data: return this output in binary")


class InferRequest(Response):
    """The JSON of an inference request (with binary tensors: its header, ``Inference-Header-Content-Length``
    bytes long)."""

    id: str | None = None
    parameters: dict[str, Any] | None = Field(None, description="steps (pendulum); sequence_id, "
                                                                "sequence_start, sequence_end (classifiers); "
                                                                "binary_data_output")
    inputs: list[InferInput]
    outputs: list[RequestedOutput] | None = Field(None, description="the outputs to return (all when absent)")


class InferOutput(Response):
    name: str = Field(examples=["label"])
    datatype: Datatype = Field(examples=["INT64"])
    shape: list[int] = Field(examples=[[1]])
    data: list[Any] | None = None
    parameters: dict[str, Any] | None = Field(None, description="binary_data_size, for a binary output")


class InferResponse(Response):
    model_name: str = Field(examples=["mnist"])
    model_version: str = Field(examples=["1"])
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[InferOutput]


PROTOCOL_ERRORS = {
    400: {"model": ProtocolError, "description": "the request breaks a rule; the error names the input"},
    401: {"model": ProtocolError, "description": "API key missing or wrong (when one is configured)"},
    404: {"model": ProtocolError, "description": "unknown model or version"},
    413: {"model": ProtocolError, "description": "request body larger than max_body_bytes"},
    503: {"model": ProtocolError, "description": "model loading or unavailable, or overloaded (Retry-After)"},
    504: {"model": ProtocolError, "description": "not answered within request_timeout_s"},
}
ADMIN_ERRORS = {
    400: {"model": ProtocolError, "description": "not a model name, a failed load, or model_control none"},
    401: {"model": ProtocolError, "description": "the admin key is missing or wrong"},
    403: {"model": ProtocolError, "description": "the inference key, or no admin key configured"},
    404: {"model": ProtocolError, "description": "no such model in the model dir, or not loaded"},
    413: {"model": ProtocolError, "description": "request body larger than max_body_bytes"},
}
