"""Request bodies are bounded in time as in size: one that has not arrived in full by its
deadline gets a JSON 408 and the connection closes."""

from __future__ import annotations

from pathlib import Path

from service.config import Settings
from tests.server import running_server
from tests.service.clips import small_audio_bundle
from tests.service.slow_clients import read_until_closed, stalled_upload


def test_a_stalled_upload_gets_a_json_408_and_the_connection_closes(tmp_path: Path) -> None:
    small_audio_bundle(tmp_path / "fan", name="fan")
    settings = Settings(models_dir=tmp_path, reload_poll_seconds=0, body_timeout_seconds=0.5)
    with running_server(settings) as live:
        answer = read_until_closed(stalled_upload(live.host, live.port), 30.0)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in head.lower()
    assert body == b'{"detail":"the request body did not arrive in full within 0.5 s"}'
