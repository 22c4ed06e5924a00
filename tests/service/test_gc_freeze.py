"""What the process holds leaves the collector's full collections, garbage does not, and what a
reload replaced is freed even when it was frozen; a served app freezes once its models are
loaded unless AUSCULT_GC_FREEZE is off."""

from __future__ import annotations

import gc
import weakref
from pathlib import Path

from service.config import Settings
from service.gc_freeze import freeze_held_objects
from tests.server import running_server
from tests.service.clips import small_audio_bundle


class _Node:
    """An object the collector tracks, which can refer to itself (a cycle)."""

    def __init__(self) -> None:
        self.other: _Node | None = None


def _in_a_cycle() -> weakref.ref[_Node]:
    node = _Node()
    node.other = node
    return weakref.ref(node)


def _tracked(held: object) -> bool:
    """Whether a full collection would walk `held` (frozen objects are not in any generation)."""
    return any(candidate is held for candidate in gc.get_objects())


def test_held_objects_are_frozen_and_garbage_is_collected_first() -> None:
    held = _Node()
    garbage = _in_a_cycle()
    try:
        freeze_held_objects()
        assert garbage() is None
        assert gc.get_freeze_count() > 0
        assert not _tracked(held)
    finally:
        gc.unfreeze()
    assert _tracked(held)


def test_a_cycle_frozen_while_held_is_freed_by_the_next_freeze() -> None:
    gc.freeze()  # what the first load froze
    try:
        node = _Node()
        node.other = node
        replaced = weakref.ref(node)
        gc.freeze()
        del node  # a reload replaces it
        gc.collect()
        assert replaced() is not None  # out of the collector's sight while frozen
        freeze_held_objects()
        assert replaced() is None
    finally:
        gc.unfreeze()


def _freeze_count_once_served(tmp_path: Path, **overrides: bool) -> int:
    small_audio_bundle(tmp_path / "models" / "fan", name="fan")
    settings = Settings(models_dir=tmp_path / "models", reload_poll_seconds=0, **overrides)
    gc.unfreeze()
    try:
        with running_server(settings):  # ready once the models folder is loaded
            return gc.get_freeze_count()
    finally:
        gc.unfreeze()


def test_a_served_app_freezes_once_its_models_are_loaded(tmp_path: Path) -> None:
    assert _freeze_count_once_served(tmp_path) > 0


def test_no_freeze_when_switched_off(tmp_path: Path) -> None:
    assert _freeze_count_once_served(tmp_path, gc_freeze=False) == 0
