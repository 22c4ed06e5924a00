"""What building and encoding a clip's answer costs beside scoring it: `score_clip` on a real
10 s DCASE clip with the default bundle, then the route's pydantic models, then their JSON as
FastAPI encodes them (pydantic-core `model_dump_json`) and, for reference, the older
`jsonable_encoder` + `json.dumps` path; with and without the per-block list (`?blocks=false`).
Writes benchmarks/results/capacity_response.json; docs/BENCHMARKS.md quotes it.

    python -m benchmarks.capacity_response [--repeats 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from fastapi.encoders import jsonable_encoder

from benchmarks.posted_clips import BUNDLE, DEFAULT_DATA, alarm_clip
from service.api.routes.scoring import clip_answer
from service.api.schemas import ClipVerdict
from service.audio.decode import DecodeLimits
from service.bundle.loader import load_bundle
from service.metrics import Metrics
from service.pipelines.audio_clip import ClipVerdicts, score_clip
from service.scoring.audio import AudioScorer
from service.scoring.detectors import AudioDetector, OperatingPointChoice

RESULTS = Path(__file__).resolve().parent / "results" / "capacity_response.json"


def _answer(detector: AudioDetector, clip: ClipVerdicts, blocks: bool) -> ClipVerdict:
    """The route's answer, built by the route's own function."""
    return clip_answer("uav-propeller", "1", None, detector, clip, blocks=blocks)


def _median_ms(fn: Callable[[], Any], repeats: int) -> float:
    times = []
    for _ in range(repeats + 5):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return 1e3 * statistics.median(times[5:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--repeats", type=int, default=200)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    path = alarm_clip(args.data)
    wav = path.read_bytes()
    detector = AudioDetector.at(AudioScorer(load_bundle(BUNDLE)), OperatingPointChoice())
    limits, metrics = DecodeLimits(max_seconds=60), Metrics()
    clip = score_clip(detector, wav, limits=limits, metrics=metrics)
    full, short = _answer(detector, clip, True), _answer(detector, clip, False)
    result = {
        "clip": str(path.relative_to(args.data)),
        "blocks": len(clip.blocks),
        "repeats": args.repeats,
        "uptime": subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip(),
        "machine": f"{os.cpu_count()} CPUs",
        "median_ms": {
            "score_clip": _median_ms(
                lambda: score_clip(detector, wav, limits=limits, metrics=metrics), args.repeats
            ),
            "build_answer": _median_ms(lambda: _answer(detector, clip, True), args.repeats),
            "build_answer_without_blocks": _median_ms(
                lambda: _answer(detector, clip, False), args.repeats
            ),
            "model_dump_json": _median_ms(full.model_dump_json, args.repeats),
            "model_dump_json_without_blocks": _median_ms(short.model_dump_json, args.repeats),
            "jsonable_encoder_json_dumps": _median_ms(
                lambda: json.dumps(jsonable_encoder(full)).encode(), args.repeats
            ),
        },
        "answer_bytes": {
            "with_blocks": len(full.model_dump_json()),
            "without_blocks": len(short.model_dump_json()),
        },
    }
    args.output.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
