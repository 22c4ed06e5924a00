"""Settings come from AUSCULT_* variables, lists from comma-separated or JSON text."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from service.config import Settings

KEY_A = "a" * 16
KEY_B = "key-with-24-characters-x"


def test_variables_with_the_prefix_set_the_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUSCULT_MODELS_DIR", "/srv/models")
    monkeypatch.setenv("AUSCULT_WORKER_THREADS", "3")
    monkeypatch.setenv("AUSCULT_WS_BUFFER_BYTES", "65536")
    monkeypatch.setenv("AUSCULT_API_KEYS", f"{KEY_A}, {KEY_B}")
    monkeypatch.setenv("AUSCULT_STATIONS", '["press-1", "press-2"]')
    settings = Settings()
    assert settings.models_dir == Path("/srv/models")
    assert settings.worker_threads == 3
    assert settings.ws_buffer_bytes == 65536
    assert [k.get_secret_value() for k in settings.api_keys] == [KEY_A, KEY_B]
    assert settings.stations == ["press-1", "press-2"]


def test_empty_variables_keep_the_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUSCULT_API_KEYS", "")
    monkeypatch.setenv("AUSCULT_WORKER_THREADS", "")
    settings = Settings()
    assert settings.api_keys == []
    assert settings.worker_threads == Settings.model_fields["worker_threads"].default


def test_keys_never_appear_in_the_settings_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUSCULT_API_KEYS", KEY_B)
    assert KEY_B not in repr(Settings())


def test_a_short_api_key_is_refused_saying_how_long_keys_must_be(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("AUSCULT_API_KEYS", f"{KEY_A},short")
    with pytest.raises(ValidationError, match="API key 2 has 5 characters; keys need at least 16"):
        Settings()


def test_station_names_used_as_metric_fallbacks_are_refused() -> None:
    with pytest.raises(ValidationError, match="reserved"):
        Settings(stations=["press-1", "other"])


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("worker_threads", 0),
        ("pool_queue_limit", -1),
        ("max_body_bytes", 0),
        ("ws_buffer_bytes", 10),
    ],
)
def test_limits_out_of_range_are_refused(field: str, value: int) -> None:
    with pytest.raises(ValidationError, match=field):
        Settings.model_validate({field: value})
