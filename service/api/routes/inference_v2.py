"""The Open Inference Protocol v2 (KServe, Triton) beside /v1: health, server and model metadata,
model readiness, and inference on the served version of a model or any older version whose
bundle is still in the models folder. Errors are `{"error": "..."}`
(service/api/inference_v2/error_shape.py); the work is in service/api/inference_v2/."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse, Response

from service import __version__
from service.api.deps import RuntimeDep, refuse_while_loading, require_api_key
from service.api.inference_v2.inference import infer, model_metadata
from service.api.inference_v2.schemas import (
    InferenceRequest,
    InferenceResponse,
    ModelMetadata,
    ModelReady,
    ServerLive,
    ServerMetadata,
    ServerReady,
    V2Error,
)
from service.api.inference_v2.tensors import HEADER_LENGTH, InvalidRequestError
from service.audio.decode import DecodeLimits
from service.registry import ServedModel
from service.runtime import Runtime

SERVER_NAME = "auscult"
EXTENSIONS = ["binary_tensor_data"]

NameParam = Annotated[str, Path(description="the model name from its manifest")]
VersionParam = Annotated[str, Path(description="a version of the model whose bundle is loaded")]

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": V2Error, "description": "missing or wrong API key"},
    404: {"model": V2Error, "description": "no such model or version"},
}
_INFER_ERRORS: dict[int | str, dict[str, Any]] = {
    **_ERRORS,
    400: {"model": V2Error, "description": "not a usable inference request: says what is wrong"},
    413: {"model": V2Error, "description": "body over AUSCULT_MAX_BODY_BYTES"},
    503: {"model": V2Error, "description": "scoring pool full; see Retry-After"},
}
_INFER_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "description": "an inference request in JSON, or a JSON header of "
        f"{HEADER_LENGTH} bytes followed by binary tensors",
        "content": {
            "application/json": {"schema": InferenceRequest.model_json_schema()},
            "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}

health = APIRouter(prefix="/v2/health", tags=["inference v2"])
router = APIRouter(
    prefix="/v2", tags=["inference v2"], dependencies=[Depends(require_api_key)], responses=_ERRORS
)


@health.get("/live", summary="The process is alive (OIP server live)")
async def server_live() -> ServerLive:
    return ServerLive(live=True)


@health.get(
    "/ready",
    summary="Models are loaded and warm and the server is not draining (OIP server ready)",
    responses={503: {"model": ServerReady, "description": "loading, no models, or draining"}},
)
async def server_ready(runtime: RuntimeDep) -> JSONResponse:
    ready = runtime.readiness() is None
    return JSONResponse(ServerReady(ready=ready).model_dump(), status_code=200 if ready else 503)


@router.get("", summary="Server metadata (OIP)")
async def server_metadata() -> ServerMetadata:
    return ServerMetadata(name=SERVER_NAME, version=__version__, extensions=EXTENSIONS)


def _model(runtime: Runtime, name: str, version: str | None) -> ServedModel:
    """The served model of that name, or the given version of it while its bundle is loaded."""
    if version is None:
        model = runtime.registry.get(name)
    else:
        versions = runtime.registry.versions(name)
        model = versions.get(version)
        if model is None and versions:
            raise HTTPException(
                status_code=404,
                detail=f"model {name!r} has no version {version!r} (loaded: {list(versions)})",
            )
    if model is None:
        refuse_while_loading(runtime)
        served = [m.name for m in runtime.registry.served()]
        raise HTTPException(
            status_code=404, detail=f"no model named {name!r} is served (served: {served})"
        )
    return model


def _metadata(runtime: Runtime, name: str, version: str | None) -> ModelMetadata:
    model = _model(runtime, name, version)
    return model_metadata(model, list(runtime.registry.versions(name)))


@router.get("/models/{name}", summary="Model metadata (OIP): inputs and outputs")
async def metadata(name: NameParam, runtime: RuntimeDep) -> ModelMetadata:
    return _metadata(runtime, name, None)


@router.get("/models/{name}/versions/{version}", summary="Metadata of one version (OIP)")
async def version_metadata(
    name: NameParam, version: VersionParam, runtime: RuntimeDep
) -> ModelMetadata:
    return _metadata(runtime, name, version)


@router.get("/models/{name}/ready", summary="Whether the model is loaded and warm (OIP)")
async def model_ready(name: NameParam, runtime: RuntimeDep) -> ModelReady:
    return ModelReady(name=_model(runtime, name, None).name, ready=True)


@router.get("/models/{name}/versions/{version}/ready", summary="Whether the version is loaded")
async def version_ready(name: NameParam, version: VersionParam, runtime: RuntimeDep) -> ModelReady:
    return ModelReady(name=_model(runtime, name, version).name, ready=True)


async def _infer(request: Request, runtime: Runtime, name: str, version: str | None) -> Response:
    model = _model(runtime, name, version)
    body = await request.body()
    try:
        encoded = await runtime.pool.run(
            infer,
            model,
            body,
            request.headers.get(HEADER_LENGTH),
            limits=DecodeLimits.from_settings(runtime.settings),
            max_sensor_steps=runtime.settings.max_sensor_steps,
            metrics=runtime.metrics,
            events=runtime.events,
        )
    except InvalidRequestError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from exc
    media_type = "application/octet-stream" if encoded.headers else "application/json"
    return Response(encoded.body, media_type=media_type, headers=encoded.headers)


_INFER_RESPONSES: dict[int | str, dict[str, Any]] = {
    **_INFER_ERRORS,
    200: {"model": InferenceResponse},
}


@router.post(
    "/models/{name}/infer",
    summary="Score audio or a sensor series (OIP)",
    openapi_extra=_INFER_BODY,
    responses=_INFER_RESPONSES,
    response_class=Response,
)
async def infer_latest(name: NameParam, request: Request, runtime: RuntimeDep) -> Response:
    return await _infer(request, runtime, name, None)


@router.post(
    "/models/{name}/versions/{version}/infer",
    summary="Score with one version of the model (OIP)",
    openapi_extra=_INFER_BODY,
    responses=_INFER_RESPONSES,
    response_class=Response,
)
async def infer_version(
    name: NameParam, version: VersionParam, request: Request, runtime: RuntimeDep
) -> Response:
    return await _infer(request, runtime, name, version)
