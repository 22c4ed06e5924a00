"""The event API: list and read the events the service kept, fetch their audio, and label them.
The work is in service/events/; these routes only translate HTTP."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, HTTPException, Path, Query
from fastapi.responses import FileResponse

from service.api.cookie_auth import require_api_key_or_cookie
from service.api.deps import RuntimeDep
from service.api.event_schemas import EventDetail, EventOut, EventPageOut, LabelIn
from service.api.schemas import ErrorResponse
from service.events.queries import MAX_PAGE, BadCursorError, EventFilter, get_event, list_events
from service.events.schema import EventRow
from service.events.store import EventStore
from service.runtime import Runtime

EventId = Annotated[str, Path(pattern="^[0-9a-f]{32}$", description="the event's id")]

router = APIRouter(
    prefix="/v1/events",
    tags=["events"],
    dependencies=[Depends(require_api_key_or_cookie)],
    responses={
        401: {"model": ErrorResponse, "description": "missing or wrong API key"},
        404: {"model": ErrorResponse, "description": "no such event, or the store is off"},
        422: {
            "model": ErrorResponse,
            "description": "a malformed parameter or body, or a cursor this service did not give",
        },
    },
)


def event_store(runtime: Runtime) -> EventStore:
    if runtime.events is None:
        raise HTTPException(
            status_code=404, detail="the event store is off (AUSCULT_EVENTS_ENABLED=false)"
        )
    return runtime.events


async def _event(store: EventStore, event_id: str) -> EventRow:
    row = await asyncio.to_thread(get_event, store.engine, event_id)
    if row is None:
        raise HTTPException(status_code=404, detail=f"no event {event_id!r}")
    return row


@router.get("", summary="Events, newest first, filtered and paginated")
async def events(
    runtime: RuntimeDep,
    model: Annotated[str | None, Query(max_length=128)] = None,
    station: Annotated[str | None, Query(max_length=64)] = None,
    verdict: Literal["anomaly", "normal"] | None = None,
    label: Annotated[
        Literal["anomaly", "normal", "none"] | None,
        Query(description="an operator's label, or 'none' for events not labelled yet"),
    ] = None,
    since: Annotated[datetime | None, Query(description="events at or after this time")] = None,
    until: Annotated[datetime | None, Query(description="events before this time")] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[
        str | None, Query(max_length=200, description="next_cursor of the previous page")
    ] = None,
) -> EventPageOut:
    store = event_store(runtime)
    where = EventFilter(model, station, verdict, label, since, until)
    try:
        page = await asyncio.to_thread(list_events, store.engine, where, limit=limit, cursor=cursor)
    except BadCursorError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    return EventPageOut(
        events=[EventOut.of(row) for row in page.events], next_cursor=page.next_cursor
    )


@router.get("/{event_id}", summary="One event, with its scores over time")
async def event(event_id: EventId, runtime: RuntimeDep) -> EventDetail:
    return EventDetail.of(await _event(event_store(runtime), event_id))


@router.get(
    "/{event_id}/audio",
    summary="The event's audio as FLAC, at the model's sample rate",
    response_class=FileResponse,
    responses={200: {"content": {"audio/flac": {}}}},
)
async def event_audio(event_id: EventId, runtime: RuntimeDep) -> FileResponse:
    row = await _event(event_store(runtime), event_id)
    path = FilePath(row.evidence_path) if row.evidence_path else None
    if row.kind != "audio" or path is None or not path.is_file():
        raise HTTPException(
            status_code=404,
            detail=f"event {event_id!r} has no audio kept (a sensor event, a normal clip not "
            "sampled, or evicted by the evidence quota)",
        )
    return FileResponse(path, media_type="audio/flac", filename=f"{event_id}.flac")


@router.put("/{event_id}/label", summary="Label the event: 'anomaly' (confirmed) or 'normal'")
async def label_event(event_id: EventId, body: LabelIn, runtime: RuntimeDep) -> EventOut:
    store = event_store(runtime)
    row = await asyncio.to_thread(store.label, event_id, body.label, note=body.note, by=body.by)
    if row is None:
        raise HTTPException(status_code=404, detail=f"no event {event_id!r}")
    return EventOut.of(row)
