"""The review page in headless Chromium (Debian's package, driven by Playwright) on a real
server: it lists the unlabelled alarms, each clip's audio loads in its <audio> element, and the
buttons label events, which then shows in the database and in /metrics."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.events.database import default_database_url, open_engine
from service.events.queries import get_event
from tests.service.clips import clip
from tests.service.served import fan_and_press, keyed_server
from tests.training.report.browser import CHROMIUM

KEY = "review-page-key-0123456789"
WAV = {"content-type": "audio/wav"}


def _wait_for_events(client: httpx.Client, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 20
    while True:
        events: list[dict[str, Any]] = client.get("/v1/events").json()["events"]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.05)


def test_review_page_lists_plays_and_labels(tmp_path: Path) -> None:
    if not CHROMIUM.is_file():
        pytest.skip(f"{CHROMIUM} is missing: scripts/install-test-tools installs Debian's chromium")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is a dev dependency")
    models = fan_and_press(tmp_path / "models", 3)
    state = tmp_path / "state"
    with keyed_server(models, KEY, state_dir=state, event_normal_audio_fraction=0.0) as live:
        with httpx.Client(base_url=live.url, headers={"X-API-Key": KEY}) as client:
            client.post("/v1/models/fan/score", content=clip(2.0, seed=1), headers=WAV)
            for seed in (2, 3):
                scored = client.post(
                    "/v1/models/fan/score",
                    content=clip(2.0, seed=seed, anomalous=True),
                    headers=WAV,
                )
                assert scored.json()["anomaly"] is True
            events = _wait_for_events(client, 3)
        alarms = [e["id"] for e in events if e["verdict"] == "anomaly"]  # newest first

        requested: list[str] = []
        failed: list[str] = []
        with sync_api.sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=str(CHROMIUM))
            try:
                page = browser.new_page()
                page.on("request", lambda request: requested.append(request.url))
                page.on("requestfailed", lambda request: failed.append(request.url))
                page.goto(f"{live.url}/ui/review?api_key={KEY}")
                assert page.url == f"{live.url}/ui/review"
                # Unlabelled alarms only, newest first.
                cards = page.eval_on_selector_all("article", "els => els.map(e => e.dataset.id)")
                assert cards == alarms
                # Each clip plays: the audio element read the FLAC's header and knows its length.
                page.wait_for_function(
                    "[...document.querySelectorAll('audio')].every(a => a.readyState >= 1)"
                )
                durations = page.eval_on_selector_all("audio", "els => els.map(a => a.duration)")
                assert durations == pytest.approx([2.0, 2.0], abs=0.01)
                assert page.locator("svg.scores polyline").count() == 2
                assert page.locator("svg.bands rect").count() == 2 * 32

                page.fill("#who", "ana")
                first = page.locator(f'article[data-id="{alarms[0]}"]')
                first.locator("button.confirm").click()
                first.locator(".status", has_text="confirmed").wait_for()
                second = page.locator(f'article[data-id="{alarms[1]}"]')
                second.locator("button.false-alarm").click()
                second.locator(".status", has_text="false alarm").wait_for()

                page.reload()
                assert page.locator("article").count() == 0
                assert page.locator("#empty").is_visible()
            finally:
                browser.close()
        assert not failed
        assert all(url.startswith(live.url) for url in requested), requested

        engine = open_engine(default_database_url(state))
        try:
            confirmed, false_alarm = (get_event(engine, i) for i in alarms)
            assert confirmed is not None
            assert false_alarm is not None
            assert (confirmed.label, confirmed.labelled_by) == ("anomaly", "ana")
            assert (false_alarm.label, false_alarm.labelled_by) == ("normal", "ana")
        finally:
            engine.dispose()
        metrics = httpx.get(f"{live.url}/metrics").text
        assert 'auscult_alarm_precision{model="fan"} 0.5' in metrics
        assert (
            'auscult_event_labels_total{label="anomaly",model="fan",verdict="anomaly"} 1.0'
            in metrics
        )
