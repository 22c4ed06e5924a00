"""A real Prometheus scrapes the real service while clips are scored, and its recording rule
reports each station's anomaly rate; the alert on it turns pending for the anomalous station."""

from __future__ import annotations

import io
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
import soundfile as sf
import yaml

from tests.bundle_factory import machine_sound
from tests.deployment.conftest import MODEL
from tests.deployment.processes import RunningProcess, free_port, running_server, wait_until
from tests.deployment.stack_files import RULE_FILES, prometheus_tool

RATE_RULE = "station_model:auscult_anomaly_rate:ratio_rate5m"
ROUNDS = 16
# rate() extrapolates each counter from its first sample in the window, so the recorded ratio
# can differ from the exact share of anomalous verdicts by a few hundredths.
TOLERANCE = 0.05


def _wav(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, 16000, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _score(client: httpx.Client, station: str, clip: bytes) -> bool:
    response = client.post(
        f"/v1/models/{MODEL}/score",
        params={"station": station},
        content=clip,
        headers={"Content-Type": "audio/wav"},
    )
    assert response.status_code == 200, response.text
    anomaly: bool = response.json()["anomaly"]
    return anomaly


def _query(prometheus: RunningProcess, expr: str) -> list[dict[str, Any]]:
    response = httpx.get(prometheus.base_url + "/api/v1/query", params={"query": expr}, timeout=5.0)
    response.raise_for_status()
    result: list[dict[str, Any]] = response.json()["data"]["result"]
    return result


def _by_station(prometheus: RunningProcess, expr: str) -> dict[str, float]:
    return {
        sample["metric"]["station"]: float(sample["value"][1])
        for sample in _query(prometheus, expr)
    }


@pytest.fixture
def prometheus(live_service: RunningProcess, tmp_path: Path) -> Iterator[RunningProcess]:
    """Prometheus scraping the live service every second with the shipped rule files."""
    binary = prometheus_tool("prometheus")
    target = live_service.base_url.removeprefix("http://")
    config = tmp_path / "prometheus.yml"
    config.write_text(
        yaml.safe_dump(
            {
                "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                "rule_files": [str(path) for path in RULE_FILES],
                "scrape_configs": [
                    {"job_name": "auscult", "static_configs": [{"targets": [target]}]}
                ],
            }
        ),
        encoding="utf-8",
    )
    port = free_port()
    command = [
        binary,
        f"--config.file={config}",
        f"--storage.tsdb.path={tmp_path / 'data'}",
        f"--web.listen-address=127.0.0.1:{port}",
        "--log.level=warn",
    ]
    with running_server(
        command, port=port, ready_path="/-/ready", log_file=tmp_path / "prometheus.log"
    ) as running:
        # Prometheus applies discovered targets every 5 s: clips sent before the first scrape
        # would all land in the first sample, and a rate needs them spread over several.
        wait_until(
            lambda: _query(running, 'up{job="auscult"} == 1') != [],
            timeout=30,
            what="Prometheus's first successful scrape of the service",
        )
        yield running


def test_recording_rule_reports_each_stations_anomaly_rate(
    live_service: RunningProcess, prometheus: RunningProcess
) -> None:
    normal = [_wav(machine_sound(2.0, seed=100 + i)) for i in range(4)]
    anomalous = [_wav(machine_sound(2.0, seed=200 + i, anomalous=True)) for i in range(4)]
    verdicts: dict[str, list[bool]] = {"press-1": [], "press-2": [], "other": []}
    with httpx.Client(base_url=live_service.base_url, timeout=30.0) as client:
        # Spread over many scrapes: half of press-1's clips are anomalous, none of press-2's;
        # a station missing from the allow-list is counted as `other`.
        for round_ in range(ROUNDS):
            verdicts["press-1"].append(_score(client, "press-1", normal[round_ % 4]))
            verdicts["press-1"].append(_score(client, "press-1", anomalous[round_ % 4]))
            verdicts["press-2"].append(_score(client, "press-2", normal[(round_ + 1) % 4]))
            verdicts["other"].append(_score(client, "press-99", normal[(round_ + 2) % 4]))
            time.sleep(0.25)
    expected = {station: sum(flags) / len(flags) for station, flags in verdicts.items()}
    # The service must tell the clips apart, or this test would prove nothing about the rule.
    assert expected["press-1"] >= 0.4
    assert expected["press-2"] <= 0.1

    sent = {station: float(len(flags)) for station, flags in verdicts.items()}
    wait_until(
        lambda: _by_station(prometheus, "sum by (station) (auscult_scored_total)") == sent,
        timeout=15,
        what=f"Prometheus to scrape the final counts {sent}",
    )

    def rule_matches() -> bool:
        recorded = _by_station(prometheus, f'{RATE_RULE}{{model="{MODEL}"}}')
        return recorded.keys() == expected.keys() and all(
            abs(recorded[station] - rate) <= TOLERANCE for station, rate in expected.items()
        )

    try:
        wait_until(rule_matches, timeout=15, what=f"{RATE_RULE} to reach {expected}")
    except TimeoutError as exc:
        seen = _by_station(prometheus, RATE_RULE)
        raise AssertionError(f"{exc}; Prometheus has {seen}") from exc

    def pending_alerts() -> set[str]:
        response = httpx.get(prometheus.base_url + "/api/v1/alerts", timeout=5.0)
        return {
            alert["labels"]["station"]
            for alert in response.json()["data"]["alerts"]
            if alert["labels"]["alertname"] == "AuscultAnomalyRateHigh"
        }

    # Above the 20 % level with enough volume: pending (it fires after 10 minutes).
    wait_until(
        lambda: pending_alerts() == {"press-1"},
        timeout=15,
        what="AuscultAnomalyRateHigh to be pending for press-1 alone",
    )
    rules = httpx.get(prometheus.base_url + "/api/v1/rules", timeout=5.0).json()
    unhealthy = [
        (rule["name"], rule.get("lastError"))
        for group in rules["data"]["groups"]
        for rule in group["rules"]
        if rule["health"] != "ok"
    ]
    assert unhealthy == []
