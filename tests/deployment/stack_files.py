"""Where the deployment files live, and the Prometheus binaries the tests drive for real."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.realdata import PROJECT_ROOT

DOCKER_DIR = PROJECT_ROOT / "docker"
COMPOSE_FILE = PROJECT_ROOT / "docker-compose.yml"
PROMETHEUS_CONFIG = DOCKER_DIR / "prometheus" / "prometheus.yml"
RULE_FILES = sorted((DOCKER_DIR / "prometheus" / "rules").glob("*.yml"))
RULE_TESTS = sorted((Path(__file__).parent / "rule_tests").glob("*.yml"))
GRAFANA_DIR = DOCKER_DIR / "grafana"
DASHBOARD_FILE = GRAFANA_DIR / "dashboards" / "auscult.json"
OPERATIONS_DOC = PROJECT_ROOT / "docs" / "OPERATIONS.md"


def prometheus_tool(name: str) -> str:
    """The path of `prometheus` or `promtool`, or skip: scripts/install-test-tools installs both."""
    path = shutil.which(name)
    if path is None:
        pytest.skip(f"{name} is not installed (run `bash scripts/install-test-tools` as root)")
    return path
