"""The Open Inference Protocol's (KServe V2) tensors on the wire: JSON and the binary extension.

An inference request is a JSON object (``inference_rest.md`` of kserve/open-inference-protocol)::

    {"id": "…", "parameters": {…},
     "inputs":  [{"name": "pixels", "datatype": "UINT8", "shape": [2, 784], "data": [...]}, …],
     "outputs": [{"name": "label", "parameters": {"binary_data": true}}, …]}

Each input's ``data`` is its values in row-major order, flat or nested. With Triton's binary tensor
extension the JSON is only a header: the ``Inference-Header-Content-Length`` request header gives its
length, and each input with ``parameters.binary_data_size`` takes that many bytes, in input order, from
what follows it (little-endian, row-major; BYTES elements each prefixed by a 4-byte length). An output
is returned the same way when its ``parameters.binary_data`` is true, or when the request's
``parameters.binary_data_output`` is and the output does not say otherwise.

``parse_request`` turns a body into named numpy arrays, checking every rule of the format (400 with the
input named, ``TensorError``); ``encode_response`` builds the answer's body and headers. Binary input
is read with ``np.frombuffer``: no copy and no per-value work.
"""

import json
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pydantic_core

HEADER_LENGTH = "inference-header-content-length"

# V2 datatype → numpy dtype (little-endian). BYTES travel as length-prefixed strings.
DTYPES: dict[str, np.dtype] = {
    "BOOL": np.dtype(np.bool_), "UINT8": np.dtype("<u1"), "UINT16": np.dtype("<u2"),
    "UINT32": np.dtype("<u4"), "UINT64": np.dtype("<u8"), "INT8": np.dtype("<i1"),
    "INT16": np.dtype("<i2"), "INT32": np.dtype("<i4"), "INT64": np.dtype("<i8"),
    "FP16": np.dtype("<f2"), "FP32": np.dtype("<f4"), "FP64": np.dtype("<f8"),
}
DATATYPE_OF = {dtype: name for name, dtype in DTYPES.items()}
MAX_DIMS = 8


class TensorError(ValueError):
    """A request that breaks a rule of the protocol's format: 400, the message names the field."""


@dataclass
class InferRequest:
    id: str | None
    parameters: dict[str, Any]
    inputs: dict[str, np.ndarray]              # by name, in the shape sent
    datatypes: dict[str, str]
    outputs: dict[str, bool] | None             # requested output → binary; None: every output
    binary_default: bool = False               # parameters.binary_data_output


@dataclass
class OutputTensor:
    name: str
    data: np.ndarray
    datatype: str = field(default="")

    def __post_init__(self) -> None:
        self.datatype = self.datatype or DATATYPE_OF[self.data.dtype]


def _shape(value: Any, where: str) -> tuple[int, ...]:
    if (type(value) is not list or len(value) > MAX_DIMS
            or any(type(d) is not int or d < 0 for d in value)):
        raise TensorError(f"{where}.shape must be a list of at most {MAX_DIMS} non-negative integers")
    return tuple(value)


def parse_request(body: bytes, header_length: str | None) -> InferRequest:
    """The request in ``body``; ``header_length`` is the ``Inference-Header-Content-Length`` header."""
    if header_length is not None:
        if not header_length.isdigit() or int(header_length) > len(body):
            raise TensorError(f"Inference-Header-Content-Length must be an integer between 0 and the body's "
                              f"{len(body)} bytes, got {header_length!r}")
        split = int(header_length)
        header, binary = body[:split], memoryview(body)[split:]
    else:
        header, binary = body, memoryview(b"")
    try:
        doc = pydantic_core.from_json(header)
    except ValueError as err:
        raise TensorError(f"the request is not valid JSON: {str(err).split(' at line ')[0]}") from None
    if type(doc) is not dict:
        raise TensorError("the request must be a JSON object with `inputs`")
    parameters = doc.get("parameters") or {}
    if type(parameters) is not dict:
        raise TensorError("parameters must be an object")
    raw_inputs = doc.get("inputs")
    if type(raw_inputs) is not list or not raw_inputs:
        raise TensorError("inputs must be a non-empty list of tensors")
    inputs: dict[str, np.ndarray] = {}
    datatypes: dict[str, str] = {}
    offset = 0
    for i, spec in enumerate(raw_inputs):
        where = f"inputs[{i}]"
        if type(spec) is not dict or type(spec.get("name")) is not str:
            raise TensorError(f"{where} must be an object with a string `name`")
        name = spec["name"]
        where = f"inputs[{i}] ({name!r})"
        if name in inputs:
            raise TensorError(f"{where}: input {name!r} is given twice")
        datatype = spec.get("datatype")
        dtype = DTYPES.get(datatype) if type(datatype) is str else None
        if dtype is None:
            raise TensorError(f"{where}.datatype must be one of {sorted(DTYPES)}, got {datatype!r}")
        shape = _shape(spec.get("shape"), where)
        count = int(np.prod(shape, dtype=np.int64))
        params = spec.get("parameters") or {}
        size = params.get("binary_data_size") if type(params) is dict else None
        if size is not None:
            if type(size) is not int or size < 0:
                raise TensorError(f"{where}.parameters.binary_data_size must be a non-negative integer")
            if size != count * dtype.itemsize:
                raise TensorError(f"{where}: binary_data_size {size} is not shape {list(shape)} × "
                                  f"{dtype.itemsize} bytes of {datatype} = {count * dtype.itemsize}")
            if offset + size > len(binary):
                raise TensorError(f"{where}: binary_data_size {size} passes the end of the body (only "
                                  f"{len(binary) - offset} bytes after the JSON header)")
            array = np.frombuffer(binary[offset:offset + size], dtype=dtype).reshape(shape)
            offset += size
        else:
            if "data" not in spec:
                raise TensorError(f"{where} needs `data`, or parameters.binary_data_size with the binary "
                                  "tensor extension")
            array = _from_json(spec["data"], dtype, shape, datatype, where)
        inputs[name] = array
        datatypes[name] = datatype
    if offset != len(binary):
        raise TensorError(f"{len(binary) - offset} bytes after the JSON header belong to no input "
                          "(binary_data_size)")
    outputs = None
    if doc.get("outputs") is not None:
        raw_outputs = doc["outputs"]
        if type(raw_outputs) is not list:
            raise TensorError("outputs must be a list of {\"name\": ...} objects")
        outputs = {}
        for j, out in enumerate(raw_outputs):
            if type(out) is not dict or type(out.get("name")) is not str:
                raise TensorError(f"outputs[{j}] must be an object with a string `name`")
            out_params = out.get("parameters") or {}
            outputs[out["name"]] = bool(out_params.get("binary_data")) if "binary_data" in out_params \
                else bool(parameters.get("binary_data_output", False))
    request_id = doc.get("id")
    return InferRequest(id=request_id if type(request_id) is str else None, parameters=parameters,
                        inputs=inputs, datatypes=datatypes, outputs=outputs,
                        binary_default=bool(parameters.get("binary_data_output", False)))


def _from_json(data: Any, dtype: np.dtype, shape: tuple[int, ...], datatype: str, where: str) -> np.ndarray:
    """A JSON ``data`` array (flat or nested, row-major) as ``shape`` of ``dtype``, values checked."""
    if type(data) is not list:
        raise TensorError(f"{where}.data must be a list of values")
    try:
        values = np.asarray(data)
    except ValueError:
        raise TensorError(f"{where}.data must be a rectangular list of numbers") from None
    count = int(np.prod(shape, dtype=np.int64))
    if values.size != count:
        raise TensorError(f"{where}: data holds {values.size} values, shape {list(shape)} needs {count}")
    kind = values.dtype.kind
    if dtype.kind == "b":
        ok = kind == "b"
    elif dtype.kind in "iu":
        ok = kind in "iu"
    else:
        ok = kind in "iuf"
    if not ok or (count and kind == "O"):
        raise TensorError(f"{where}.data must hold {datatype} values (found {values.dtype.name} values)")
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if count and (values.min() < info.min or values.max() > info.max):
            raise TensorError(f"{where}.data: {datatype} values lie in [{info.min}, {info.max}]")
    return values.astype(dtype, copy=False).reshape(shape)


def encode_response(model: str, version: str, request_id: str | None, outputs: list[OutputTensor],
                    binary: dict[str, bool], parameters: dict[str, Any] | None = None
                    ) -> tuple[bytes, dict[str, str]]:
    """The response body and its headers: JSON alone, or a JSON header followed by the binary outputs."""
    described = []
    chunks: list[bytes] = []
    for out in outputs:
        entry: dict[str, Any] = {"name": out.name, "datatype": out.datatype, "shape": list(out.data.shape)}
        if binary.get(out.name, False):
            raw = np.ascontiguousarray(out.data, dtype=DTYPES[out.datatype]).tobytes()
            entry["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        else:
            entry["data"] = out.data.ravel().tolist()
        described.append(entry)
    doc: dict[str, Any] = {"model_name": model, "model_version": version, "outputs": described}
    if request_id is not None:
        doc["id"] = request_id
    if parameters:
        doc["parameters"] = parameters
    header = json.dumps(doc, separators=(",", ":")).encode()
    if not chunks:
        return header, {"content-type": "application/json"}
    return header + b"".join(chunks), {"content-type": "application/octet-stream",
                                       HEADER_LENGTH: str(len(header))}
