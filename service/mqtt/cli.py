"""`auscult bridge mqtt`: load the models as the service does, serve the bridge until SIGTERM or
SIGINT, and expose its metrics on AUSCULT_MQTT_METRICS_PORT."""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
from pathlib import Path

from prometheus_client import start_http_server
from pydantic import ValidationError

from service.config import Settings
from service.events.store import EventStore
from service.logging_setup import LOG_FORMATS, JsonFormatter, LogFormat
from service.metrics import Metrics
from service.mqtt.bridge import MqttBridge
from service.mqtt.settings import MqttSettings
from service.registry import ModelRegistry

logger = logging.getLogger(__name__)


def add_bridge_arguments(parser: argparse.ArgumentParser) -> None:
    bridges = parser.add_subparsers(dest="bridge", required=True, metavar="PROTOCOL")
    mqtt = bridges.add_parser(
        "mqtt",
        help="score sensor frames and PCM audio from an MQTT broker, publish verdicts back "
        "(broker and topics: AUSCULT_MQTT_* variables, see docs/API.md)",
    )
    mqtt.add_argument(
        "--models",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of model bundles (default: AUSCULT_MODELS_DIR, else ./models)",
    )
    mqtt.add_argument(
        "--log-level",
        default="info",
        choices=["critical", "error", "warning", "info", "debug"],
        help="log level",
    )
    mqtt.add_argument(
        "--log-format",
        choices=LOG_FORMATS,
        default=None,
        help="text or json (one object per line, as `auscult serve --log-format json`) "
        "(default: AUSCULT_LOG_FORMAT, else text)",
    )


def _configure_logging(level: str, log_format: LogFormat) -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(
        JsonFormatter()
        if log_format == "json"
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s")
    )
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)


def run_bridge(args: argparse.Namespace) -> int:
    try:
        overrides = {} if args.models is None else {"models_dir": args.models}
        settings = Settings(**overrides)
        mqtt = MqttSettings()
    except ValidationError as exc:
        print(f"auscult bridge mqtt: bad settings: {exc}", file=sys.stderr)
        return 2
    _configure_logging(args.log_level, args.log_format or settings.log_format)
    metrics = Metrics(settings.stations)
    registry = ModelRegistry.configured(settings, metrics)
    registry.refresh()
    served = [f"{m.name} {m.version}" for m in registry.served()]
    logger.info("serving %s from %s", ", ".join(served) or "no model", settings.models_dir)
    if mqtt.metrics_port:
        start_http_server(mqtt.metrics_port, mqtt.metrics_host, registry=metrics.registry)
    # Alarmed stretches go to the service's event store, where operators label them.
    events = EventStore.open(settings, metrics) if settings.events_enabled else None
    try:
        asyncio.run(_serve(MqttBridge(settings, mqtt, registry, metrics, events)))
    finally:
        if events is not None:
            events.close()
    return 0


async def _serve(bridge: MqttBridge) -> None:
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, bridge.stop)
    await bridge.run()
