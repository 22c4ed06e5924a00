"""Write the reports of one audio and one sensor bundle with `auscult report`, screenshot each
page in headless Chromium (Debian's package, driven by Playwright) into docs/report-audio.png and
docs/report-sensor.png, and keep what each page states in
benchmarks/results/report_screenshots.json.

    python -m benchmarks.report_screenshots \\
        --audio models/uav-propeller --audio-data ../shared/data/audio/uav_propeller \\
        --sensor /tmp/msl-bundle --sensor-data ../shared/data/timeseries/MSL

The reports go to a temporary folder (--out to keep them), so the bundles are left as they are."""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from benchmarks.audio_protocol import PROJECT_ROOT, write_results
from service.bundle.manifest import read_manifest

CHROMIUM = "/usr/bin/chromium"
WIDTH = 1100


def _report(name: str, bundle: Path, data: Path, out: Path) -> dict[str, Any]:
    """Run `auscult report` as a user would; what it stated and how long it took."""
    arguments = ["report", str(bundle), "--data", str(data)]
    command = [sys.executable, "-m", "service.cli", *arguments, "--out", str(out / name)]
    load = os.getloadavg()
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{done.stderr}")
    manifest = read_manifest(bundle)
    return {
        "command": "auscult " + " ".join(arguments),
        "wall_seconds": time.perf_counter() - started,
        "load_average_before": load,
        "load_average_after": os.getloadavg(),
        "bundle": {
            "name": manifest.name,
            "version": manifest.version,
            "trained_on": manifest.training.data,
            "seed": manifest.training.seed,
            "default_operating_point": manifest.default_operating_point,
        },
        "page": json.loads((out / name / "summary.json").read_text(encoding="utf-8")),
    }


def _screenshot(index: Path, target: Path) -> None:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM)
        try:
            page = browser.new_page(viewport={"width": WIDTH, "height": 900})
            page.goto(index.as_uri(), wait_until="load")
            page.screenshot(path=str(target), full_page=True)
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--audio", type=Path, required=True, help="the audio bundle")
    parser.add_argument("--audio-data", type=Path, required=True)
    parser.add_argument("--sensor", type=Path, required=True, help="the sensor bundle")
    parser.add_argument("--sensor-data", type=Path, required=True)
    parser.add_argument("--out", type=Path, help="keep the reports here (default: temporary)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        out = args.out or Path(scratch)
        runs = {
            "audio": _report("audio", args.audio, args.audio_data, out),
            "sensor": _report("sensor", args.sensor, args.sensor_data, out),
        }
        for name in runs:
            target = PROJECT_ROOT / "docs" / f"report-{name}.png"
            _screenshot(out / name / "index.html", target)
            runs[name]["screenshot"] = str(target.relative_to(PROJECT_ROOT))
    path = write_results(
        "report_screenshots",
        {
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs",
            "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
            "runs": runs,
        },
    )
    print(f"wrote {path} and the screenshots in docs/")


if __name__ == "__main__":
    main()
