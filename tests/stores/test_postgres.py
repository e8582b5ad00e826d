"""What only the Postgres store has: URLs, the database's clock, migrations under a lock, lost connections.

Its share of the store contract is in test_conformance.py; these run against the real server too.
"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from typing import Any
from unittest import mock

import psycopg
import pytest

from durable import ConfigurationError, PostgresStore, SchemaVersionError, StoreError, ThreadBusyError
from durable._urls import store_from_url
from durable.stores import JournalRow, NewRun
from durable.stores._base import ThreadFilter
from durable.stores._pg_ops import SCHEMA_VERSION

Schema = tuple[str, str]


def url_of(dsn: str, schema: str, **query: Any) -> str:
    base = dsn if "://" in dsn else "postgresql://postgres@127.0.0.1:5432/test"
    return base + ("&" if "?" in base else "?") + "&".join(f"{k}={v}" for k, v in {"schema": schema, **query}.items())


def backends(dsn: str, application_name: str) -> list[int]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchall()
    return [r[0] for r in rows]


def terminate(dsn: str, application_name: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s "
            "AND pid <> pg_backend_pid()",
            (application_name,),
        ).fetchall()
    return len(rows)


def test_a_url_selects_the_store_with_its_options(pg_schema: Schema) -> None:
    dsn, schema = pg_schema
    store = store_from_url(url_of(dsn, schema, lease_seconds=2.5, application_name="durable-url-test"))
    assert isinstance(store, PostgresStore)
    assert (store.schema, store.lease_seconds) == (schema, 2.5)
    assert "schema=" not in store.dsn and "application_name=durable-url-test" in store.dsn  # the rest is libpq's
    with store:
        assert store.get_thread("t") is None
        assert backends(dsn, "durable-url-test"), "the store's connections carry the libpq options"
    with pytest.raises(ConfigurationError, match="lease_seconds"):
        store_from_url(url_of(dsn, schema, lease_seconds="soon"))


def test_configuration_errors_and_a_redacted_repr() -> None:
    for bad in ("", "   "):
        with pytest.raises(ConfigurationError, match="connection string"):
            PostgresStore(bad)
    with pytest.raises(ConfigurationError, match="schema"):
        PostgresStore("postgresql://x/y", schema="")
    with pytest.raises(ConfigurationError, match="pool_size"):
        PostgresStore("postgresql://x/y", pool_size=0)
    assert "s3cret" not in repr(PostgresStore("postgresql://bob:s3cret@db.example:5432/app"))
    assert "s3cret" not in repr(PostgresStore("host=db user=bob password=s3cret"))


def test_an_unreachable_server_is_a_clear_store_error() -> None:
    store = PostgresStore("postgresql://postgres@127.0.0.1:1/test", connect_timeout=2)
    with pytest.raises(StoreError, match=r"cannot reach the Postgres journal at postgresql://postgres@127\.0\.0\.1:1"):
        store.get_thread("t")


def test_without_psycopg_the_error_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    store = PostgresStore("postgresql://postgres@127.0.0.1:5432/test", schema="never_created")
    with pytest.raises(ConfigurationError, match=r"pip install 'durable-exec\[postgres\]'"):
        store.get_thread("t")


def test_leases_follow_the_database_clock_not_ours(pg_schema: Schema) -> None:
    """A client whose clock runs an hour ahead still sees another's fresh lease as live (and vice versa)."""
    dsn, schema = pg_schema
    with PostgresStore(dsn, schema=schema, lease_seconds=30) as store:
        store.claim("t", "me", None, NewRun("ep", b"Pin", None, 1, b"n" * 16))
        ahead = time.time() + 3600
        with mock.patch("durable.stores._pg_ops.time.time", return_value=ahead):
            with pytest.raises(ThreadBusyError) as busy:
                store.claim("t", "you")
            assert 25 < busy.value.expires_in <= 30  # the seconds the database says are left
            thread = store.get_thread("t")
            assert thread is not None and thread.lease_expires is not None
            assert 25 < thread.lease_expires - ahead <= 30  # expressed in this (skewed) process's clock
        assert store.reserve("worker", ["ep"], 10) == []


def test_concurrent_first_opens_migrate_once(pg_schema: Schema) -> None:
    """Processes (here threads, each with its own store) opening a new schema together create it once."""
    dsn, schema = pg_schema
    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def open_one() -> None:
        try:
            barrier.wait()
            with PostgresStore(dsn, schema=schema) as store:
                store.get_thread("t")
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    with psycopg.connect(dsn) as conn:
        versions = conn.execute(f'SELECT version FROM "{schema}".durable_schema ORDER BY version').fetchall()
    assert versions == [(v,) for v in range(1, SCHEMA_VERSION + 1)]  # each migration applied once


def test_a_newer_schema_is_refused(pg_schema: Schema) -> None:
    dsn, schema = pg_schema
    PostgresStore(dsn, schema=schema).get_thread("t")
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f'INSERT INTO "{schema}".durable_schema (version) VALUES (99)')
    with pytest.raises(SchemaVersionError, match="upgrade durable-exec"):
        PostgresStore(dsn, schema=schema).get_thread("t")


def test_reads_and_appends_survive_terminated_connections(pg_schema: Schema) -> None:
    """An administrator (or a failover) kills the store's connections: the next operations reconnect."""
    dsn, schema = pg_schema
    name = f"durable-kill-{schema[-6:]}"
    with store_from_url(url_of(dsn, schema, application_name=name)) as store:
        lease = store.claim("t", "me", None, NewRun("ep", b"Pin", None, 1, b"n" * 16))
        now = time.time()
        store.append(lease, 1, [JournalRow("0", 1, "task", 0, None, b"Pa", now, now)])
        assert terminate(dsn, name) >= 1
        store.append(lease, 1, [JournalRow("1", 1, "task", 0, None, b"Pb", now, now)])
        assert terminate(dsn, name) >= 1
        assert [r.key for r in store.load_journal(lease.tid, 1)] == ["0", "1"]
        assert terminate(dsn, name) >= 1
        assert store.renew(lease) is True


def test_an_async_session_reconnects_too(pg_schema: Schema) -> None:
    dsn, schema = pg_schema
    name = f"durable-akill-{schema[-6:]}"
    store = store_from_url(url_of(dsn, schema, application_name=name))

    async def scenario() -> list[str]:
        async with store.asession() as session:
            lease = await session.claim("t", "me", None, NewRun("ep", b"Pin", None, 1, b"n" * 16))
            now = time.time()
            await session.append(lease, 1, [JournalRow("0", 1, "task", 0, None, b"Pa", now, now)])
            assert terminate(dsn, name) >= 1
            await session.append(lease, 1, [JournalRow("1", 1, "task", 0, None, b"Pb", now, now)])
            return [r.key for r in await session.load_journal(lease.tid, 1)]

    try:
        assert asyncio.run(scenario()) == ["0", "1"]
    finally:
        store.close()


def test_a_claim_on_a_dead_connection_fails_cleanly(pg_schema: Schema) -> None:
    """A claim is not retried blindly (its commit may have landed): StoreError, and the thread stays consistent."""
    dsn, schema = pg_schema
    name = f"durable-claim-{schema[-6:]}"
    with store_from_url(url_of(dsn, schema, application_name=name)) as store:
        store.get_thread("x")  # open the pool
        terminate(dsn, name)
        try:
            lease = store.claim("t", "me", None, NewRun("ep", b"Pin", None, 1, b"n" * 16))
        except StoreError as exc:
            assert "cannot reach" in str(exc) or "failed" in str(exc)
            # The next attempt has a fresh connection.
            lease = store.claim("t", "me", None, NewRun("ep", b"Pin", None, 1, b"n" * 16))
        assert lease.thread.run is not None and lease.thread.run.run_id == 1


def test_a_key_value_prefix_search_is_an_index_range_scan(pg_schema: Schema) -> None:
    """The memory's prefix search is a range condition on the (namespace, key) index (the column compares as "C")."""
    from durable.stores import _pg_kv, _pg_ops

    dsn, schema = pg_schema
    with PostgresStore(dsn, schema=schema) as store:
        store.kv_put("users\x1f1\x1f", "k", b"v", None)
    stmt = next(_pg_kv.search(_pg_ops.SQL(schema), "users\x1f", False))
    with psycopg.connect(dsn) as conn:
        conn.execute("SET enable_seqscan = off")  # a table this small would be read whole otherwise
        plan = "\n".join(row[0] for row in conn.execute("EXPLAIN " + stmt.sql, stmt.params))
    assert "durable_kv_key" in plan and "Index Cond: ((namespace >= " in plan, plan


def test_a_schema_of_the_previous_version_is_migrated_and_keeps_its_threads(pg_schema: Schema) -> None:
    """A schema an older durable made (before the latest run was marked) is migrated on first use: its threads stay
    (their last run marked latest, the run before not), and listing works; the result equals a fresh schema's tables
    and indexes."""
    from durable.stores import _pg_ops

    dsn, schema = pg_schema
    saved = _pg_ops.MIGRATIONS, _pg_ops.SCHEMA_VERSION
    _pg_ops.MIGRATIONS, _pg_ops.SCHEMA_VERSION = saved[0][:4], 4  # version 5 marks the latest run
    try:
        with PostgresStore(dsn, schema=schema) as old:
            old.get_thread("t")  # creates the old schema
    finally:
        _pg_ops.MIGRATIONS, _pg_ops.SCHEMA_VERSION = saved
    with psycopg.connect(dsn) as conn:  # the rows the older durable wrote: a thread of two runs
        (tid,) = conn.execute(
            f'INSERT INTO "{schema}".durable_threads (thread_id, last_run, nonce) VALUES (%s, 2, %s) RETURNING tid',
            ("t", b"n" * 16),
        ).fetchone()
        for run_id, status in ((1, "completed"), (2, "running")):
            conn.execute(
                f'INSERT INTO "{schema}".durable_runs (tid, run_id, entrypoint, status, input, started_at) '
                "VALUES (%s, %s, 'ep', %s, %s, %s)",
                (tid, run_id, status, b"Pin%d" % run_id, 1000.0 + run_id),
            )
    with PostgresStore(dsn, schema=schema) as store:
        thread = store.get_thread("t")
        assert thread is not None and thread.run is not None and thread.run.input == b"Pin2"
        [listed] = store.list_threads(ThreadFilter(limit=10))
        assert (listed.thread_id, listed.run_id, listed.status) == ("t", 2, "running")
    with psycopg.connect(dsn) as conn:
        marks = conn.execute(f'SELECT run_id, latest FROM "{schema}".durable_runs ORDER BY run_id').fetchall()
        assert marks == [(1, False), (2, True)]
    fresh = f"{schema}_fresh"
    try:
        with PostgresStore(dsn, schema=fresh) as store:
            store.get_thread("t")
        assert _tables(dsn, schema) == _tables(dsn, fresh)
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f'DROP SCHEMA IF EXISTS "{fresh}" CASCADE')


def _tables(dsn: str, schema: str) -> tuple[list[Any], list[Any]]:
    """A schema's columns and index definitions, without its name."""
    with psycopg.connect(dsn) as conn:
        columns = conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default, collation_name, is_identity "
            "FROM information_schema.columns WHERE table_schema = %s ORDER BY table_name, ordinal_position",
            (schema,),
        ).fetchall()
        indexes = conn.execute(
            "SELECT indexname, indexdef FROM pg_indexes WHERE schemaname = %s ORDER BY indexname", (schema,)
        ).fetchall()
    return columns, [(name, sql.replace(f" {schema}.", " S.")) for name, sql in indexes]
