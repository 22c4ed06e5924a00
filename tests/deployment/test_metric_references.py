"""Every metric the dashboard and the rules read is one the live service exports (or one the rules
record, or Prometheus makes itself); the rule unit tests feed the real names too."""

from __future__ import annotations

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.deployment.processes import RunningProcess
from tests.deployment.promql_names import (
    dashboard_expressions,
    metric_names,
    recorded_names,
    rule_expressions,
)
from tests.deployment.stack_files import DASHBOARD_FILE, RULE_FILES, RULE_TESTS

# Series Prometheus itself writes: scrape health and alert states.
PROMETHEUS_SERIES = {"up", "ALERTS"}
_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "gauge": ("",),
}


def exported_names(live_service: RunningProcess) -> set[str]:
    """Sample names /metrics declares, whether or not a labelled series has a value yet."""
    response = httpx.get(live_service.base_url + "/metrics", timeout=10.0)
    response.raise_for_status()
    names: set[str] = set()
    for family in text_string_to_metric_families(response.text):
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names


def test_service_exports_the_architecture_metrics(live_service: RunningProcess) -> None:
    assert {
        "auscult_scored_total",
        "auscult_anomalies_total",
        "auscult_http_request_duration_seconds_bucket",
        "auscult_model_info",
        "auscult_model_reloads_total",
    } <= exported_names(live_service)


def test_dashboard_and_rules_read_only_exported_metrics(live_service: RunningProcess) -> None:
    allowed = exported_names(live_service) | PROMETHEUS_SERIES
    allowed |= set().union(*(recorded_names(rule_file) for rule_file in RULE_FILES))
    references = [*dashboard_expressions(DASHBOARD_FILE)]
    for rule_file in RULE_FILES:
        references += [(f"rule {name}", expr) for name, expr in rule_expressions(rule_file)]
    unknown = {
        f"{where}: {name}" for where, expr in references for name in metric_names(expr) - allowed
    }
    assert unknown == set()


def test_rule_unit_tests_feed_exported_metrics(live_service: RunningProcess) -> None:
    allowed = exported_names(live_service) | PROMETHEUS_SERIES
    for rule_test in RULE_TESTS:
        document = yaml.safe_load(rule_test.read_text(encoding="utf-8"))
        for case in document["tests"]:
            for series in case["input_series"]:
                (name,) = metric_names(series["series"])
                assert name in allowed, f"{rule_test.name} feeds {name}, which is not exported"
