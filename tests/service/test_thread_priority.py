"""Work threads run below the event loop: a thread lowers its own priority and no other's, by
the increment asked and no further than the lowest priority; a server with the default settings
scores and writes evidence at 10 below its event loop, which keeps its own."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx

from service.config import Settings
from service.thread_priority import LOWEST_PRIORITY, lower_current_thread
from tests.server import running_server
from tests.service.clips import small_audio_bundle
from tests.service.priorities import linux_only, lowered, priority_of

pytestmark = linux_only


def _lowered_in_a_thread(increment: int) -> int:
    """The priority a fresh thread has after lowering itself by `increment`."""
    seen: list[int] = []

    def lower_and_look() -> None:
        lower_current_thread(increment)
        seen.append(priority_of())

    thread = threading.Thread(target=lower_and_look)
    thread.start()
    thread.join()
    return seen[0]


def test_a_thread_lowers_its_own_priority_and_no_other() -> None:
    base = priority_of()
    assert _lowered_in_a_thread(3) == lowered(base, 3)
    assert priority_of() == base


def test_the_priority_stops_at_the_lowest_and_0_leaves_it_alone() -> None:
    base = priority_of()
    assert _lowered_in_a_thread(LOWEST_PRIORITY + 5) == LOWEST_PRIORITY
    assert _lowered_in_a_thread(0) == base


def test_a_served_clip_is_scored_and_stored_below_the_event_loop(
    tmp_path: Path, normal_wav: bytes
) -> None:
    small_audio_bundle(tmp_path / "models" / "fan", name="fan")
    settings = Settings(
        models_dir=tmp_path / "models", state_dir=tmp_path / "state", reload_poll_seconds=0
    )
    assert settings.worker_threads_nice == 10
    base = priority_of()  # the server's threads start from this one's priority
    before = set(threading.enumerate())
    with running_server(settings) as live:
        response = httpx.post(
            f"{live.url}/v1/models/fan/score",
            content=normal_wav,
            headers={"Content-Type": "audio/wav"},
            timeout=30.0,
        )
        assert response.status_code == 200, response.text
        started = {
            thread.name: priority_of(thread) for thread in set(threading.enumerate()) - before
        }
    work = {name for name in started if name.startswith("auscult-score") or name == "event-writer"}
    assert "event-writer" in work, started
    assert any(name.startswith("auscult-score") for name in work), started
    assert {started[name] for name in work} == {lowered(base, 10)}, started
    # The event loop's thread and every other one the server started keep its priority.
    assert {started[name] for name in started.keys() - work} == {base}, started
