"""The ASGI wrappers of a Ray Serve replica, driven as Ray drives them but without Ray: the lifespan
run on its own (as Ray's replica runs it, with uvicorn's LifespanOn), and requests whose scope
carries no lifespan state (as scopes built by Ray's proxy in another process)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx

from service.app import create_app
from service.config import Settings
from service.ray_serve.asgi import REPLICA_HEADER, ReplicaHeader, ReplicaLifespan
from tests.service.clips import small_audio_bundle


def test_a_replica_starts_only_once_its_models_are_loaded_and_serves_from_its_state(
    tmp_path: Path,
) -> None:
    small_audio_bundle(tmp_path / "fan", name="fan", version="3")
    app = create_app(Settings(models_dir=tmp_path, reload_poll_seconds=0, drain_seconds=0))
    app.add_middleware(ReplicaHeader, replica="r1")
    replica = ReplicaLifespan(app, timeout_seconds=60)

    async def scenario() -> None:
        scope: dict[str, Any] = {"type": "lifespan", "asgi": {"version": "3.0"}, "state": {}}
        inbox: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        loaded_at_startup: list[bool] = []

        async def send(message: dict[str, Any]) -> None:
            if message["type"] == "lifespan.startup.complete":
                loaded_at_startup.append(scope["state"]["runtime"].registry.refreshed)

        await inbox.put({"type": "lifespan.startup"})
        lifespan = asyncio.create_task(replica(scope, inbox.get, send))
        while not loaded_at_startup:
            await asyncio.sleep(0.01)
        assert loaded_at_startup == [True]
        # httpx's ASGI transport builds scopes without lifespan state, as Ray's proxy does.
        transport = httpx.ASGITransport(app=replica)
        async with httpx.AsyncClient(transport=transport, base_url="http://replica") as client:
            response = await client.get("/v1/models/fan")
        assert response.status_code == 200, response.text
        assert response.json()["version"] == "3"
        assert response.headers[REPLICA_HEADER] == "r1"
        await inbox.put({"type": "lifespan.shutdown"})
        await lifespan

    asyncio.run(scenario())
