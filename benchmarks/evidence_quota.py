"""The evidence quota's sum on a large event table, with and without the partial index of the
rows that hold evidence (migration 0002): the writer runs it every few seconds while it keeps
evidence, and the table gains a row for every clip scored. Builds a SQLite event database of
`--events` rows shaped like a normal clip's (9 blocks, 128 mel bands of detail), a fraction
with evidence, in a temporary folder; times `evidence_bytes` with the index, then after
dropping it. Writes benchmarks/results/evidence_quota.json; docs/FEEDBACK.md quotes it.

    python -m benchmarks.evidence_quota [--events 200000] [--evidence-fraction 0.05]
"""

from __future__ import annotations

import argparse
import platform
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sqlalchemy import Engine, insert, text

from benchmarks.processes import uptime, write_output
from service.events.database import default_database_url, open_migrated
from service.events.evidence import evidence_bytes
from service.events.schema import EventRow

PROJECT_ROOT = Path(__file__).resolve().parent.parent
RESULTS = PROJECT_ROOT / "benchmarks" / "results" / "evidence_quota.json"
_INSERT_BATCH = 5000
_FLAC_BYTES = 250_000  # about a 10 s 16 kHz clip


def _fill(engine: Engine, events: int, evidence_every: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    detail = {
        "block_threshold": 1.0,
        "blocks": [[0.512 * i, 0.512 * i + 1.024, float(v)] for i, v in enumerate(rng.random(9))],
        "band_error": [float(v) for v in rng.random(128)],
        "band_hz": [float(v) for v in np.sort(rng.random(128)) * 8000],
    }
    rows: list[dict[str, Any]] = []
    for i in range(events):
        kept = i % evidence_every == 0
        rows.append(
            {
                "id": uuid.UUID(int=int(rng.integers(2**63)) << 64 | i).hex,
                "time": datetime.now(UTC),
                "station": None,
                "model": "uav-propeller",
                "version": "1",
                "kind": "audio",
                "source": "clip",
                "score": 1.0,
                "threshold": 2.0,
                "ratio": 0.5,
                "verdict": "normal",
                "span_start": 0.0,
                "span_end": 10.0,
                "worst": {"block": 1},
                "detail": detail,
                "evidence_path": f"/evidence/{i}.flac" if kept else None,
                "evidence_bytes": _FLAC_BYTES if kept else 0,
            }
        )
        if len(rows) == _INSERT_BATCH:
            with engine.begin() as connection:
                connection.execute(insert(EventRow), rows)
            rows = []
    if rows:
        with engine.begin() as connection:
            connection.execute(insert(EventRow), rows)


def _median_seconds(engine: Engine, repeats: int) -> tuple[int, float]:
    times, total = [], 0
    for _ in range(repeats):
        started = time.perf_counter()
        total = evidence_bytes(engine)
        times.append(time.perf_counter() - started)
    return total, statistics.median(times)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=200_000, help="rows in the table")
    parser.add_argument(
        "--evidence-fraction", type=float, default=0.05, help="share of rows with evidence"
    )
    parser.add_argument("--repeats", type=int, default=5, help="timed sums, each way")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    evidence_every = max(1, round(1 / args.evidence_fraction))
    with tempfile.TemporaryDirectory() as folder:
        engine = open_migrated(default_database_url(Path(folder)))
        try:
            _fill(engine, args.events, evidence_every, args.seed)
            database_bytes = sum(f.stat().st_size for f in Path(folder).iterdir())
            before = uptime()
            total, indexed = _median_seconds(engine, args.repeats)
            with engine.begin() as connection:
                connection.execute(text("DROP INDEX ix_events_evidence"))
            total_without, whole_table = _median_seconds(engine, args.repeats)
        finally:
            engine.dispose()
    assert total == total_without
    result = {
        "events": args.events,
        "rows_with_evidence": len(range(0, args.events, evidence_every)),
        "evidence_bytes_sum": total,
        "database_bytes": database_bytes,
        "repeats": args.repeats,
        "seed": args.seed,
        "median_seconds_with_index": indexed,
        "median_seconds_whole_table": whole_table,
        "machine": f"{platform.machine()}, {platform.python_version()}",
        "uptime_before": before,
        "uptime_after": uptime(),
        "note": "SQLite, warm page cache (the table was just written)",
    }
    write_output(args.output, result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
