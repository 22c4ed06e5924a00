"""The models being served: list, describe, reload."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from service.api.deps import ModelDep, RuntimeDep, require_api_key
from service.api.schemas import (
    ErrorResponse,
    ModelDetail,
    ModelList,
    ModelSummary,
    RefusedBundleOut,
    ReloadReport,
    WorkerModels,
)
from service.registry import RefusedBundle, ServedModel

router = APIRouter(
    prefix="/v1/models",
    tags=["models"],
    dependencies=[Depends(require_api_key)],
    responses={401: {"model": ErrorResponse, "description": "missing or wrong API key"}},
)


def _summary(model: ServedModel) -> ModelSummary:
    manifest = model.manifest
    return ModelSummary(
        name=model.name,
        version=model.version,
        kind=manifest.kind,
        bundle=model.path.name,
        created_at=manifest.created_at,
        loaded_at=model.loaded_at,
        description=manifest.description,
        threshold=model.threshold,
        operating_point=model.operating_point,
    )


def _refused(refusal: RefusedBundle) -> RefusedBundleOut:
    return RefusedBundleOut(bundle=refusal.path.name, error=refusal.error, at=refusal.at)


@router.get("", summary="Every model being served, and bundles that were refused")
async def list_models(runtime: RuntimeDep) -> ModelList:
    registry = runtime.registry
    return ModelList(
        models=[_summary(m) for m in registry.served()],
        refused=[_refused(r) for r in registry.refused()],
    )


@router.post(
    "/reload",
    summary="Load new or changed bundles now in every worker, without waiting for the poll",
)
async def reload_models(runtime: RuntimeDep) -> ReloadReport:
    # Loading runs ONNX Runtime off the event loop, and not in the scoring pool, so a busy
    # pool never blocks a reload; other workers are waited for at most reload_wait_seconds.
    outcome = await runtime.worker_sync.reload()
    report = outcome.report
    workers = [
        WorkerModels(pid=status.pid, reloaded=reloaded, models=status.models)
        for status, reloaded in outcome.workers
    ]
    return ReloadReport(
        loaded=[_summary(m) for m in report.loaded],
        refused=[_refused(r) for r in report.refused],
        removed=[p.name for p in report.removed],
        models=[_summary(m) for m in runtime.registry.served()],
        workers=workers,
        all_workers_reloaded=all(worker.reloaded for worker in workers),
    )


@router.get(
    "/{name}",
    summary="One model's manifest and status",
    responses={404: {"model": ErrorResponse, "description": "no such model"}},
)
async def describe_model(model: ModelDep) -> ModelDetail:
    return ModelDetail(
        **_summary(model).model_dump(), manifest=model.manifest.model_dump(mode="json")
    )
