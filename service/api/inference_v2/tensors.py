"""Tensors of the Open Inference Protocol in and out of an HTTP body: JSON `data`, or the binary
tensor extension (a JSON header of `Inference-Header-Content-Length` bytes, then each binary
tensor's raw little-endian bytes; a BYTES element as a 4-byte length and its bytes). In JSON a
BYTES element is base64, since a WAV or FLAC file is not UTF-8 text."""

from __future__ import annotations

import base64
import binascii
import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import NDArray
from pydantic import ValidationError

from service.api.inference_v2.schemas import (
    Datatype,
    InferenceRequest,
    InferenceResponse,
    ResponseOutput,
)

HEADER_LENGTH = "Inference-Header-Content-Length"
BINARY_SIZE = "binary_data_size"
_NUMBER_TYPES: dict[str, np.dtype[Any]] = {"FP32": np.dtype("<f4"), "FP64": np.dtype("<f8")}
_OUTPUT_TYPES: dict[str, np.dtype[Any]] = {"FP64": np.dtype("<f8"), "BOOL": np.dtype("?")}
_LENGTH = struct.Struct("<I")


class InvalidRequestError(ValueError):
    """The body is not a usable inference request (HTTP 400); the message says why."""


@dataclass(frozen=True)
class InputTensor:
    name: str
    datatype: str
    shape: tuple[int, ...]
    parameters: dict[str, Any]
    numbers: NDArray[np.float64] | None  # FP32 and FP64 inputs, in their shape
    elements: list[bytes] | None  # BYTES inputs, row-major


@dataclass(frozen=True)
class OutputTensor:
    name: str
    datatype: Datatype
    values: NDArray[Any]


def parse_request(
    body: bytes, header_length: str | None
) -> tuple[InferenceRequest, dict[str, InputTensor]]:
    """The request and its inputs by name. Raises InvalidRequestError."""
    header, binary = _split(body, header_length)
    try:
        request = InferenceRequest.model_validate_json(header)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'request'}: {err['msg']}"
            for err in exc.errors()
        )
        raise InvalidRequestError(f"not an inference request: {problems}") from None
    tensors: dict[str, InputTensor] = {}
    offset = 0
    for given in request.inputs:
        if given.name in tensors:
            raise InvalidRequestError(f"input {given.name!r} is given twice")
        shape = _shape(given.name, given.shape)
        size = given.parameters.get(BINARY_SIZE)
        if size is not None:
            if not isinstance(size, int) or size < 0 or offset + size > len(binary):
                raise InvalidRequestError(
                    f"input {given.name!r}: {BINARY_SIZE} {size!r} does not fit the "
                    f"{len(binary)} bytes after the JSON header"
                )
            chunk = binary[offset : offset + size]
            offset += size
            numbers, elements = _from_binary(given.name, given.datatype, shape, chunk)
        else:
            numbers, elements = _from_json(given.name, given.datatype, shape, given.data)
        tensors[given.name] = InputTensor(
            given.name, given.datatype, shape, given.parameters, numbers, elements
        )
    if offset != len(binary):
        raise InvalidRequestError(
            f"{len(binary) - offset} bytes after the JSON header belong to no input"
        )
    return request, tensors


def _split(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return body, b""
    if not header_length.isdigit() or int(header_length) > len(body):
        raise InvalidRequestError(
            f"{HEADER_LENGTH} {header_length!r} is not a length within the {len(body)}-byte body"
        )
    return body[: int(header_length)], body[int(header_length) :]


def _shape(name: str, shape: list[int]) -> tuple[int, ...]:
    if any(dim < 0 for dim in shape):
        raise InvalidRequestError(f"input {name!r}: shape {shape} has a negative dimension")
    return tuple(shape)


def _from_binary(
    name: str, datatype: str, shape: tuple[int, ...], chunk: bytes
) -> tuple[NDArray[np.float64] | None, list[bytes] | None]:
    count = math.prod(shape)
    if datatype == "BYTES":
        elements = []
        at = 0
        while at < len(chunk):
            if at + _LENGTH.size > len(chunk):
                raise InvalidRequestError(f"input {name!r}: a BYTES element is cut short")
            (length,) = _LENGTH.unpack_from(chunk, at)
            at += _LENGTH.size
            if at + length > len(chunk):
                raise InvalidRequestError(f"input {name!r}: a BYTES element is cut short")
            elements.append(chunk[at : at + length])
            at += length
        _check_count(name, shape, len(elements))
        return None, elements
    dtype = _number_type(name, datatype)
    if len(chunk) != count * dtype.itemsize:
        raise InvalidRequestError(
            f"input {name!r}: {len(chunk)} bytes do not hold shape {list(shape)} of {datatype}"
        )
    values = np.frombuffer(chunk, dtype=dtype).astype(np.float64).reshape(shape)
    return values, None


def _from_json(
    name: str, datatype: str, shape: tuple[int, ...], data: Any
) -> tuple[NDArray[np.float64] | None, list[bytes] | None]:
    if data is None:
        raise InvalidRequestError(f"input {name!r} has neither data nor {BINARY_SIZE}")
    if datatype == "BYTES":
        flat = _flatten(data)
        _check_count(name, shape, len(flat))
        try:
            return None, [base64.b64decode(str(item), validate=True) for item in flat]
        except (binascii.Error, ValueError):
            raise InvalidRequestError(
                f"input {name!r}: in JSON, BYTES elements are base64 strings (or send the "
                "binary tensor extension)"
            ) from None
    dtype = _number_type(name, datatype)
    flat = _flatten(data)
    _check_count(name, shape, len(flat))
    if not all(type(value) in (int, float) for value in flat):
        raise InvalidRequestError(f"input {name!r}: {datatype} data must hold only numbers")
    try:
        values = np.asarray(flat, dtype=np.float64)
    except OverflowError:
        raise InvalidRequestError(f"input {name!r}: a number is beyond {datatype}") from None
    # Numbers take the precision of their declared type, as binary data has it.
    return values.astype(dtype).astype(np.float64).reshape(shape), None


def _flatten(data: Any) -> list[Any]:
    if not isinstance(data, list):
        return [data]
    flat: list[Any] = []
    stack = [iter(data)]
    while stack:
        for item in stack[-1]:
            if isinstance(item, list):
                stack.append(iter(item))
                break
            flat.append(item)
        else:
            stack.pop()
    return flat


def _number_type(name: str, datatype: str) -> np.dtype[Any]:
    dtype = _NUMBER_TYPES.get(datatype)
    if dtype is None:
        raise InvalidRequestError(
            f"input {name!r}: datatype {datatype!r} is not one of {', '.join(_NUMBER_TYPES)}"
        )
    return dtype


def _check_count(name: str, shape: tuple[int, ...], count: int) -> None:
    if count != math.prod(shape):
        raise InvalidRequestError(
            f"input {name!r}: {count} element(s) do not fill shape {list(shape)}"
        )


def encode_response(
    response: InferenceResponse, outputs: list[OutputTensor], binary: set[str]
) -> tuple[bytes, dict[str, str]]:
    """The body and its extra headers: JSON, or a JSON header followed by the outputs named in
    `binary` as raw bytes."""
    chunks = []
    for output in outputs:
        values = output.values.astype(_OUTPUT_TYPES[output.datatype])
        described = ResponseOutput(
            name=output.name, shape=list(values.shape), datatype=output.datatype
        )
        if output.name in binary:
            raw = values.tobytes()
            described.parameters = {BINARY_SIZE: len(raw)}
            chunks.append(raw)
        else:
            described.data = values.ravel().tolist()
        response.outputs.append(described)
    header = response.model_dump_json(exclude_none=True).encode()
    if not chunks:
        return header, {}
    return header + b"".join(chunks), {HEADER_LENGTH: str(len(header))}
