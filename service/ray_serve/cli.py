"""`auscult serve-ray`: the service on Ray Serve, on a local Ray instance started for it or on an
existing cluster (--address). Ray is imported only when the command runs: the `ray` extra."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import Any

from pydantic import ValidationError

from service.config import Settings
from service.ray_serve.settings import RaySettings

# CLI option -> RaySettings field; an option left out keeps the AUSCULT_RAY_* value.
_RAY_OPTIONS = (
    "replicas",
    "max_replicas",
    "target_ongoing_requests",
    "max_ongoing_requests",
    "replica_cpus",
)


def add_serve_ray_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--models",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of model bundles every replica loads: on a multi-node cluster, a folder "
        "shared by all nodes (default: AUSCULT_MODELS_DIR, else ./models)",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address of Ray's HTTP proxy")
    parser.add_argument("--port", type=int, default=8000, help="port of Ray's HTTP proxy")
    parser.add_argument(
        "--address",
        default=None,
        help="Ray cluster to deploy on (e.g. ray://head:10001 or auto); default: start a local "
        "Ray instance for this command and stop it on exit",
    )
    parser.add_argument("--replicas", type=int, default=None, help="AUSCULT_RAY_REPLICAS")
    parser.add_argument(
        "--max-replicas", type=int, default=None, help="AUSCULT_RAY_MAX_REPLICAS (autoscaling)"
    )
    parser.add_argument(
        "--target-ongoing-requests",
        type=float,
        default=None,
        help="AUSCULT_RAY_TARGET_ONGOING_REQUESTS",
    )
    parser.add_argument(
        "--max-ongoing-requests", type=int, default=None, help="AUSCULT_RAY_MAX_ONGOING_REQUESTS"
    )
    parser.add_argument("--replica-cpus", type=float, default=None, help="AUSCULT_RAY_REPLICA_CPUS")


def _settings(args: argparse.Namespace) -> tuple[Settings, RaySettings]:
    settings = Settings(**({"models_dir": args.models} if args.models else {}))
    given: dict[str, Any] = {
        name: getattr(args, name) for name in _RAY_OPTIONS if getattr(args, name) is not None
    }
    return settings, RaySettings(**given)


def _wait_for_a_stop_signal() -> None:
    stop = threading.Event()

    def handle(sig: int, frame: FrameType | None) -> None:
        stop.set()

    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, handle)
    stop.wait()


def run_serve_ray(args: argparse.Namespace) -> int:
    """Deploy, serve until SIGINT or SIGTERM, then take the application down."""
    try:
        settings, ray_settings = _settings(args)
    except ValidationError as exc:
        print(f"auscult serve-ray: invalid settings:\n{exc}", file=sys.stderr)
        return 2
    if not settings.models_dir.is_dir():
        print(
            f"auscult serve-ray: the models folder {settings.models_dir} does not exist "
            "(pass --models DIR or set AUSCULT_MODELS_DIR)",
            file=sys.stderr,
        )
        return 2
    try:
        import ray

        from service.ray_serve.runner import deploy, shutdown_serve, undeploy
    except ImportError as exc:
        print(
            f"auscult serve-ray: needs the 'ray' extra (pip install 'auscult[ray]'): {exc}",
            file=sys.stderr,
        )
        return 2
    local = args.address is None
    ray.init(address=args.address, include_dashboard=False if local else None)
    try:
        deploy(settings, ray_settings, host=args.host, port=args.port)
        print(f"auscult serve-ray: serving on http://{args.host}:{args.port}", flush=True)
        _wait_for_a_stop_signal()
        undeploy(ray_settings)
    finally:
        if local:
            shutdown_serve()
        ray.shutdown()
    return 0
