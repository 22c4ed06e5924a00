"""`auscult serve`: runs the app on uvicorn, one process or several workers whose metrics are
aggregated through prometheus-client's multiprocess mode."""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from uvicorn.config import LOGGING_CONFIG

from service.config import Settings
from service.metrics import MULTIPROC_ENV

_APP_FACTORY = "service.server:app_from_environment"


def add_serve_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of model bundles (default: AUSCULT_MODELS_DIR, else ./models)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000, help="port to listen on")
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes; /metrics sums all of them (default: 1)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn and service log level",
    )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn settings that come from the service's own: keepalive, frame cap, no
    compression, shutdown."""
    return {
        "ws_ping_interval": settings.ws_ping_interval_seconds,
        "ws_ping_timeout": settings.ws_ping_timeout_seconds,
        # The app refuses a frame larger than the stream buffer with a message and 1009;
        # uvicorn's cap (which closes with a bare 1009) only stops absurd ones.
        "ws_max_size": max(4 * settings.ws_buffer_bytes, 16 * 1024 * 1024),
        # PCM audio does not compress: permessage-deflate would only spend CPU on both ends.
        "ws_per_message_deflate": False,
        "timeout_graceful_shutdown": settings.shutdown_timeout_seconds,
    }


def _log_config(level: str) -> dict[str, Any]:
    """uvicorn's logging set-up plus the service's own loggers (reloads, refused bundles), so
    every worker process logs them the same way."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["loggers"]["service"] = {
        "handlers": ["default"],
        "level": level.upper(),
        "propagate": False,
    }
    return config


def app_from_environment() -> FastAPI:
    """The app of one worker process, configured from AUSCULT_* variables."""
    from service.app import create_app

    return create_app(Settings())


@contextmanager
def shared_metrics_folder() -> Iterator[str]:
    """A clean PROMETHEUS_MULTIPROC_DIR shared by the workers: the one given (its old .db files
    removed, as prometheus-client requires) or a fresh temporary folder removed afterwards."""
    given = os.environ.get(MULTIPROC_ENV)
    if given:
        folder = Path(given)
        folder.mkdir(parents=True, exist_ok=True)
        for stale in folder.glob("*.db"):
            stale.unlink()
        yield str(folder)
        return
    folder = Path(tempfile.mkdtemp(prefix="auscult-metrics-"))
    os.environ[MULTIPROC_ENV] = str(folder)
    try:
        yield str(folder)
    finally:
        del os.environ[MULTIPROC_ENV]
        shutil.rmtree(folder, ignore_errors=True)


def run_server(args: argparse.Namespace) -> int:
    """Serve until interrupted; the exit status says whether the server could start."""
    if args.workers < 1:
        print(f"auscult serve: --workers must be at least 1, got {args.workers}", file=sys.stderr)
        return 2
    try:
        settings = Settings(**({"models_dir": args.models} if args.models else {}))
    except ValidationError as exc:
        print(f"auscult serve: invalid AUSCULT_* settings:\n{exc}", file=sys.stderr)
        return 2
    if not settings.models_dir.is_dir():
        print(
            f"auscult serve: the models folder {settings.models_dir} does not exist "
            "(pass --models DIR or set AUSCULT_MODELS_DIR)",
            file=sys.stderr,
        )
        return 2
    options = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "log_config": _log_config(args.log_level),
        **uvicorn_options(settings),
    }
    if args.workers == 1:
        from service.app import create_app

        config = uvicorn.Config(create_app(settings), **options)
        server = uvicorn.Server(config)
        server.run()
        return 0 if server.started else 3
    # Workers are fresh processes: they read the settings from the environment.
    os.environ["AUSCULT_MODELS_DIR"] = str(settings.models_dir.resolve())
    with shared_metrics_folder():
        uvicorn.run(_APP_FACTORY, factory=True, workers=args.workers, **options)
    return 0
