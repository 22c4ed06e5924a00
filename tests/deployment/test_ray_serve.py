"""Auscult on a real local Ray cluster (127.0.0.1, 2 CPUs) with 2 Ray Serve replicas: clips and a
stream through Ray's HTTP proxy, a reload that every replica acts on, metrics from every replica,
and a killed replica that requests survive.

Slow (about a minute): starting Ray's processes and the replicas is most of it, so one cluster
and one deployment serve every test here, in order."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import soundfile as sf

from service.config import Settings
from tests.deployment.processes import free_port, wait_until
from tests.server import LiveServer
from tests.service.api.streams import read_to_close, start, stream_connection
from tests.service.clips import clip, small_audio_bundle

# Ray replaces a loopback node address by the machine's own (services.resolve_ip_for_localhost)
# unless clusters are off, which Ray reads when it is imported: then the whole cluster (GCS,
# raylet, workers, every replica's metrics endpoint) stays on 127.0.0.1. Its processes inherit it.
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
ray = pytest.importorskip(
    "ray", reason="the 'ray' extra is not installed: pip install 'auscult[ray]'"
)
serve = pytest.importorskip("ray.serve")

from service.ray_serve.deployment import APP_DEPLOYMENT  # noqa: E402
from service.ray_serve.runner import deploy  # noqa: E402
from service.ray_serve.settings import RaySettings  # noqa: E402

pytestmark = pytest.mark.slow

REPLICAS = 2
MODEL = "fan"
WAV = {"Content-Type": "audio/wav"}


@dataclass(frozen=True)
class Deployed:
    proxy: LiveServer  # Ray's HTTP proxy, in front of the replicas
    models: Path


def _descendants(pid: int) -> set[int]:
    """Every process below `pid` (Ray's GCS, raylet and workers are below the driver)."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: set[int] = set()
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            if child not in found:
                found.add(child)
                todo.append(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    models = tmp_path_factory.mktemp("ray-models")
    small_audio_bundle(models / "fan-1", name=MODEL, version="1")
    # Ray's socket paths must stay short: its own folder under /tmp, not pytest's deep one.
    ray_dir = tempfile.mkdtemp(prefix="auscult-ray-")
    started_before = _descendants(os.getpid())
    with pytest.MonkeyPatch.context() as env:
        # A throw-away cluster on loopback: no token written to the home folder.
        env.setenv("RAY_AUTH_MODE", "disabled")
        env.setenv("RAY_USAGE_STATS_ENABLED", "0")
        ray.init(
            num_cpus=REPLICAS,
            include_dashboard=False,
            _temp_dir=ray_dir,
            log_to_driver=False,
        )
        ray_processes: set[int] = set()
        try:
            port = free_port()
            settings = Settings(
                models_dir=models,
                reload_poll_seconds=0,  # only a reload request loads new bundles
                worker_sync_poll_seconds=0.1,
                worker_threads=1,
            )
            deploy(settings, RaySettings(replicas=REPLICAS), host="127.0.0.1", port=port)
            proxy = LiveServer("127.0.0.1", port, settings)
            yield Deployed(proxy, models)
        finally:
            ray_processes = _descendants(os.getpid()) - started_before
            serve.shutdown()
            ray.shutdown()
    try:
        # Ray's processes and every replica are gone, not left behind.
        wait_until(
            lambda: not any(_alive(pid) for pid in ray_processes),
            timeout=30,
            what="Ray's processes to exit",
        )
    finally:
        for pid in ray_processes:
            if _alive(pid):
                os.kill(pid, 9)
        shutil.rmtree(ray_dir, ignore_errors=True)


def _score(proxy: LiveServer) -> httpx.Response:
    response = httpx.post(
        f"{proxy.url}/v1/models/{MODEL}/score", content=clip(1.0), headers=WAV,
        timeout=30,
    )  # fmt: skip
    assert response.status_code == 200, response.text
    return response


def _answers_of_both(
    proxy: LiveServer, path: str, *, timeout: float = 10.0
) -> dict[str, list[dict[str, Any]]]:
    """GET path until each replica answered at least twice: replica id -> its answers."""
    answers: dict[str, list[dict[str, Any]]] = {}
    deadline = time.monotonic() + timeout
    with httpx.Client(timeout=10) as client:
        while time.monotonic() < deadline:
            response = client.get(f"{proxy.url}{path}")
            assert response.status_code == 200, response.text
            answers.setdefault(response.headers["x-auscult-replica"], []).append(response.json())
            if len(answers) == REPLICAS and all(len(a) >= 2 for a in answers.values()):
                return answers
            time.sleep(0.01)
    pytest.fail(f"in {timeout} s only replicas {sorted(answers)} answered")


def test_clips_are_scored_by_every_replica_through_the_proxy(deployed: Deployed) -> None:
    with ThreadPoolExecutor(4) as pool:
        responses = list(pool.map(lambda _: _score(deployed.proxy), range(24)))
    assert {r.json()["version"] for r in responses} == {"1"}
    assert len({r.headers["x-auscult-replica"] for r in responses}) == REPLICAS
    # The same clip gets the same verdict whichever replica scored it.
    assert len({json.dumps(r.json()["blocks"]) for r in responses}) == 1


async def _stream(proxy: LiveServer, pcm: bytes) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    async with stream_connection(proxy) as ws:
        ready = await start(ws, encoding="pcm_s16le")
        for offset in range(0, len(pcm), 3200):  # 100 ms frames
            await ws.send(pcm[offset : offset + 3200])
        await ws.send(json.dumps({"type": "stop"}))
        messages, code = await read_to_close(ws)
    assert code == 1000
    return ready, messages


def test_a_stream_through_the_proxy_scores_like_the_clip(deployed: Deployed) -> None:
    wav = clip(2.0, seed=5)
    pcm, _ = sf.read(io.BytesIO(wav), dtype="int16")
    ready, messages = asyncio.run(_stream(deployed.proxy, pcm.astype("<i2").tobytes()))
    assert (ready["type"], ready["model"], ready["version"]) == ("ready", MODEL, "1")
    *scores, end = messages
    blocks = _score_wav(deployed.proxy, wav)["blocks"]
    assert [s["seq"] for s in scores] == [b["index"] for b in blocks]
    assert [s["score"] for s in scores] == pytest.approx([b["score"] for b in blocks], rel=1e-5)
    assert end["type"] == "end"
    assert end["blocks"] == len(blocks)


def _score_wav(proxy: LiveServer, wav: bytes) -> dict[str, Any]:
    response = httpx.post(
        f"{proxy.url}/v1/models/{MODEL}/score", content=wav, headers=WAV, timeout=30
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_a_reload_reaches_every_replica(deployed: Deployed) -> None:
    small_audio_bundle(deployed.models / "fan-2", name=MODEL, version="2")
    response = httpx.post(f"{deployed.proxy.url}/v1/models/reload", timeout=30)
    assert response.status_code == 200, response.text
    report = response.json()
    assert report["all_workers_reloaded"] is True
    assert [w["models"] for w in report["workers"]] == [{MODEL: "2"}] * REPLICAS
    # Every replica serves version 2 from the moment the reload answered: no poll hides a lag.
    answers = _answers_of_both(deployed.proxy, f"/v1/models/{MODEL}")
    assert {a["version"] for replica in answers.values() for a in replica} == {"2"}
    assert _score(deployed.proxy).json()["version"] == "2"


def _scored_clips(text: str) -> float:
    pattern = re.compile(r'^auscult_scored_total\{[^}]*source="clip"[^}]*\} (\S+)$', re.M)
    return sum(float(value) for value in pattern.findall(text))


def _targets(deployed: Deployed) -> list[dict[str, Any]]:
    response = httpx.get(f"{deployed.proxy.url}/v1/ray/metrics-targets", timeout=10)
    assert response.status_code == 200, response.text
    groups: list[dict[str, Any]] = response.json()
    return groups


def test_metrics_are_collected_from_every_replica(deployed: Deployed) -> None:
    targets = _targets(deployed)
    assert len(targets) == REPLICAS
    assert len({group["labels"]["replica"] for group in targets}) == REPLICAS
    # Each on the address of its Ray node (the cluster's, loopback here).
    assert {group["targets"][0].rsplit(":", 1)[0] for group in targets} == {"127.0.0.1"}

    def scrape() -> dict[str, float]:
        return {
            group["labels"]["replica"]: _scored_clips(
                httpx.get(f"http://{group['targets'][0]}/metrics", timeout=10).text
            )
            for group in targets
        }

    before = scrape()
    clips = 16
    with ThreadPoolExecutor(4) as pool:
        replicas = [
            r.headers["x-auscult-replica"]
            for r in pool.map(lambda _: _score(deployed.proxy), range(clips))
        ]
    after = scrape()
    # Each replica's own counter rose by the clips it scored: nothing counted twice or lost.
    for replica, value in after.items():
        assert value - before[replica] == replicas.count(replica)
    assert sum(after.values()) - sum(before.values()) == clips


def _replica_actors() -> list[str]:
    return sorted(
        actor["name"]
        for actor in ray.util.list_named_actors(all_namespaces=True)
        if actor["namespace"] == "serve" and f"#{APP_DEPLOYMENT}#" in actor["name"]
    )


def test_requests_continue_when_a_replica_is_killed(deployed: Deployed) -> None:
    victims = _replica_actors()
    assert len(victims) == REPLICAS
    ray.kill(ray.get_actor(victims[0], namespace="serve"), no_restart=True)
    started = time.monotonic()
    statuses = [
        httpx.post(
            f"{deployed.proxy.url}/v1/models/{MODEL}/score", content=clip(1.0), headers=WAV,
            timeout=30,
        ).status_code
        for _ in range(30)
    ]  # fmt: skip
    assert statuses == [200] * len(statuses), f"after {time.monotonic() - started:.1f} s"
    # Serve replaces the replica; the new one loads the same folder, so it serves version 2.
    answers = _answers_of_both(deployed.proxy, f"/v1/models/{MODEL}", timeout=90)
    assert {a["version"] for replica in answers.values() for a in replica} == {"2"}
    # The killed replica leaves the directory: Prometheus stops scraping it, reloads stop
    # waiting for it.
    killed = victims[0].rsplit("#", 1)[1]
    wait_until(
        lambda: sorted(g["labels"]["replica"] for g in _targets(deployed)) == sorted(answers),
        timeout=10,
        what=f"the metrics targets to drop {killed}",
    )
    report = httpx.post(f"{deployed.proxy.url}/v1/models/reload", timeout=30).json()
    assert report["all_workers_reloaded"] is True
    assert len(report["workers"]) == REPLICAS
