"""A live server of one small audio bundle (`fan`) and one sensor-window bundle (`press`) that
asks for an API key: what the client and Open Inference Protocol tests both drive."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import SecretStr

from service.config import Settings
from tests.bundle_factory import make_windows_bundle
from tests.server import LiveServer, running_server
from tests.service.clips import small_audio_bundle


def fan_and_press(folder: Path, channels: int) -> Path:
    """`fan` version 1 in fan-1/ and a `press` of `channels` channels in press/."""
    small_audio_bundle(folder / "fan-1", name="fan", version="1")
    make_windows_bundle(folder / "press", name="press", channels=channels, window=20, stride=5)
    return folder


@contextmanager
def keyed_server(models: Path, key: str, **settings: Any) -> Iterator[LiveServer]:
    """A live server of `models` that accepts `key`; bundles are not polled for changes."""
    configured = Settings(
        models_dir=models, reload_poll_seconds=0, api_keys=[SecretStr(key)], **settings
    )
    with running_server(configured) as live:
        yield live
