"""The metric names a PromQL expression reads, from Prometheus rules and Grafana dashboards."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import yaml

# Grafana's interval variables stand where PromQL wants a duration; any other variable is a
# label value picked in the dashboard, used inside a regex matcher.
_GRAFANA_DURATION = re.compile(r"\$(?:__rate_interval|__interval|__range)\b|\$\{__\w+\}")
_GRAFANA_VARIABLE = re.compile(r"\$\{\w+(?::\w+)?\}|\$\w+")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?P<selector>[^,()]+?)\s*,\s*\w+\s*\)\s*$")


def metric_names(expr: str) -> set[str]:
    """Every metric name the expression selects; a selector without a literal name is an error."""
    names: set[str] = set()

    def visit(node: promql_parser.Expr) -> None:
        if not isinstance(node, promql_parser.VectorSelector):
            return
        if node.name is not None:
            names.add(node.name)
            return
        literal = [
            m.value
            for m in node.matchers.matchers
            if m.name == "__name__" and m.op == promql_parser.MatchOp.Equal
        ]
        if not literal:
            raise ValueError(f"selector {node} in {expr!r} names no metric literally")
        names.update(literal)

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def grafana_to_promql(expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced, so PromQL's parser takes it."""
    return _GRAFANA_VARIABLE.sub(".*", _GRAFANA_DURATION.sub("5m", expr))


def load_rules(rule_file: Path) -> list[dict[str, Any]]:
    """Every recording and alerting rule of a Prometheus rule file, across its groups."""
    document = yaml.safe_load(rule_file.read_text(encoding="utf-8"))
    return [rule for group in document["groups"] for rule in group["rules"]]


def rule_expressions(rule_file: Path) -> Iterator[tuple[str, str]]:
    """(rule name, expression) for every recording and alerting rule in a rule file."""
    for rule in load_rules(rule_file):
        yield rule.get("record") or rule["alert"], rule["expr"]


def recorded_names(rule_file: Path) -> set[str]:
    return {rule["record"] for rule in load_rules(rule_file) if "record" in rule}


def dashboard_expressions(dashboard_file: Path) -> Iterator[tuple[str, str]]:
    """(where, PromQL) for every panel query and query variable of a Grafana dashboard."""
    dashboard = json.loads(dashboard_file.read_text(encoding="utf-8"))
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield f"panel {panel['title']!r}", grafana_to_promql(target["expr"])
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]
        if isinstance(query, dict):
            query = query["query"]
        match = _LABEL_VALUES.match(query)
        if match is None:
            raise ValueError(f"variable {variable['name']!r}: cannot read query {query!r}")
        yield f"variable {variable['name']!r}", match["selector"]
