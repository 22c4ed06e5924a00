"""The feedback loop on a real server: a stage-1 bundle trained on UAV normal recordings scores
held-out recordings with the event store on, a technician labels the alarms with the truth
(confirmed broken propellers, and false alarms where another machine drowned the drone out),
`auscult retrain` writes version 2, and after a reload the server answers with it."""

from __future__ import annotations

import math
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from service.audio.decode import load_audio
from service.bundle.manifest import AudioManifest, read_manifest
from service.config import Settings
from tests.realdata import real_data
from tests.server import running_server
from tests.service.clips import encode
from tests.training.retrain.conftest import NAME, RATE, StageOne, first_clips

CLIPS_PER_RECORDING = 2
# Interference this loud makes the stage-1 model alarm on a normal flight: a false alarm.
INTERFERED_NORMAL_RECORDINGS = 2


def _with_machine_nearby(samples: np.ndarray, machine: np.ndarray) -> np.ndarray:
    """The clip with another machine mixed in at the same power (0 dB)."""
    looped = np.resize(machine, samples.size)
    gain = math.sqrt(float(np.mean(samples**2)) / float(np.mean(looped**2)))
    return (samples + gain * looped).astype(np.float32)


def _field_clips(stage_one: StageOne) -> list[tuple[np.ndarray, str]]:
    """(samples, true label) of clips of every held-out recording, and of normal flights with a
    fan recorded nearby."""
    fan = sorted(real_data("audio/dcase2020_dev/fan/test").glob("normal_*.wav"))[0]
    machine = load_audio(fan, RATE)
    clips: list[tuple[np.ndarray, str]] = []
    normal = [r for r in stage_one.held_out if not r.is_anomaly]
    for recording in stage_one.held_out:
        for samples in first_clips(recording, CLIPS_PER_RECORDING):
            clips.append((samples, recording.label))
    for recording in normal[:INTERFERED_NORMAL_RECORDINGS]:
        for samples in first_clips(recording, CLIPS_PER_RECORDING):
            clips.append((_with_machine_nearby(samples, machine), "normal"))
    return clips


def _score(client: httpx.Client, samples: np.ndarray) -> dict[str, Any]:
    response = client.post(
        f"/v1/models/{NAME}/score",
        content=encode(samples, RATE, fmt="FLAC"),
        headers={"content-type": "audio/flac"},
        params={"blocks": "false"},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def _alarm_events(client: httpx.Client, expected: int) -> list[dict[str, Any]]:
    """The stored alarm events, once the writer has stored all `expected` of them."""
    deadline = time.monotonic() + 60
    while True:
        page = client.get("/v1/events", params={"model": NAME, "verdict": "anomaly", "limit": 200})
        assert page.status_code == 200, page.text
        events: list[dict[str, Any]] = page.json()["events"]
        if len(events) >= expected or time.monotonic() > deadline:
            return events
        time.sleep(0.2)


def test_labelled_alarms_retrain_a_new_version_that_is_served(
    tmp_path: Path, stage_one: StageOne
) -> None:
    models = tmp_path / "models"
    stage_one.serve(models)
    database_url = f"sqlite:///{tmp_path / 'events.db'}"
    settings = Settings(
        models_dir=models,
        state_dir=tmp_path / "state",
        database_url=database_url,
        reload_poll_seconds=0,
    )
    with running_server(settings) as live, httpx.Client(base_url=live.url, timeout=60) as client:
        answers = [(_score(client, samples), truth) for samples, truth in _field_clips(stage_one)]
        assert {answer["version"] for answer, _ in answers} == {"1"}
        alarms = [(answer["score"], truth) for answer, truth in answers if answer["anomaly"]]
        truths = [truth for _, truth in alarms]
        assert truths.count("anomaly") >= 3, truths
        assert truths.count("normal") >= 1, truths  # some false alarms

        # The technician's labels, matched to the stored events by their score.
        events = _alarm_events(client, len(alarms))
        assert len(events) == len(alarms)
        labels: dict[str, str] = {}
        for event in events:
            truth = [t for score, t in alarms if math.isclose(score, event["score"], rel_tol=1e-9)]
            assert len(truth) == 1
            labelled = client.put(
                f"/v1/events/{event['id']}/label", json={"label": truth[0], "by": "technician"}
            )
            assert labelled.status_code == 200, labelled.text
            labels[event["id"]] = truth[0]

        retrain = subprocess.run(
            [
                sys.executable, "-m", "service.cli", "retrain", "--model", NAME,
                "--models", str(models), "--database-url", database_url, "--quiet",
                "--stage2-epochs", "10", "--patience", "3",
            ],
            capture_output=True, text=True, timeout=1200, check=False,
        )  # fmt: skip
        assert retrain.returncode == 0, retrain.stdout + retrain.stderr
        assert "challenger version 2 promoted" in retrain.stdout

        assert client.post("/v1/models/reload").status_code == 200
        again = _score(client, first_clips(stage_one.held_out[0], 1)[0])
        assert (again["model"], again["version"]) == (NAME, "2")

    manifest = read_manifest(models / f"{NAME}-v2")
    assert isinstance(manifest, AudioManifest)
    assert manifest.lineage is not None
    assert manifest.lineage.parent_version == "1"
    assert sorted(manifest.lineage.anomaly_events) == sorted(
        i for i, label in labels.items() if label == "anomaly"
    )
    assert sorted(manifest.lineage.normal_events) == sorted(
        i for i, label in labels.items() if label == "normal"
    )
    assert manifest.evaluation is not None
    assert manifest.evaluation.auc is not None
