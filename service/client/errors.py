"""What the client raises: an HTTP error answer, or a stream the server ended with an error."""

from __future__ import annotations


class AuscultError(Exception):
    """The server answered an HTTP error; `detail` is its explanation."""

    def __init__(self, status_code: int, detail: str, retry_after: int | None = None) -> None:
        super().__init__(f"HTTP {status_code}: {detail}")
        self.status_code = status_code
        self.detail = detail
        self.retry_after = retry_after  # seconds, on 503


class StreamClosedError(Exception):
    """The server ended a stream with an error message (`code`, docs/API.md), or the
    connection closed before the stream's end."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message
