"""promtool checks the Prometheus configuration and rules, and runs the rules' unit tests."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.deployment.promql_names import load_rules
from tests.deployment.stack_files import (
    OPERATIONS_DOC,
    PROMETHEUS_CONFIG,
    RULE_FILES,
    RULE_TESTS,
    prometheus_tool,
)


def _promtool(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [prometheus_tool("promtool"), *args], capture_output=True, text=True, timeout=60
    )


def _alerting_rules() -> list[dict[str, Any]]:
    return [rule for rule_file in RULE_FILES for rule in load_rules(rule_file) if "alert" in rule]


def test_config_and_its_rule_files_are_valid() -> None:
    result = _promtool("check", "config", str(PROMETHEUS_CONFIG))
    assert result.returncode == 0, result.stdout + result.stderr
    # The config's rule_files glob must find the shipped rule files, not nothing.
    assert f"{len(RULE_FILES)} rule files found" in result.stdout


def test_rule_files_are_valid() -> None:
    result = _promtool("check", "rules", *map(str, RULE_FILES))
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("rule_test", RULE_TESTS, ids=lambda path: path.stem)
def test_rule_unit_tests_pass(rule_test: Path) -> None:
    result = _promtool("test", "rules", str(rule_test))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_unit_tests_load_the_shipped_rule_files() -> None:
    for rule_test in RULE_TESTS:
        document = yaml.safe_load(rule_test.read_text(encoding="utf-8"))
        loaded = {(rule_test.parent / path).resolve() for path in document["rule_files"]}
        assert loaded == {path.resolve() for path in RULE_FILES}, rule_test.name


def test_every_alert_is_tested_firing_and_quiet() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for rule_test in RULE_TESTS:
        document = yaml.safe_load(rule_test.read_text(encoding="utf-8"))
        for case in document["tests"]:
            for check in case.get("alert_rule_test", []):
                (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    alerts = {rule["alert"] for rule in _alerting_rules()}
    assert alerts, "no alerting rules found"
    assert alerts - firing == set(), "alerts never shown to fire"
    assert alerts - quiet == set(), "alerts never shown to stay quiet"


def test_every_alert_has_a_runbook_entry() -> None:
    headings = {
        line.lstrip("#").strip()
        for line in OPERATIONS_DOC.read_text(encoding="utf-8").splitlines()
        if line.startswith("### ")
    }
    for rule in _alerting_rules():
        assert rule["alert"] in headings, f"no runbook heading for {rule['alert']}"
        anchor = rule["alert"].lower()
        assert rule["annotations"]["runbook"] == f"docs/OPERATIONS.md#{anchor}"
