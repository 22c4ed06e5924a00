"""API keys: required on /v1 when configured (Bearer, X-API-Key, or api_key for WebSockets),
compared in constant time; probes and metrics stay open; no keys means no authentication."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr

from service.api.auth import key_accepted, presented_key
from service.config import Settings
from tests.server import LiveServer, running_server
from tests.service.api.streams import read_to_close, start, stream_connection
from tests.service.clips import small_audio_bundle

KEY = "test-key-0123456789abcdef"


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("models")
    small_audio_bundle(folder / "fan", name="fan")
    return folder


@pytest.fixture(scope="module")
def secured(models: Path) -> Iterator[LiveServer]:
    settings = Settings(
        models_dir=models,
        reload_poll_seconds=0,
        api_keys=[SecretStr("other-key-0123456789"), SecretStr(KEY)],
    )
    with running_server(settings) as live:
        yield live


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Authorization": "Bearer wrong-key-0123456789"},
        {"X-API-Key": KEY[:-1]},
        {"Authorization": KEY},
    ],
)
def test_requests_without_a_valid_key_get_401(
    secured: LiveServer, normal_wav: bytes, headers: dict[str, str]
) -> None:
    for response in (
        httpx.get(f"{secured.url}/v1/models", headers=headers),
        httpx.post(
            f"{secured.url}/v1/models/fan/score",
            content=normal_wav,
            headers={**headers, "Content-Type": "audio/wav"},
        ),
        httpx.post(f"{secured.url}/v1/models/reload", headers=headers),
    ):
        assert response.status_code == 401
        assert response.headers["WWW-Authenticate"] == "Bearer"
        assert "API key is required" in response.json()["detail"]


@pytest.mark.parametrize("headers", [{"Authorization": f"Bearer {KEY}"}, {"X-API-Key": KEY}])
def test_a_configured_key_in_either_header_is_accepted(
    secured: LiveServer, normal_wav: bytes, headers: dict[str, str]
) -> None:
    assert httpx.get(f"{secured.url}/v1/models", headers=headers).status_code == 200
    response = httpx.post(
        f"{secured.url}/v1/models/fan/score",
        content=normal_wav,
        headers={**headers, "Content-Type": "audio/wav"},
    )
    assert response.status_code == 200


def test_probes_and_metrics_need_no_key(secured: LiveServer) -> None:
    for path in ("/healthz", "/readyz", "/metrics"):
        assert httpx.get(secured.url + path).status_code == 200


def test_streams_need_a_key_in_a_header_or_the_query(secured: LiveServer) -> None:
    async def scenario() -> None:
        async with stream_connection(secured) as anonymous:
            [error], code = await read_to_close(anonymous)
        assert (error["code"], code) == ("unauthorized", 1008)
        async with stream_connection(secured, query=f"api_key={KEY}") as by_query:
            assert (await start(by_query))["type"] == "ready"
        async with stream_connection(secured, headers={"X-API-Key": KEY}) as by_header:
            assert (await start(by_header))["type"] == "ready"

    asyncio.run(scenario())


def test_without_configured_keys_everything_is_open(models: Path) -> None:
    with running_server(Settings(models_dir=models, reload_poll_seconds=0)) as live:
        assert httpx.get(f"{live.url}/v1/models").status_code == 200


def test_key_parsing_and_comparison() -> None:
    keys = [SecretStr(KEY)]
    assert presented_key({"authorization": f"bearer  {KEY} "}) == KEY
    assert presented_key({"x-api-key": KEY}) == KEY
    assert presented_key({}, {"api_key": KEY}) == KEY
    assert presented_key({"authorization": f"Basic {KEY}"}) is None
    assert key_accepted(keys, KEY)
    assert not key_accepted(keys, KEY + "x")
    assert not key_accepted(keys, None)
    assert not key_accepted(keys, "ключ-не-ascii-0123456")
    assert key_accepted([], None)
