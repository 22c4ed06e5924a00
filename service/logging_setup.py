"""How the service logs: uvicorn's logging set-up with the service's own loggers, as text (uvicorn's
lines) or as JSON, one object per line, whose records carry the request they were written for
(its id, route, model, version and station, from `RequestLog`)."""

from __future__ import annotations

import copy
import json
import logging
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from uvicorn.config import LOGGING_CONFIG

LogFormat = Literal["text", "json"]
LOG_FORMATS: tuple[LogFormat, ...] = ("text", "json")
# One record per answered request, written by service/api/request_id.py (JSON format only: in
# text format uvicorn writes its own access line).
ACCESS_LOGGER = "service.access"


@dataclass
class RequestLog:
    """What the log knows of the request being served. One object per request, shared by
    reference, so that what a route learns (the model it served) reaches the access record even
    from a worker thread, which runs in a copy of the request's context."""

    request_id: str
    route: str | None = None
    model: str | None = None
    version: str | None = None
    station: str | None = None


_current_request: ContextVar[RequestLog | None] = ContextVar("auscult_request", default=None)


def current_request() -> RequestLog | None:
    return _current_request.get()


def begin_request(request: RequestLog) -> None:
    """Make `request` the one the current context's records are written for. Never reset: uvicorn
    serves each request in a task of its own, and its traceback of a failed request, logged after
    the app has returned, is still written for it."""
    _current_request.set(request)


def note_model(name: str, version: str) -> None:
    """Record which model and version answer the current request (a no-op outside one)."""
    request = _current_request.get()
    if request is not None:
        request.model, request.version = name, version


_REQUEST_FIELDS = ("request_id", "route", "model", "version", "station")
# Fields a record may carry (`extra=`) that the JSON line writes under their own name.
_EXTRA_FIELDS = ("status", "duration_ms", "method", "path", "client")


class RequestContextFilter(logging.Filter):
    """Copies the current request's fields onto each record that does not set them itself."""

    def filter(self, record: logging.LogRecord) -> bool:
        request = _current_request.get()
        for name in _REQUEST_FIELDS:
            if not hasattr(record, name):
                setattr(record, name, getattr(request, name) if request is not None else None)
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line (a traceback's newlines are escaped): time (UTC,
    ISO 8601), level, logger, message, the request's fields where known, and `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for name in (*_REQUEST_FIELDS, *_EXTRA_FIELDS):
            value = getattr(record, name, None)
            if value is not None:
                entry[name] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        elif record.exc_text:
            entry["exception"] = record.exc_text
        # The standard library's encoder: a line per request is no cost worth a dependency, and
        # `default=str` writes any odd value a library puts in a record instead of failing.
        return json.dumps(entry, default=str)


def log_config(level: str, log_format: LogFormat = "text") -> dict[str, Any]:
    """uvicorn's logging set-up plus the service's own loggers (reloads, refused bundles), so
    every worker process logs them the same way; keys in query strings are never written. In JSON
    format every record is a JSON line and the service writes the access records itself, with the
    request's route, model and duration that uvicorn's access line lacks."""
    config = copy.deepcopy(LOGGING_CONFIG)
    filters = ["redact"]
    config["filters"] = {"redact": {"()": "service.log_redaction.RedactQuerySecrets"}}
    config["loggers"]["service"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    if log_format == "json":
        config["filters"]["request"] = {"()": "service.logging_setup.RequestContextFilter"}
        filters.append("request")
        json_formatter = {"()": "service.logging_setup.JsonFormatter"}
        config["formatters"] = {"default": json_formatter, "access": json_formatter}
        # Without a handler uvicorn writes no access line of its own (it checks hasHandlers).
        config["loggers"]["uvicorn.access"]["handlers"] = []
    else:
        config["loggers"][ACCESS_LOGGER] = {"level": "WARNING"}
    for handler in config["handlers"].values():
        handler["filters"] = filters
    return config
