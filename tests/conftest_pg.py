"""PostgreSQL fixtures: register with ``pytest_plugins = ["tests.conftest_pg"]``.

``postgres_server`` is the base URL of a real server (see tests/pg.py);
``postgres_url`` gives each test its own empty schema on it.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.pg import PostgresUnavailable, acquire_server, isolated_schema, release_server


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    try:
        url = acquire_server()
    except PostgresUnavailable as exc:
        pytest.fail(f"PostgreSQL is required for these tests: {exc}", pytrace=False)
    try:
        yield url
    finally:
        release_server()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    with isolated_schema(postgres_server) as url:
        yield url
