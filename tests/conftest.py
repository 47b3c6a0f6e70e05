"""Fixtures shared by every test module: the database backends (see tests/backends.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from backends import BACKENDS, PgServer, new_target, shared_pg


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    yield shared_pg()  # stopped when the test process exits


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_db(backend: str, tmp_path: Path, request: pytest.FixtureRequest) -> Callable[..., str]:
    """make_db(name="box") → a new, empty database target on this test's backend: a file
    path in tmp_path (SQLite), or the URL of a fresh database (PostgreSQL). Nothing is
    initialised: the test runs `init` as a user would."""

    def make(name: str = "box") -> str:
        return new_target(backend, str(tmp_path), name)

    return make
