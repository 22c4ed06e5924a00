"""The operators' review page, `/ui/review`: unlabelled alarms newest first, each with its
audio, its scores over time and its band errors, and buttons that label it through
`PUT /v1/events/{id}/label`. Rendered on the server (service/templates/review.html); its one
inline script is allowed by a per-response nonce and nothing loads from elsewhere."""

from __future__ import annotations

import asyncio
import secrets
from dataclasses import dataclass
from html import escape as html_escape
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, FileSystemLoader, select_autoescape

from service.api.auth import key_accepted, presented_key
from service.api.cookie_auth import KEY_COOKIE
from service.api.deps import RuntimeDep
from service.api.routes.events import event_store
from service.events.queries import MAX_PAGE, BadCursorError, EventFilter, list_events
from service.events.schema import EventRow
from service.events.svg import HEIGHT, WIDTH, Bar, ScoresChart, band_bars, scores_chart

TEMPLATES = Path(__file__).resolve().parents[2] / "templates"
_templates = Environment(
    loader=FileSystemLoader(TEMPLATES), autoescape=select_autoescape(["html"]), auto_reload=False
)

router = APIRouter(prefix="/ui", tags=["review"])


@dataclass(frozen=True)
class _Card:
    row: EventRow
    audio: bool
    scores: ScoresChart | None
    bands: list[Bar]


def _card(row: EventRow) -> _Card:
    detail = row.detail
    threshold = detail.get("block_threshold", detail.get("step_threshold", row.threshold))
    blocks = detail.get("blocks")
    if blocks is None and "scores" in detail:
        # Sensor steps as one-step "blocks", so one chart draws both kinds.
        first = detail.get("first_step", 0)
        blocks = [[first + i, first + i + 1, s] for i, s in enumerate(detail["scores"])]
    return _Card(
        row=row,
        audio=row.kind == "audio" and row.evidence_path is not None,
        scores=scores_chart(blocks or [], threshold),
        bands=band_bars(detail.get("band_error", []), detail.get("band_hz", [])),
    )


def _headers(nonce: str) -> dict[str, str]:
    return {
        "Cache-Control": "no-store",
        "Content-Security-Policy": (
            "default-src 'none'; media-src 'self'; connect-src 'self'; "
            f"style-src 'unsafe-inline'; script-src 'nonce-{nonce}'; form-action 'self'"
        ),
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
    }


def _refused() -> HTMLResponse:
    return HTMLResponse(
        "<!doctype html><title>Auscult review: key needed</title><p>This service asks for an "
        "API key. Open <code>/ui/review?api_key=&lt;key&gt;</code> once: the key is then kept "
        "in a cookie for this site.</p>",
        status_code=401,
        headers={"WWW-Authenticate": "Bearer"},
    )


# A page for people, not an API: out of the OpenAPI schema and its clients.
@router.get("/review", response_class=HTMLResponse, include_in_schema=False)
async def review(
    request: Request,
    runtime: RuntimeDep,
    model: Annotated[str | None, Query(max_length=128)] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 50,
    cursor: Annotated[str | None, Query(max_length=200)] = None,
    api_key: Annotated[
        str | None, Query(max_length=512, description="set once: kept in a cookie")
    ] = None,
) -> Response:
    keys = runtime.settings.api_keys
    if api_key is not None:
        if not key_accepted(keys, api_key):
            return _refused()
        # The key leaves the address bar (and history) at once; the cookie carries it.
        query = request.url.remove_query_params("api_key").query
        response = RedirectResponse(f"review?{query}" if query else "review", status_code=303)
        response.set_cookie(
            KEY_COOKIE,
            api_key,
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
            path="/",
        )
        return response
    presented = presented_key(request.headers) or request.cookies.get(KEY_COOKIE)
    if not key_accepted(keys, presented):
        return _refused()
    store = event_store(runtime)
    where = EventFilter(model=model, verdict="anomaly", label="none")
    try:
        page = await asyncio.to_thread(list_events, store.engine, where, limit=limit, cursor=cursor)
    except BadCursorError as exc:
        return HTMLResponse(f"bad cursor: {html_escape(str(exc))}", status_code=422)
    nonce = secrets.token_urlsafe(16)
    html = _templates.get_template("review.html").render(
        events=[_card(row) for row in page.events],
        next_cursor=page.next_cursor,
        model=model,
        nonce=nonce,
        width=WIDTH,
        height=HEIGHT,
    )
    return HTMLResponse(html, headers=_headers(nonce))
