"""`auscult serve`: runs the app on uvicorn, one process or several workers whose metrics are
aggregated through prometheus-client's multiprocess mode."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from uvicorn.supervisors import Multiprocess

from service.config import Settings
from service.http_protocol import connection_cap, guarded_protocol, raise_descriptor_limit
from service.listen_sockets import PortReservation
from service.logging_setup import LOG_FORMATS, log_config
from service.metrics import MULTIPROC_ENV
from service.run_folders import shared_run_folder
from service.usable_cpus import usable_cpus
from service.worker_sync import worker_sync_folder

_APP_FACTORY = "service.server:app_from_environment"

logger = logging.getLogger("uvicorn.error")


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
        default=None,
        help="worker processes; /metrics sums all of them (default: one per CPU this process "
        "may use, after its affinity mask and cgroup CPU quota)",
    )
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="uvicorn and service log level",
    )
    parser.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=None,
        help="text (uvicorn's lines) or json (one object per line, with request ids) "
        "(default: AUSCULT_LOG_FORMAT, else text)",
    )


def uvicorn_options(settings: Settings) -> dict[str, Any]:
    """The uvicorn settings that come from the service's own: request-head deadline and
    connection cap, keepalive, frame cap, no compression, shutdown."""
    return {
        "http": guarded_protocol(settings.header_timeout_seconds, connection_cap()),
        "ws_ping_interval": settings.ws_ping_interval_seconds,
        "ws_ping_timeout": settings.ws_ping_timeout_seconds,
        # The app refuses a frame larger than the stream buffer with a message and 1009;
        # uvicorn's cap (which closes with a bare 1009) only stops absurd ones.
        "ws_max_size": max(4 * settings.ws_buffer_bytes, 16 * 1024 * 1024),
        # PCM audio does not compress: permessage-deflate would only spend CPU on both ends.
        "ws_per_message_deflate": False,
        "timeout_graceful_shutdown": settings.shutdown_timeout_seconds,
    }


@contextmanager
def sigterm_is_a_clean_stop() -> Iterator[None]:
    """uvicorn stops gracefully on SIGTERM, then raises the signal again under the handler it
    found; with the default one the process would die with 143 after a clean drain. Installed
    right before uvicorn takes the signals over, a handler that does nothing lets it end with
    the exit status the server chooses."""
    previous = signal.signal(signal.SIGTERM, _stopped_by_sigterm)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _stopped_by_sigterm(sig: int, frame: FrameType | None) -> None:
    """uvicorn has already shut down when it raises SIGTERM again: nothing is left to do."""


def app_from_environment() -> FastAPI:
    """The app of one worker process, configured from AUSCULT_* variables."""
    from service.app import create_app

    return create_app(Settings())


@contextmanager
def shared_metrics_folder() -> Iterator[str]:
    """A clean PROMETHEUS_MULTIPROC_DIR shared by the workers: the one given (its old .db files
    removed, as prometheus-client requires) or a fresh temporary folder removed afterwards."""
    with shared_run_folder(MULTIPROC_ENV, "auscult-metrics-", "*.db") as folder:
        yield folder


@dataclass(frozen=True)
class WorkerPlan:
    workers: int  # uvicorn worker processes
    threads: int  # scoring threads in each


def plan_workers(cpus: int, workers: int | None, threads: int | None) -> WorkerPlan:
    """One worker per usable CPU unless `workers` is given; each gets its share of the CPUs as
    scoring threads unless `threads` is given. With a worker per core that is one thread each:
    processes do not share a GIL, so one busy scoring thread per core already keeps every core
    at work, and the worker's event loop (HTTP parsing, JSON) runs beside it. More threads in
    a process only contend for its GIL. ONNX Runtime keeps one intra-op thread per model
    (AUSCULT_ONNX_THREADS): a block batch is too small to gain from splitting, and intra-op
    threads spin while they wait, stealing the core of another worker."""
    chosen = workers if workers is not None else cpus
    return WorkerPlan(chosen, threads if threads is not None else max(1, cpus // chosen))


def run_server(args: argparse.Namespace) -> int:
    """Serve until interrupted; the exit status says whether the server could start."""
    if args.workers is not None and args.workers < 1:
        print(f"auscult serve: --workers must be at least 1, got {args.workers}", file=sys.stderr)
        return 2
    try:
        settings = Settings(**({"models_dir": args.models} if args.models else {}))
    except ValidationError as exc:
        print(f"auscult serve: invalid AUSCULT_* settings:\n{exc}", file=sys.stderr)
        return 2
    explicit_threads = "worker_threads" in settings.model_fields_set
    plan = plan_workers(
        usable_cpus(), args.workers, settings.worker_threads if explicit_threads else None
    )
    settings = settings.model_copy(update={"worker_threads": plan.threads})
    if not settings.models_dir.is_dir():
        print(
            f"auscult serve: the models folder {settings.models_dir} does not exist "
            "(pass --models DIR or set AUSCULT_MODELS_DIR)",
            file=sys.stderr,
        )
        return 2
    # Workers inherit the raised limit; the connection cap is sized from it.
    raise_descriptor_limit()
    options = {
        "host": args.host,
        "port": args.port,
        "log_level": args.log_level,
        "log_config": log_config(args.log_level, args.log_format or settings.log_format),
        **uvicorn_options(settings),
    }
    if plan.workers == 1:
        from service.app import create_app

        config = uvicorn.Config(create_app(settings), **options)
        server = uvicorn.Server(config)
        with sigterm_is_a_clean_stop():
            server.run()
        return 0 if server.started else 3
    # Workers are fresh processes: they read the settings from the environment.
    os.environ["AUSCULT_MODELS_DIR"] = str(settings.models_dir.resolve())
    os.environ["AUSCULT_WORKER_THREADS"] = str(plan.threads)
    config = uvicorn.Config(_APP_FACTORY, factory=True, workers=plan.workers, **options)
    try:
        port = PortReservation(args.host, args.port)
    except OSError as exc:
        print(f"auscult serve: cannot listen on {args.host}:{args.port}: {exc}", file=sys.stderr)
        return 3
    with port:
        host, bound = port.getsockname()[:2]
        logger.info("Auscult on http://%s:%d with %d workers", host, bound, plan.workers)
        # One folder for the metrics of all workers, one through which a reload reaches them.
        with shared_metrics_folder(), worker_sync_folder():
            # Each worker gets its own listening socket from the reservation.
            Multiprocess(config, sockets=[port]).run()
    return 0
