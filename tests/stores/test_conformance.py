"""The store interface's contract (`durable.conformance`), run against every backend durable ships (memory, SQLite,
Postgres, Redis), through both its blocking and async forms."""

from __future__ import annotations

from pathlib import Path

import pytest

from durable import MemoryStore, SQLiteStore, Store
from durable.testing import StoreConformance


class TestMemoryStore(StoreConformance):
    def open_store(self, request: pytest.FixtureRequest, lease_seconds: float) -> Store:
        return MemoryStore(lease_seconds=lease_seconds)


class TestSQLiteStore(StoreConformance):
    def open_store(self, request: pytest.FixtureRequest, lease_seconds: float) -> Store:
        tmp_path: Path = request.getfixturevalue("tmp_path")
        return SQLiteStore(tmp_path / "journal.db", lease_seconds=lease_seconds)


class TestPostgresStore(StoreConformance):
    pytestmark = pytest.mark.postgres

    def open_store(self, request: pytest.FixtureRequest, lease_seconds: float) -> Store:
        from durable import PostgresStore

        dsn, schema = request.getfixturevalue("pg_schema")  # skips without a server (fails under CI=true)
        return PostgresStore(dsn, schema=schema, lease_seconds=lease_seconds)


class TestRedisStore(StoreConformance):
    pytestmark = pytest.mark.redis

    def open_store(self, request: pytest.FixtureRequest, lease_seconds: float) -> Store:
        from durable import RedisStore

        url, prefix = request.getfixturevalue("redis_prefix")  # skips without a server (fails under CI=true)
        return RedisStore(url, prefix=prefix, lease_seconds=lease_seconds)
