"""A model's report page (written by `auscult report` into the bundle's `report/` folder):
`GET /v1/models/{name}/report` sends the browser to `.../report/`, which serves `index.html`, and
`.../report/{file}` serves its figures. Only files inside that folder are ever served."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, Depends, HTTPException
from fastapi.responses import FileResponse, RedirectResponse

from service.api.deps import ModelDep, require_api_key
from service.api.schemas import ErrorResponse
from service.bundle.manifest import REPORT_DIR
from service.registry import ServedModel

INDEX_FILE = "index.html"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".png": "image/png",
    ".json": "application/json",
}
# The page needs nothing but its own images and inline style: no scripts, nothing from elsewhere.
_HEADERS = {
    "Cache-Control": "no-cache",
    "Content-Security-Policy": "default-src 'none'; img-src 'self'; style-src 'unsafe-inline'",
    "X-Content-Type-Options": "nosniff",
}

router = APIRouter(
    prefix="/v1/models",
    tags=["models"],
    dependencies=[Depends(require_api_key)],
    responses={
        401: {"model": ErrorResponse, "description": "missing or wrong API key"},
        404: {"model": ErrorResponse, "description": "no such model, report or report file"},
    },
)


def _report_folder(model: ServedModel) -> Path:
    folder = model.path / REPORT_DIR
    if not (folder / INDEX_FILE).is_file():
        raise HTTPException(
            status_code=404,
            detail=f"model {model.name!r} has no report: write one with "
            f"'auscult report BUNDLE --data DIR' into the bundle's {REPORT_DIR}/ folder",
        )
    return folder


def _report_file(model: ServedModel, relative: str) -> Path:
    """The file `relative` names inside the report folder, after following every link; a path
    that leads outside the folder, or to a kind of file a report does not hold, is not found."""
    root = _report_folder(model).resolve()
    target = (root / (relative or INDEX_FILE)).resolve()
    if not (target.is_relative_to(root) and target.suffix in MEDIA_TYPES and target.is_file()):
        raise HTTPException(
            status_code=404, detail=f"the report of {model.name!r} has no file {relative!r}"
        )
    return target


@router.get(
    "/{name}/report",
    summary="The model's report page (redirects to the folder, so its images load relatively)",
    status_code=307,
    response_class=RedirectResponse,
)
async def report_page(model: ModelDep) -> RedirectResponse:
    _report_folder(model)
    # Relative to .../{name}/report, "report/" is .../{name}/report/, behind any proxy prefix.
    return RedirectResponse(f"{REPORT_DIR}/", status_code=307)


@router.get(
    "/{name}/report/{file_path:path}",
    summary="A file of the model's report: index.html (the default) or one of its figures",
    response_class=FileResponse,
)
async def report_file(model: ModelDep, file_path: str) -> FileResponse:
    target = _report_file(model, file_path)
    return FileResponse(target, media_type=MEDIA_TYPES[target.suffix], headers=_HEADERS)
