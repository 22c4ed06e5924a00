"""The provisioned Grafana dashboard: well-formed, on the data-source variable, and showing what
operators need (traffic, latency, anomaly rate, score ratios, WebSockets, model versions)."""

from __future__ import annotations

import json
from typing import Any

from tests.deployment.promql_names import dashboard_expressions, metric_names
from tests.deployment.stack_files import DASHBOARD_FILE


def _dashboard() -> dict[str, Any]:
    document = json.loads(DASHBOARD_FILE.read_text(encoding="utf-8"))
    assert isinstance(document, dict)
    return document


def test_panels_have_queries_on_the_data_source_variable() -> None:
    panels = [panel for panel in _dashboard()["panels"] if panel["type"] != "row"]
    assert len({panel["id"] for panel in _dashboard()["panels"]}) == len(_dashboard()["panels"])
    for panel in panels:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in [panel, *panel["targets"]]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_every_expression_parses_as_promql() -> None:
    expressions = list(dashboard_expressions(DASHBOARD_FILE))
    assert len(expressions) > 10
    for where, expr in expressions:
        assert metric_names(expr), f"{where}: {expr!r} reads no metric"


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    used = set().union(*(metric_names(expr) for _, expr in dashboard_expressions(DASHBOARD_FILE)))
    assert {
        "auscult_http_requests_total",  # request rate
        "auscult_http_request_duration_seconds_bucket",  # latency percentiles
        "station_model:auscult_anomaly_rate:ratio_rate5m",  # the tested recording rule
        "auscult_score_ratio_bucket",  # score / threshold distribution
        "auscult_websocket_connections",
        "auscult_model_info",  # model versions in service
    } <= used
