"""docker-compose.yml against the Compose Specification's schema, and against the files it uses."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from service.config import Settings
from service.mqtt.settings import MqttSettings
from tests.deployment.stack_files import COMPOSE_FILE, GRAFANA_DIR, PROMETHEUS_CONFIG
from tests.realdata import PROJECT_ROOT

SCHEMA_FILE = Path(__file__).parent / "compose_spec.json"


def _compose() -> dict[str, Any]:
    document = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def _with_defaults(value: str) -> str:
    """The value compose uses when no variable is set: `${NAME:-default}` becomes `default`."""
    return re.sub(r"\$\{\w+:-([^}]*)\}", r"\1", value)


def _bind_mounts(service: dict[str, Any]) -> dict[str, str]:
    """container path -> host path of the service's bind mounts (named volumes left out)."""
    mounts: dict[str, str] = {}
    for volume in service.get("volumes", []):
        source, target = _with_defaults(volume).split(":")[:2]
        if source.startswith((".", "/")):
            mounts[target] = source
    return mounts


def test_compose_file_follows_the_compose_specification() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)
    errors = [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}"
        for error in validator.iter_errors(_compose())
    ]
    assert errors == []


def test_schema_rejects_what_compose_would() -> None:
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))
    broken = _compose()
    broken["services"]["auscult"]["healthcheck"] = {"test": ["CMD"], "interval": 15}
    assert not jsonschema.Draft7Validator(schema).is_valid(broken)


def test_the_stack_has_the_service_prometheus_and_grafana() -> None:
    services = _compose()["services"]
    always = {name for name, service in services.items() if "profiles" not in service}
    assert always == {"auscult", "prometheus", "grafana"}
    # The MQTT bridge and its broker start only when asked for.
    assert {name: services[name]["profiles"] for name in set(services) - always} == {
        "mosquitto": ["mqtt"],
        "bridge": ["mqtt"],
    }


def test_prometheus_scrapes_the_mqtt_bridge_where_it_serves_metrics() -> None:
    services = _compose()["services"]
    bridge = services["bridge"]
    assert bridge["image"] == services["auscult"]["image"]
    assert bridge["entrypoint"] == ["auscult", "bridge", "mqtt"]
    environment = bridge["environment"]
    assert _with_defaults(environment["AUSCULT_MQTT_HOST"]) == "mosquitto"
    port = environment["AUSCULT_MQTT_METRICS_PORT"]
    assert environment["AUSCULT_MQTT_METRICS_HOST"] == "0.0.0.0"
    assert f":{port}/metrics" in bridge["healthcheck"]["test"][-1]
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "auscult-mqtt-bridge"]
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["bridge"]
    assert str(discovery["port"]) == port
    # The bridge's settings are the ones it reads.
    names = {f"AUSCULT_MQTT_{field.upper()}" for field in MqttSettings.model_fields}
    assert {k for k in environment if k.startswith("AUSCULT_MQTT_")} <= names


def test_bind_mounted_files_exist() -> None:
    for name, service in _compose()["services"].items():
        for source in _bind_mounts(service).values():
            if source == "./models":
                continue  # the operator's bundles; the repository may ship none
            assert (PROJECT_ROOT / source).exists(), f"{name} mounts missing {source}"


def test_service_builds_from_the_service_dockerfile() -> None:
    build = _compose()["services"]["auscult"]["build"]
    assert (PROJECT_ROOT / build["context"] / build["dockerfile"]).is_file()


def test_prometheus_reads_the_tested_config_and_scrapes_the_service() -> None:
    services = _compose()["services"]
    prometheus = services["prometheus"]
    config_dir = _bind_mounts(prometheus)["/etc/prometheus"]
    assert (PROJECT_ROOT / config_dir).resolve() == PROMETHEUS_CONFIG.parent.resolve()
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    config = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    (job,) = [job for job in config["scrape_configs"] if job["job_name"] == "auscult"]
    (discovery,) = job["dns_sd_configs"]
    assert discovery["names"] == ["auscult"]
    command = services["auscult"]["command"]
    assert str(discovery["port"]) == command[command.index("--port") + 1]


def test_grafana_loads_the_provisioned_data_source_and_dashboard() -> None:
    grafana = _compose()["services"]["grafana"]
    mounts = _bind_mounts(grafana)
    provisioning = PROJECT_ROOT / mounts["/etc/grafana/provisioning"]
    assert provisioning.resolve() == (GRAFANA_DIR / "provisioning").resolve()
    providers = yaml.safe_load((provisioning / "dashboards" / "auscult.yml").read_text("utf-8"))
    (provider,) = providers["providers"]
    dashboards_host_dir = mounts[provider["options"]["path"]]
    assert (PROJECT_ROOT / dashboards_host_dir / "auscult.json").is_file()
    home = grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    assert home == provider["options"]["path"] + "/auscult.json"
    sources = yaml.safe_load(
        (provisioning / "datasources" / "prometheus.yml").read_text(encoding="utf-8")
    )
    (source,) = sources["datasources"]
    published = _with_defaults(_compose()["services"]["prometheus"]["ports"][0])
    assert source["url"] == f"http://prometheus:{published.rsplit(':', 1)[1]}"


def test_docker_waits_for_the_drain_and_the_graceful_shutdown() -> None:
    service = _compose()["services"]["auscult"]
    drain = float(_with_defaults(service["environment"]["AUSCULT_DRAIN_SECONDS"]))
    shutdown = Settings.model_fields["shutdown_timeout_seconds"].default
    grace = service["stop_grace_period"]
    assert grace.endswith("s")
    assert float(grace.removesuffix("s")) > drain + shutdown
