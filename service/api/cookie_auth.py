"""API keys for a browser: the review page takes the key once (`/ui/review?api_key=...`) and
keeps it in an HttpOnly, SameSite=Strict cookie, which the page's audio and label requests then
carry. Headers still win, so API clients see no difference."""

from __future__ import annotations

from typing import Annotated

from fastapi import HTTPException, Security
from fastapi.security import APIKeyCookie, HTTPAuthorizationCredentials

from service.api.auth import bearer_key, header_key, key_accepted
from service.api.deps import RuntimeDep

KEY_COOKIE = "auscult_api_key"
cookie_key = APIKeyCookie(
    name=KEY_COOKIE,
    auto_error=False,
    description="the API key the review page keeps after `/ui/review?api_key=<key>`",
)


async def require_api_key_or_cookie(
    runtime: RuntimeDep,
    bearer: Annotated[HTTPAuthorizationCredentials | None, Security(bearer_key)],
    x_api_key: Annotated[str | None, Security(header_key)],
    cookie: Annotated[str | None, Security(cookie_key)],
) -> None:
    """401 unless authentication is off or a configured key comes in a header or the cookie."""
    presented = bearer.credentials if bearer is not None else (x_api_key or cookie)
    if not key_accepted(runtime.settings.api_keys, presented):
        raise HTTPException(
            status_code=401,
            detail="a valid API key is required: send 'Authorization: Bearer <key>' or "
            "'X-API-Key: <key>', or open /ui/review?api_key=<key> once in a browser",
            headers={"WWW-Authenticate": "Bearer"},
        )
