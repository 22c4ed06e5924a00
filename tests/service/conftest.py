"""Session-wide clips for the service tests (helpers in tests/service/clips.py)."""

from __future__ import annotations

import pytest

from tests.service.clips import clip


@pytest.fixture(scope="session")
def normal_wav() -> bytes:
    """3 s of generated normal machine hum as a 16 kHz PCM16 WAV."""
    return clip(3.0, seed=11)


@pytest.fixture(scope="session")
def anomalous_wav() -> bytes:
    """3 s of the hum with a whine and knocks, as a 16 kHz PCM16 WAV."""
    return clip(3.0, seed=12, anomalous=True)
