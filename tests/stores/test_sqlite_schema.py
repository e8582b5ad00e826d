"""The SQLite store's own promises: WAL, its synchronous setting, a versioned schema, clear failures."""

from __future__ import annotations

import os
import sqlite3
import threading
from pathlib import Path

import pytest

from durable import ConfigurationError, SchemaVersionError, SQLiteStore, StoreError
from durable.stores._sqlite_ops import SCHEMA_VERSION


def pragma(store: SQLiteStore, name: str) -> object:
    store.get_thread("x")  # opens the connection
    assert store._conn is not None
    return store._conn.execute(f"PRAGMA {name}").fetchone()[0]


def test_wal_and_synchronous(tmp_path: Path) -> None:
    """The journal runs in WAL mode with the synchronous level asked for (NORMAL=1, FULL=2)."""
    normal = SQLiteStore(tmp_path / "a.db")
    full = SQLiteStore(tmp_path / "b.db", synchronous="FULL")
    assert pragma(normal, "journal_mode") == "wal"
    assert (pragma(normal, "synchronous"), pragma(full, "synchronous")) == (1, 2)
    normal.close()
    full.close()


def test_schema_version_table(tmp_path: Path) -> None:
    """A new file gets the current schema and a version row per migration applied."""
    store = SQLiteStore(tmp_path / "j.db")
    store.get_thread("x")
    store.close()
    with sqlite3.connect(tmp_path / "j.db") as conn:
        versions = [v for (v,) in conn.execute("SELECT version FROM durable_schema ORDER BY version")]
        tables = {n for (n,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert versions == list(range(1, SCHEMA_VERSION + 1))
    assert {"durable_threads", "durable_runs", "durable_journal"} <= tables


def test_concurrent_first_use_migrates_once(tmp_path: Path) -> None:
    """Eight stores opening one new file at once apply each migration exactly once."""
    path = tmp_path / "j.db"
    barrier = threading.Barrier(8)
    errors: list[BaseException] = []

    def open_store() -> None:
        store = SQLiteStore(path)
        barrier.wait(timeout=10)
        try:
            store.get_thread("x")
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)
        finally:
            store.close()

    workers = [threading.Thread(target=open_store) for _ in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    assert errors == []
    with sqlite3.connect(path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM durable_schema").fetchone()[0] == SCHEMA_VERSION


def test_newer_schema_is_refused(tmp_path: Path) -> None:
    """A journal written by a newer durable raises SchemaVersionError instead of being misread."""
    path = tmp_path / "j.db"
    SQLiteStore(path).get_thread("x")
    with sqlite3.connect(path) as conn:
        conn.execute("INSERT INTO durable_schema VALUES (?, 0)", (SCHEMA_VERSION + 1,))
    with pytest.raises(SchemaVersionError, match="upgrade"):
        SQLiteStore(path).get_thread("x")


def test_not_a_database_is_a_store_error(tmp_path: Path) -> None:
    """A file that is not SQLite raises StoreError (with the driver's error as cause), never 'unknown thread'."""
    path = tmp_path / "j.db"
    path.write_bytes(b"this is not a database" * 200)
    with pytest.raises(StoreError) as info:
        SQLiteStore(path).get_thread("x")
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)
    assert path.read_bytes() == b"this is not a database" * 200


@pytest.mark.parametrize("path", [":memory:", ""])
def test_in_memory_path_is_refused(path: str) -> None:
    """SQLite's :memory: cannot be shared by the sync and async connections: use MemoryStore."""
    with pytest.raises(ConfigurationError, match="MemoryStore"):
        SQLiteStore(path)


def test_unknown_synchronous_is_refused(tmp_path: Path) -> None:
    """A synchronous value SQLite does not know is a ConfigurationError, not a silent default."""
    with pytest.raises(ConfigurationError, match="NORMAL"):
        SQLiteStore(tmp_path / "j.db", synchronous="SOMETIMES")  # type: ignore[arg-type]


def test_new_files_use_4k_pages_and_old_files_keep_theirs(tmp_path: Path) -> None:
    """A new journal gets 4 KB pages (large values are written in few pages); an existing file keeps its own."""
    fresh = SQLiteStore(tmp_path / "new.db")
    assert pragma(fresh, "page_size") == 4096
    fresh.close()
    old_path = tmp_path / "old.db"
    with sqlite3.connect(old_path) as conn:
        conn.execute("PRAGMA page_size = 1024")
        conn.execute("CREATE TABLE unrelated (x)")
    old = SQLiteStore(old_path)
    assert pragma(old, "page_size") == 1024
    old.close()
    small = SQLiteStore(tmp_path / "small.db", page_size=1024)
    assert pragma(small, "page_size") == 1024
    small.close()
    with pytest.raises(ConfigurationError, match="power of two"):
        SQLiteStore(tmp_path / "odd.db", page_size=3000)


def test_a_large_payload_lives_out_of_the_journal_btree_and_goes_with_its_thread(tmp_path: Path) -> None:
    """A payload of SPILL bytes or more is kept in durable_blobs (the journal row keeps a reference), read back
    whole by every reader, rewritten by a resign, and deleted with its thread; smaller ones stay in the row."""
    from durable import Threads, entrypoint, task
    from durable.stores._sqlite_ops import SPILL

    store = SQLiteStore(tmp_path / "j.db")
    big_value = os.urandom(SPILL * 3)
    ran: list[str] = []

    @task
    def big() -> bytes:
        ran.append("big")
        return big_value

    @task
    def small() -> bytes:
        ran.append("small")
        return b"s" * 10

    @entrypoint(checkpointer=store)
    def flow(fail: bool) -> int:
        n = len(big().result()) + len(small().result())
        if fail:
            raise RuntimeError("after both tasks")
        return n

    with pytest.raises(RuntimeError):
        flow.invoke(True, thread_id="t")
    with sqlite3.connect(store.path) as conn:
        rows = dict(conn.execute("SELECT key, blob IS NOT NULL FROM durable_journal").fetchall())
        assert rows == {"0": 1, "1": 0}
        assert conn.execute("SELECT length(payload) FROM durable_journal WHERE key = '0'").fetchone() == (0,)
        (stored,) = conn.execute("SELECT length(bytes) FROM durable_blobs").fetchone()
        assert stored > SPILL * 3

    def values(thread_id: str) -> dict[str, bytes]:
        thread = store.get_thread(thread_id)
        assert thread is not None and thread.run is not None
        loaded = {r.key: r.payload for r in store.load_journal(thread.tid, thread.run.run_id)}
        by_keys = {r.key: r.payload for r in store.journal_keys(thread.tid, thread.run.run_id, ["0", "1", "2"])}
        assert loaded == by_keys
        return loaded

    first = values("t")
    assert big_value in first["0"] and len(first["1"]) < SPILL
    assert ran == ["big", "small"]
    ran.clear()
    with pytest.raises(RuntimeError):  # the resume replays both values (no body runs) and fails again
        flow.invoke(None, thread_id="t")
    assert ran == []
    Threads(store).import_bundle(Threads(store).export("t") | {"thread_id": "copy"})
    assert values("copy") == first
    key = b"k" * 32
    assert Threads(store, secret=key).resign(["t"], sign_unsigned=True).resigned == ("t",)
    signed = values("t")
    assert signed["0"] != first["0"] and big_value in signed["0"]
    with sqlite3.connect(store.path) as conn:  # the old blob went when its row was re-signed
        assert conn.execute("SELECT count(*) FROM durable_blobs").fetchone() == (2,)
    assert Threads(store).delete("t") and Threads(store).delete("copy")
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT count(*) FROM durable_blobs").fetchone() == (0,)
    store.close()


def test_a_key_value_prefix_search_is_an_index_range_scan(tmp_path: Path) -> None:
    """The memory's prefix search reads a range of the (namespace, key) index, not the whole table."""
    from durable.stores import _sqlite_kv

    store = SQLiteStore(tmp_path / "j.db")
    store.kv_put("users\x1f1\x1f", "k", b"v", None)
    stmt = next(_sqlite_kv.search("users\x1f", False))
    assert store._conn is not None
    plan = " ".join(row[-1] for row in store._conn.execute("EXPLAIN QUERY PLAN " + stmt.sql, stmt.params))
    store.close()
    assert "USING INDEX durable_kv_key (namespace>? AND namespace<?)" in plan, plan
