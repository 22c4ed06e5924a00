"""Metrics: bounded station labels, verdict counting, one registry per app."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from service.metrics import Metrics


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    body, content_type = metrics.exposition()
    assert content_type.startswith("text/plain")
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def test_station_labels_come_only_from_the_allow_list() -> None:
    metrics = Metrics(stations=["press-1"])
    assert metrics.station_label("press-1") == "press-1"
    assert metrics.station_label("press-9") == "other"
    assert metrics.station_label(None) == "unknown"
    assert metrics.station_label("") == "unknown"


def test_verdicts_are_counted_by_model_station_and_source() -> None:
    metrics = Metrics(stations=["press-1"])
    metrics.record_verdicts("fan", "press-1", "stream", [True, False, True], [1.5, 0.5, 2.5])
    metrics.record_verdicts("fan", "somewhere", "clip", [False], [0.9])
    samples = _samples(metrics)
    stream = (("model", "fan"), ("source", "stream"), ("station", "press-1"))
    clip = (("model", "fan"), ("source", "clip"), ("station", "other"))
    assert samples[("auscult_scored_total", stream)] == 3
    assert samples[("auscult_anomalies_total", stream)] == 2
    assert samples[("auscult_scored_total", clip)] == 1
    assert samples[("auscult_anomalies_total", clip)] == 0
    assert samples[("auscult_score_ratio_count", (("model", "fan"),))] == 4
    assert samples[("auscult_score_ratio_bucket", (("le", "1.0"), ("model", "fan")))] == 2


def test_each_app_counts_in_its_own_registry() -> None:
    first, second = Metrics(), Metrics()
    first.pool_rejections.inc()
    assert _samples(first)[("auscult_pool_rejections_total", ())] == 1
    assert _samples(second)[("auscult_pool_rejections_total", ())] == 0
