"""The SQLite schema's migrations, checked generically over `MIGRATIONS` so the tests hold as steps are appended.

An older `durable` is simulated by running the store's own `migrate()` with only the first ``k`` migrations
(what that release shipped); a schema is compared through ``sqlite_master`` and the table, index and
foreign-key pragmas.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

import pytest

from durable import SQLiteStore, StoreError, entrypoint, task
from durable.stores import _sqlite_ops as ops

MIGRATIONS = ops.MIGRATIONS
SCHEMA_VERSION = ops.SCHEMA_VERSION
REPO_ROOT = Path(__file__).resolve().parents[2]
USER_TABLE = "app_notes"  # a table of the application's own, sharing the journal's file


@contextmanager
def release_with(migrations: tuple[tuple[str, ...], ...]) -> Iterator[None]:
    """Make this process's `migrate()` the one of a `durable` that shipped ``migrations``."""
    saved = ops.MIGRATIONS, ops.SCHEMA_VERSION
    ops.MIGRATIONS, ops.SCHEMA_VERSION = migrations, len(migrations)
    try:
        yield
    finally:
        ops.MIGRATIONS, ops.SCHEMA_VERSION = saved


def open_as(path: Path, migrations: tuple[tuple[str, ...], ...]) -> None:
    """Open ``path`` as a `durable` shipping ``migrations`` would (its pragmas, WAL, then migrate) and close it."""
    with release_with(migrations):
        store = SQLiteStore(path)
        try:
            store._connect()
        finally:
            store.close()


def versions(path: Path) -> list[int]:
    with closing(sqlite3.connect(path)) as conn:
        return [v for (v,) in conn.execute("SELECT version FROM durable_schema ORDER BY version")]


def _norm(sql: str | None) -> str | None:
    return None if sql is None else " ".join(sql.split())


def schema_of(path: Path, *, skip: tuple[str, ...] = (USER_TABLE,)) -> dict[str, Any]:
    """Everything that defines the file's schema: sqlite_master (less root pages), and per table its columns,
    indexes (with their columns) and foreign keys."""
    with closing(sqlite3.connect(path)) as conn:
        master = sorted(
            (kind, name, table, _norm(sql))
            for kind, name, table, sql in conn.execute("SELECT type, name, tbl_name, sql FROM sqlite_master")
            if table not in skip
        )
        tables: dict[str, Any] = {}
        for kind, name, _, _ in master:
            if kind != "table":
                continue
            indexes = sorted(
                (row[1], row[2], row[3], row[4], conn.execute(f"PRAGMA index_xinfo('{row[1]}')").fetchall())
                for row in conn.execute(f"PRAGMA index_list('{name}')")
            )
            tables[name] = {
                "columns": conn.execute(f"PRAGMA table_xinfo('{name}')").fetchall(),
                "indexes": indexes,
                "foreign_keys": conn.execute(f"PRAGMA foreign_key_list('{name}')").fetchall(),
            }
    return {"master": master, "tables": tables}


def fresh_schema(tmp_path: Path) -> dict[str, Any]:
    path = tmp_path / "fresh.db"
    store = SQLiteStore(path)
    assert store.get_thread("x") is None
    store.close()
    assert versions(path) == list(range(1, SCHEMA_VERSION + 1))
    return schema_of(path)


def _value(declared: str, column: str, i: int) -> Any:
    affinity = declared.upper()
    if "INT" in affinity:
        return 1000 + i
    if "REAL" in affinity or "FLOA" in affinity or "DOUB" in affinity:
        return 1.5 + i
    if "BLOB" in affinity or not affinity:
        return f"{column}-{i}".encode()
    return f"{column}-{i}"


def fill_durable_tables(path: Path, rows: int = 2) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """Put ``rows`` synthetic rows (every column set, by its declared type) in each durable table; what was written."""
    written: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
    with closing(sqlite3.connect(path)) as conn, conn:
        for (table,) in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'durable%' AND name != 'durable_schema'"
        ).fetchall():
            columns = [(c[1], c[2]) for c in conn.execute(f"PRAGMA table_info('{table}')")]
            names = [name for name, _ in columns]
            values = [tuple(_value(declared, name, i) for name, declared in columns) for i in range(rows)]
            marks = ", ".join("?" * len(names))
            conn.executemany(f"INSERT INTO {table} ({', '.join(names)}) VALUES ({marks})", values)
            written[table] = (names, sorted(values))
    return written


def add_user_table(path: Path) -> list[tuple[Any, ...]]:
    rows = [(1, "keep me"), (2, "and me")]
    with closing(sqlite3.connect(path)) as conn, conn:
        conn.execute(f"CREATE TABLE {USER_TABLE} (id INTEGER PRIMARY KEY, note TEXT)")
        conn.executemany(f"INSERT INTO {USER_TABLE} VALUES (?, ?)", rows)
    return rows


def test_fresh_schema_equals_the_migrations_applied_one_release_at_a_time(tmp_path: Path) -> None:
    """Opening a file with each release in turn (0, 1, ..., current) gives exactly the schema of a new file."""
    stepped = tmp_path / "stepped.db"
    for version in range(SCHEMA_VERSION + 1):
        open_as(stepped, MIGRATIONS[:version])
        assert versions(stepped) == list(range(1, version + 1))
    assert schema_of(stepped) == fresh_schema(tmp_path)


@pytest.mark.parametrize("from_version", range(SCHEMA_VERSION))
def test_older_schema_is_migrated_on_open_and_keeps_its_rows(tmp_path: Path, from_version: int) -> None:
    """A file at an older version is migrated when a store first uses it; its rows and the app's own table survive."""
    path = tmp_path / "old.db"
    if from_version == 0:
        user_rows = add_user_table(path)  # a plain SQLite file durable has never touched
        written = {}
    else:
        open_as(path, MIGRATIONS[:from_version])
        user_rows = add_user_table(path)
        written = fill_durable_tables(path)
        assert written and all(values for _, values in written.values())
    store = SQLiteStore(path)
    assert store.get_thread("no such thread") is None
    store.close()

    assert versions(path) == list(range(1, SCHEMA_VERSION + 1))
    assert schema_of(path) == fresh_schema(tmp_path)
    with closing(sqlite3.connect(path)) as conn:
        assert conn.execute(f"SELECT id, note FROM {USER_TABLE} ORDER BY id").fetchall() == user_rows
        for table, (names, values) in written.items():
            assert sorted(conn.execute(f"SELECT {', '.join(names)} FROM {table}").fetchall()) == values, table
            # A column added since takes its declared default (or NULL) in the old rows, but for the mark of
            # each thread's latest run, which the migration sets where it belongs.
            for column in conn.execute(f"PRAGMA table_info('{table}')").fetchall():
                if column[1] in names:
                    continue
                if (table, column[1]) == ("durable_runs", "latest"):
                    marks = conn.execute(
                        "SELECT r.latest, r.run_id = t.last_run FROM durable_runs r JOIN durable_threads t USING (tid)"
                    ).fetchall()
                    assert marks and all(latest == expected for latest, expected in marks), marks
                    continue
                default = None if column[4] is None else conn.execute(f"SELECT {column[4]}").fetchone()[0]
                found = {v for (v,) in conn.execute(f"SELECT {column[1]} FROM {table}")}
                assert found == {default}, (table, column[1], found)


def _journal(path: Path) -> Any:
    store = SQLiteStore(path)

    @task(name="double")
    def double(x: int) -> int:
        return x * 2

    @task(name="flaky")
    def flaky(x: int) -> int:
        if x > 4:
            raise RuntimeError("down")
        return x

    @entrypoint(checkpointer=store, name="flow")
    def flow(n: int) -> list[int]:
        return [flaky(double(i).result()).result() for i in range(n)]

    return store, flow


def test_a_journal_written_today_survives_the_next_migration(tmp_path: Path) -> None:
    """A migration appended later is applied on open to a populated journal, whose runs still replay and resume,
    and whose key-value rows (memory, cache) read back."""
    path = tmp_path / "j.db"
    store, flow = _journal(path)
    assert flow.invoke(3, thread_id="done") == [0, 2, 4]
    with pytest.raises(RuntimeError, match="down"):
        flow.invoke(5, thread_id="failed")
    store.kv_put("users\x1f1\x1f", "prefs", b'{"theme":"dark"}', None)
    store.kv_put("users\x1f1\x1f", "later", b"{}", 3600)
    store.close()

    future = (
        *MIGRATIONS,
        (
            "ALTER TABLE durable_journal ADD COLUMN note TEXT",
            "CREATE INDEX durable_runs_by_status ON durable_runs (status)",
        ),
    )
    with release_with(future):
        store, flow = _journal(path)
        assert flow.invoke(None, thread_id="done") == [0, 2, 4]
        state = flow.get_state(thread_id="failed")
        assert state.status == "failed" and len(state.entries) == 8  # 4 doubles, 3 flaky ok, 1 flaky error
        with pytest.raises(RuntimeError, match="down"):
            flow.invoke(None, thread_id="failed")
        assert [(r.key, r.value) for r in store.kv_search("users\x1f", False)] == [
            ("prefs", b'{"theme":"dark"}'),
            ("later", b"{}"),
        ]
        store.close()
        assert versions(path) == list(range(1, SCHEMA_VERSION + 2))
        with closing(sqlite3.connect(path)) as conn:
            assert "note" in {c[1] for c in conn.execute("PRAGMA table_info(durable_journal)")}
            assert conn.execute("SELECT COUNT(*) FROM durable_journal WHERE note IS NOT NULL").fetchone() == (0,)


def test_a_failing_migration_changes_nothing(tmp_path: Path) -> None:
    """A migration step that fails rolls back whole: StoreError (cause: sqlite3's error), the file at its version."""
    path = tmp_path / "j.db"
    store, flow = _journal(path)
    assert flow.invoke(2, thread_id="t") == [0, 2]
    store.close()
    before = schema_of(path)

    broken = (*MIGRATIONS, ("CREATE TABLE durable_half_done (x)", "ALTER TABLE durable_no_such_table ADD COLUMN y"))
    with release_with(broken):
        store, flow = _journal(path)
        with pytest.raises(StoreError) as info:
            flow.invoke(None, thread_id="t")
        assert isinstance(info.value.__cause__, sqlite3.OperationalError)
        assert "durable_no_such_table" in str(info.value)
        store.close()
    assert schema_of(path) == before
    assert versions(path) == list(range(1, SCHEMA_VERSION + 1))

    store, flow = _journal(path)
    assert flow.invoke(None, thread_id="t") == [0, 2]
    store.close()


# A process that waits for the go file, then opens the journal (the first use migrates it).
_OPENER = """
import os, sys, time
from pathlib import Path

db, ready, go = sys.argv[1:4]
from durable import SQLiteStore

Path(ready).touch()
deadline = time.monotonic() + 60
while not os.path.exists(go):
    if time.monotonic() > deadline:
        sys.exit("the go file never appeared")
    time.sleep(0.0005)
store = SQLiteStore(db)
assert store.get_thread("x") is None
store.close()
"""


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DURABLE_")}
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p)
    return env


@pytest.mark.parametrize("from_version", [0, SCHEMA_VERSION - 1], ids=["new-file", "previous-version"])
@pytest.mark.subprocess
def test_concurrent_first_use_by_processes_migrates_once(tmp_path: Path, from_version: int) -> None:
    """Processes opening one unmigrated file at the same instant apply each migration exactly once, without errors."""
    processes, rounds = 4, 3
    for r in range(rounds):
        path = tmp_path / f"j{r}.db"
        if from_version:
            open_as(path, MIGRATIONS[:from_version])
        go = tmp_path / f"go{r}"
        ready = [tmp_path / f"ready{r}-{i}" for i in range(processes)]
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", _OPENER, str(path), str(ready[i]), str(go)],
                env=_env(),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
            )
            for i in range(processes)
        ]
        try:
            deadline = time.monotonic() + 60
            while not all(p.exists() for p in ready):
                assert time.monotonic() < deadline, "the processes did not start"
                assert all(proc.poll() is None for proc in procs), [proc.communicate() for proc in procs]
                time.sleep(0.005)
            go.touch()
            results = [proc.communicate(timeout=60) for proc in procs]
        finally:
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()
        assert [proc.returncode for proc in procs] == [0] * processes, results
        with closing(sqlite3.connect(path)) as conn:
            assert conn.execute("SELECT COUNT(*) FROM durable_schema").fetchone() == (SCHEMA_VERSION,)
        assert versions(path) == list(range(1, SCHEMA_VERSION + 1))
    assert schema_of(path) == fresh_schema(tmp_path)
