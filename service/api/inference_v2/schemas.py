"""The Open Inference Protocol's JSON messages (KServe v2 / Triton HTTP): requests, responses,
metadata and errors."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

Datatype = Literal["BOOL", "FP32", "FP64", "BYTES"]

PLATFORM = "auscult-onnx"


class V2Error(BaseModel):
    error: str = Field(description="what was wrong, in words")


class ServerLive(BaseModel):
    live: bool


class ServerReady(BaseModel):
    ready: bool


class ModelReady(BaseModel):
    name: str
    ready: bool


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str] = Field(description="protocol extensions supported")


class TensorMetadata(BaseModel):
    name: str
    datatype: Datatype
    shape: list[int] = Field(description="-1 where any size is accepted")


class ModelMetadata(BaseModel):
    name: str
    versions: list[str] = Field(description="every version that can be addressed, oldest first")
    platform: str = PLATFORM
    inputs: list[TensorMetadata] = Field(
        description="audio models take one of `audio` (a WAV or FLAC file) or `samples` "
        "(mono samples, with the `sample_rate` parameter); windows models take `samples`"
    )
    outputs: list[TensorMetadata]


class RequestInput(BaseModel):
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] = Field(default_factory=dict)
    data: Any = Field(None, description="row-major, flat or nested; absent when binary")


class RequestOutput(BaseModel):
    name: str
    parameters: dict[str, Any] = Field(default_factory=dict)


class InferenceRequest(BaseModel):
    id: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    inputs: list[RequestInput]
    outputs: list[RequestOutput] | None = Field(
        None, description="the outputs wanted, all of them when absent"
    )


class ResponseOutput(BaseModel):
    name: str
    shape: list[int]
    datatype: Datatype
    parameters: dict[str, Any] | None = None
    data: list[Any] | None = None


class InferenceResponse(BaseModel):
    model_name: str
    model_version: str
    id: str | None = None
    parameters: dict[str, Any] = Field(default_factory=dict)
    outputs: list[ResponseOutput]
