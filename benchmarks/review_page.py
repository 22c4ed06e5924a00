"""Fill the review page with real alarms and screenshot it: `auscult serve` with the default
UAV bundle scores the first 10 s of real flights (normal ones and ones with broken propellers),
then headless Chromium (Debian's package, driven by Playwright) opens /ui/review, waits for
every clip's audio to load and saves docs/review-page.png. What was sent and shown goes to
benchmarks/results/review_page.json.

    python -m benchmarks.review_page [--normal 4] [--broken 4]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import soundfile as sf
from playwright.sync_api import sync_playwright

from benchmarks.posted_clips import BUNDLE, DEFAULT_DATA, PROJECT_ROOT
from benchmarks.processes import free_port, serving

CHROMIUM = "/usr/bin/chromium"
SCREENSHOT = PROJECT_ROOT / "docs" / "review-page.png"
RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "review_page.json"
UAV = Path("audio/uav_propeller")
KEY = "review-page-screenshot-key"


def _wav(path: Path) -> bytes:
    samples, rate = sf.read(path, frames=160_000, dtype="float32")
    buffer = io.BytesIO()
    sf.write(buffer, samples, rate, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


def _recordings(data: Path, normal: int, broken: int) -> list[tuple[Path, str]]:
    """(recording, station): normal flights and broken-propeller flights, two stations."""
    chosen = [(p, "normal") for p in sorted((data / UAV / "normal").glob("*.flac"))[:normal]]
    faulty = sorted((data / UAV).glob("*_broken/*.flac"))
    chosen += [(p, "broken") for p in faulty[:: max(1, len(faulty) // broken)][:broken]]
    return [(path, f"rotor-{i % 2 + 1}") for i, (path, _) in enumerate(chosen)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--normal", type=int, default=4)
    parser.add_argument("--broken", type=int, default=4)
    parser.add_argument("--screenshot", type=Path, default=SCREENSHOT)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    sent: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as work:
        models = Path(work) / "models"
        shutil.copytree(BUNDLE, models / BUNDLE.name)
        env = {
            "AUSCULT_RELOAD_POLL_SECONDS": "0",
            "AUSCULT_STATE_DIR": str(Path(work) / "state"),
            "AUSCULT_API_KEYS": KEY,
            "AUSCULT_STATIONS": "rotor-1,rotor-2",
        }
        with serving(models, free_port(), env) as url:
            client = httpx.Client(base_url=url, headers={"X-API-Key": KEY}, timeout=60)
            for path, station in _recordings(args.data, args.normal, args.broken):
                verdict = client.post(
                    f"/v1/models/{BUNDLE.name}/score",
                    params={"station": station},
                    content=_wav(path),
                    headers={"Content-Type": "audio/wav"},
                ).json()
                sent.append(
                    {
                        "recording": str(path.relative_to(args.data)),
                        "station": station,
                        "anomaly": verdict["anomaly"],
                        "ratio": verdict["ratio"],
                    }
                )
            alarms = sum(item["anomaly"] for item in sent)
            deadline = time.monotonic() + 30
            # The writer is asynchronous: wait until every alarm is in the store.
            while time.monotonic() < deadline:
                listed = client.get("/v1/events", params={"verdict": "anomaly"}).json()
                if len(listed["events"]) >= alarms:
                    break
                time.sleep(0.1)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(executable_path=CHROMIUM)
                try:
                    page = browser.new_page(viewport={"width": 1200, "height": 900})
                    page.goto(f"{url}/ui/review?api_key={KEY}")
                    page.wait_for_function(
                        "[...document.querySelectorAll('audio')].every(a => a.readyState >= 1)"
                    )
                    page.fill("#who", "technician")
                    shown = page.eval_on_selector_all("article", "els => els.length")
                    args.screenshot.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(args.screenshot), full_page=True)
                finally:
                    browser.close()
    result = {
        "bundle": BUNDLE.name,
        "sent": sent,
        "alarms_sent": alarms,
        "alarms_shown": shown,
        "screenshot": str(args.screenshot.relative_to(PROJECT_ROOT)),
        "load": os.getloadavg()[0],
    }
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
