"""API keys: presented as `Authorization: Bearer <key>` or `X-API-Key: <key>` (or, for browser
WebSockets that cannot set headers, an `api_key` query parameter)."""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence

from fastapi.security import APIKeyHeader, HTTPBearer
from pydantic import SecretStr

# The two HTTP schemes, as OpenAPI declares them; either one is enough. They only read the
# header (auto_error=False): whether a key is needed and accepted is `key_accepted`'s call.
bearer_key = HTTPBearer(auto_error=False, description="an API key as `Authorization: Bearer <key>`")
header_key = APIKeyHeader(
    name="X-API-Key", auto_error=False, description="an API key as `X-API-Key: <key>`"
)


def presented_key(headers: Mapping[str, str], query: Mapping[str, str] | None = None) -> str | None:
    """The key a client sent, if any; headers win over the query parameter."""
    authorization = headers.get("authorization", "")
    scheme, _, credentials = authorization.partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    header_key = headers.get("x-api-key")
    if header_key:
        return header_key
    if query is not None:
        return query.get("api_key") or None
    return None


def key_accepted(configured: Sequence[SecretStr], presented: str | None) -> bool:
    """True when no keys are configured (authentication off) or `presented` is one of them.
    Every configured key is compared in constant time, so timing does not reveal which is close."""
    if not configured:
        return True
    if presented is None:
        return False
    candidate = presented.encode("utf-8")
    matched = False
    for key in configured:
        matched |= hmac.compare_digest(candidate, key.get_secret_value().encode("utf-8"))
    return matched
