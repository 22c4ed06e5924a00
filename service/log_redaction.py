"""A logging filter that keeps secrets sent in query strings (`?api_key=`, tokens) out of the
logs: uvicorn writes the path with its query string in every access line and WebSocket line."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

REDACTED = "***"
_SECRET_NAME = re.compile(r"key|token|secret|passw|auth|sig", re.IGNORECASE)


def redact_query(text: str) -> str:
    """`text` with the value of every secret-looking query parameter replaced by ***."""
    path, mark, query = text.partition("?")
    if not mark:
        return text
    fields = []
    for field in query.split("&"):
        name, equals, _ = field.partition("=")
        # Names are matched as the app decodes them, so `api%5Fkey` is caught as well.
        if equals and _SECRET_NAME.search(unquote_plus(name)):
            field = f"{name}={REDACTED}"
        fields.append(field)
    return f"{path}?{'&'.join(fields)}"


class RedactQuerySecrets(logging.Filter):
    """Rewrites the string arguments of a record (where uvicorn puts the path) in place."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and record.args:
            record.args = tuple(
                redact_query(arg) if isinstance(arg, str) else arg for arg in record.args
            )
        elif isinstance(record.msg, str):
            record.msg = redact_query(record.msg)
        return True
