"""The event store tests run against SQLite and, where its server binaries are installed, a
real PostgreSQL cluster started for the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from service.events.database import default_database_url, open_migrated
from tests.service.events.postgres import postgres_cluster, server_binaries


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    binaries = server_binaries()
    if binaries is None:
        pytest.skip("PostgreSQL's server is not installed: scripts/install-test-tools adds it")
    with postgres_cluster(binaries) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty, migrated event database of each kind."""
    if request.param == "sqlite":
        yield default_database_url(tmp_path / "state")
        return
    url: str = request.getfixturevalue("postgres_url")
    engine = open_migrated(url)
    _empty(engine)
    engine.dispose()
    yield url


def _empty(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM events"))
