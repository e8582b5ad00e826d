"""The embedded default store: one SQLite file in WAL mode, shared safely by threads and processes.

Every operation is written once, as a generator that yields SQL statements and
receives their results (see `_ops`). A blocking runner drives it on the store's
``sqlite3`` connection; async runs hand it to the store's carrier thread, which
drives it on a connection of its own and commits many runs' operations together
(`_sqlite_async`), so the sync and async paths cannot drift apart. Writes run
in ``BEGIN IMMEDIATE`` transactions, so two processes never deadlock upgrading
a read lock, and wait up to ``busy_timeout`` for each other.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Generator, Sequence
from contextlib import asynccontextmanager
from functools import partial
from typing import TYPE_CHECKING, Any, Literal, TypeVar

from ..errors import (
    ConfigurationError,
    JournalNotFoundError,
    LeaseLostError,
    SchemaVersionError,
    StoreError,
    UsageError,
)
from . import _sqlite_kv as kv
from . import _sqlite_ops as ops
from ._base import (
    AsyncSession,
    JournalRow,
    KVRow,
    Lease,
    NewRun,
    RunOutcome,
    RunRow,
    Store,
    ThreadFilter,
    ThreadRow,
    ThreadSummary,
)
from ._sqlite_files import check_path, guard_file, refuse_truncated

if TYPE_CHECKING:
    from ._sqlite_async import Carrier  # imported when first used: it loads asyncio (~20 ms)

T = TypeVar("T")
PAGE_SIZE = 4096
Synchronous = Literal["OFF", "NORMAL", "FULL", "EXTRA"]


class SQLiteStore(Store):
    """Journal in a SQLite file.

    ``synchronous`` is SQLite's setting: with ``"NORMAL"`` (the default) a
    process crash loses nothing committed, but a power loss or OS crash may
    lose the last commits (never corrupting the file); ``"FULL"`` syncs the
    WAL on every commit so committed results survive a power loss too, at
    several times the cost per commit. ``busy_timeout`` is how long a writer
    waits for another process's transaction. ``secret`` signs the journal (see
    `durable.Keyring`) for entrypoints that do not set their own. A task result
    that serializes to more than ``max_result_bytes`` is refused with a
    `SerializationError` (the task's journal entry stays empty, so a resume runs it again).
    With ``read_only=True`` the file is opened read-only and must already be a journal of this
    schema version: nothing is created or migrated (`JournalNotFoundError` if it does not exist),
    and a write fails with `StoreError`. The operator's read-only commands open journals so.
    ``page_size`` is the page size of a new file (an existing one keeps its own): 4096 by default, so a
    megabyte-sized value is written in few pages; 1024 makes each small commit write a quarter of the
    bytes (about 4% fewer instructions per run of small tasks) and large values about 1.5x slower to write.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: Synchronous = "NORMAL",
        busy_timeout: float = 10.0,
        lease_seconds: float = 30.0,
        secret: Any = None,
        max_result_bytes: int | None = None,
        read_only: bool = False,
        page_size: int = PAGE_SIZE,
    ) -> None:
        path = os.fspath(path)
        if path == ":memory:" or path.startswith("file::memory:") or not path:
            raise ConfigurationError(
                "SQLiteStore needs a file path (its sync and async connections must share one "
                "database); use MemoryStore() for an in-memory journal"
            )
        check_path(path)
        sync = str(synchronous).upper()
        if sync not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ConfigurationError(f"synchronous={synchronous!r} is not a SQLite setting: use 'NORMAL' or 'FULL'")
        if page_size not in (512, 1024, 2048, 4096, 8192, 16384, 32768, 65536):
            raise ConfigurationError(f"page_size={page_size!r}: use a power of two from 512 to 65536 (bytes)")
        self.page_size = page_size
        self.path = check_path(os.path.abspath(path))
        self.synchronous = sync
        self.busy_timeout = busy_timeout
        self.lease_seconds = lease_seconds
        self.secret = secret
        self.max_result_bytes = max_result_bytes
        self.read_only = read_only
        self._lock = threading.Lock()
        self._conn: sqlite3.Connection | None = None
        self._pid = 0
        self._warned = False
        self._carrier: Carrier | None = None

    def __repr__(self) -> str:
        return f"SQLiteStore({self.path!r}, synchronous={self.synchronous!r})"

    def same_database(self, other: Store) -> bool:
        """The same file (through any path or link to it), whatever the two stores' settings."""
        return isinstance(other, SQLiteStore) and os.path.realpath(other.path) == os.path.realpath(self.path)

    def backup(self, target: str | os.PathLike[str]) -> int:
        """Copy this journal into the new file ``target`` while it is in use (SQLite's online backup API: a
        consistent copy, the ``-wal`` file's commits included); returns its size in bytes. Never copy the
        ``.db`` file alone, nor delete its ``-wal``: commits not yet checkpointed live there."""
        from ._sqlite_backup import backup

        return backup(self.path, os.path.abspath(target))

    def restore(self, backup: str | os.PathLike[str]) -> None:
        """Replace this journal with the backup at ``backup`` (a file `backup` made). Refused while an executor
        holds a run here: stop the workers first."""
        from ._sqlite_backup import restore

        if self.read_only:
            raise ConfigurationError(f"{self.path!r} is opened read-only: restore into a writable store")
        if os.path.exists(self.path):
            self._refuse_held()
        self.close()
        restore(os.path.abspath(backup), self.path)

    def _refuse_held(self) -> None:
        from .._phases import phase_of
        from ._base import ThreadFilter

        now = time.time()
        for s in self.list_threads(ThreadFilter(status="running", limit=10_000)):
            if phase_of(s.status, s.owner, s.lease_expires, s.wake_at, s.error_text, now) == "running":
                raise ConfigurationError(
                    f"thread {s.thread_id!r} is being run by {s.owner} in {self.path!r}: stop the workers and "
                    f"applications using the journal, then restore (nothing was changed)"
                )

    # -- connections -------------------------------------------------------------------------

    def _pragmas(self) -> list[str]:
        return [
            f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}",
            # Only a new file takes it (older files keep theirs). 4 KB pages, SQLite's default, since schema 7:
            # a 10 MB value is written in 2,500 pages instead of 10,000 (on 1 KB pages its write took 1.5x the
            # raw floor's, now 1.0x: `benchmarks/run.py --only values`). The cost: a commit writes a 4 KB page
            # to the WAL where it wrote 1 KB, and a 10 KB value takes ~12 KB on disk instead of ~10.5 KB.
            f"PRAGMA page_size = {self.page_size}",
            f"PRAGMA synchronous = {self.synchronous}",
        ]

    def _wal_refused(self, mode: str) -> StoreError:
        return StoreError(
            f"SQLite journal {self.path!r} cannot use WAL mode (it stays in {mode!r} mode); "
            f"put it on a local filesystem"
        )

    def _guard_file(self) -> None:
        if guard_file(self.path, warn=not self._warned):
            self._warned = True

    def _connect(self) -> sqlite3.Connection:
        # A connection must not cross a fork: a child process opens its own.
        if self._conn is not None and self._pid == os.getpid():
            return self._conn
        if self.read_only:
            self._conn, self._pid = self._open_read_only(), os.getpid()
            return self._conn
        self._conn, self._pid = self._open(), os.getpid()
        return self._conn

    def _open(self) -> sqlite3.Connection:
        """A new read-write connection to the journal, in WAL mode, its schema migrated."""
        self._guard_file()
        try:
            refuse_truncated(self.path)
            conn = sqlite3.connect(self.path, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite journal {self.path!r}: {exc}") from exc
        try:
            for pragma in self._pragmas():
                conn.execute(pragma)
            # Switching a new file to WAL takes an exclusive lock, and SQLite reports "locked" at
            # once rather than waiting busy_timeout for it: when processes open one new file together,
            # all but one must retry.
            deadline = time.monotonic() + self.busy_timeout
            while (mode := _journal_mode(conn)) != "wal":
                try:
                    if conn.execute("PRAGMA journal_mode = WAL").fetchone()[0].lower() != "wal":
                        raise self._wal_refused(mode)
                except sqlite3.OperationalError as exc:
                    if "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                    time.sleep(0.005)
            _drive_sync(conn, ops.migrate(), write=True)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot open SQLite journal {self.path!r}: {exc}") from exc
            raise
        return conn

    def _open_read_only(self) -> sqlite3.Connection:
        if not os.path.isfile(self.path):
            raise JournalNotFoundError(repr(self.path))
        uri = "file:" + urllib.parse.quote(self.path) + "?mode=ro"
        try:
            conn = sqlite3.connect(
                uri, uri=True, timeout=self.busy_timeout, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open SQLite journal {self.path!r}: {exc}") from exc
        try:
            conn.execute(f"PRAGMA busy_timeout = {int(self.busy_timeout * 1000)}")
            _drive_sync(conn, ops.check_schema(repr(self.path)), write=False)
        except BaseException as exc:
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise StoreError(f"cannot read SQLite journal {self.path!r}: {exc}") from exc
            raise
        return conn

    def _run(self, gen: Generator[ops.Stmt, Any, T], *, write: bool) -> T:
        with self._lock:
            conn = self._connect()
            try:
                return _drive_sync(conn, gen, write=write)
            except sqlite3.Error as exc:
                raise _store_error(self.path, exc) from exc

    def close(self) -> None:
        with self._lock:
            if self._conn is not None and self._pid == os.getpid():
                self._conn.close()
            self._conn = None
            if self._carrier is not None:
                self._carrier.stop()
                self._carrier = None

    def _the_carrier(self) -> Carrier:
        """The thread that carries this store's async operations (one per store and process)."""
        carrier = self._carrier
        if carrier is None or not carrier.alive:
            with self._lock:
                carrier = self._carrier
                if carrier is None or not carrier.alive:
                    from ._sqlite_async import Carrier

                    carrier = self._carrier = Carrier(self._open, _drive_ops, partial(_store_error, self.path))
        return carrier

    # -- the interface -----------------------------------------------------------------------

    def get_thread(self, thread_id: str) -> ThreadRow | None:
        return self._run(ops.get_thread(thread_id), write=False)

    def claim(self, thread_id: str, owner: str, steal_from: str | None = None, new_run: NewRun | None = None) -> Lease:
        return self._run(ops.claim(thread_id, owner, steal_from, new_run, self.lease_seconds), write=True)

    def cancel_run(self, thread_id: str, run_id: int, outcome: RunOutcome) -> bool:
        return self._run(ops.cancel_run(thread_id, run_id, outcome), write=True)

    def list_threads(self, where: ThreadFilter) -> list[ThreadSummary]:
        return self._run(ops.list_threads(where), write=False)

    def list_runs(self, thread_id: str) -> list[RunRow]:
        return self._run(ops.list_runs(thread_id), write=False)

    def delete_thread(self, thread_id: str) -> bool:
        return self._run(ops.delete_thread(thread_id), write=True)

    def prune(self, finished_before: float, statuses: Sequence[str], limit: int) -> list[str]:
        if not statuses or limit < 1:
            return []
        return self._run(ops.prune(finished_before, statuses, limit), write=True)

    def import_thread(
        self, thread_id: str, runs: Sequence[RunRow], journal: Sequence[tuple[int, JournalRow]], nonce: bytes | None
    ) -> None:
        self._run(ops.import_thread(thread_id, runs, journal, nonce), write=True)

    def rewrite_thread(
        self, thread: ThreadRow, nonce: bytes, runs: Sequence[RunRow], journal: Sequence[tuple[int, JournalRow]]
    ) -> bool:
        return self._run(ops.rewrite_thread(thread, nonce, runs, journal), write=True)

    def reserve(self, owner: str, entrypoints: Sequence[str], limit: int, now: float | None = None) -> list[Lease]:
        if not entrypoints or limit < 1:
            return []
        return self._run(ops.reserve(owner, entrypoints, limit, self.lease_seconds, now), write=True)

    def renew(self, lease: Lease) -> bool:
        return self._run(ops.renew(lease, self.lease_seconds), write=False)

    def release(self, lease: Lease) -> None:
        self._run(ops.release(lease), write=False)

    def load_journal(self, tid: int, run_id: int) -> list[JournalRow]:
        return self._run(ops.load_journal(tid, run_id), write=False)

    def journal_head(self, tid: int, run_id: int, limit: int) -> tuple[list[JournalRow], bool]:
        return self._run(ops.journal_head(tid, run_id, limit), write=False)

    def journal_keys(self, tid: int, run_id: int, keys: Sequence[str]) -> list[JournalRow]:
        return self._run(ops.journal_keys(tid, run_id, keys), write=False)

    def append(self, lease: Lease, run_id: int, rows: Sequence[JournalRow]) -> None:
        if len(rows) != 1 or len(rows[0].payload) >= ops.SPILL:  # a large payload: two statements
            self._run(ops.append(lease, run_id, rows), write=True)
            return
        # The hot path, one row per finished task: one statement, atomic without an explicit
        # transaction, executed without the generator machinery.
        params = ops.append_params(lease, run_id, rows[0])
        with self._lock:
            conn = self._conn if self._conn is not None and self._pid == os.getpid() else self._connect()
            try:
                n = conn.execute(ops.APPEND_SQL, params).rowcount
            except sqlite3.Error as exc:
                raise _store_error(self.path, exc) from exc
        if n != 1:
            raise LeaseLostError(lease.thread_id)

    def finish_run(self, lease: Lease, run_id: int, outcome: RunOutcome) -> None:
        self._run(ops.finish_run(lease, run_id, outcome), write=True)

    def kv_put(self, namespace: str, key: str, value: bytes, ttl_seconds: float | None) -> None:
        self._run(kv.put(namespace, key, value, ttl_seconds), write=True)

    def kv_get(self, namespace: str, key: str, refresh: bool) -> KVRow | None:
        return self._run(kv.get(namespace, key, refresh), write=False)

    def kv_touch(self, items: Sequence[tuple[str, str]]) -> None:
        if items:
            self._run(kv.touch(items), write=True)

    def kv_delete(self, namespace: str, key: str) -> None:
        self._run(kv.delete(namespace, key), write=False)

    def kv_search(self, prefix: str, refresh: bool) -> list[KVRow]:
        return self._run(kv.search(prefix, refresh), write=False)

    def kv_namespaces(self, prefix: str) -> list[str]:
        return self._run(kv.namespaces(prefix), write=False)

    def kv_clear(self, prefix: str) -> int:
        return self._run(kv.clear(prefix), write=True)

    @asynccontextmanager
    async def asession(self) -> AsyncIterator[AsyncSession]:
        if self.read_only:
            raise UsageError("a read-only SQLiteStore serves the blocking API only (the operator's tools use it)")
        yield _AsyncSQLiteSession(self, self._the_carrier())


class _AsyncSQLiteSession:
    """The same operations as `SQLiteStore`, carried by the store's `Carrier` thread (one hop each)."""

    def __init__(self, store: SQLiteStore, carrier: Carrier) -> None:
        self._store = store
        self._carrier = carrier

    async def get_thread(self, thread_id: str) -> ThreadRow | None:
        return await self._carrier.run(ops.get_thread(thread_id), write=False)

    async def claim(
        self, thread_id: str, owner: str, steal_from: str | None = None, new_run: NewRun | None = None
    ) -> Lease:
        gen = ops.claim(thread_id, owner, steal_from, new_run, self._store.lease_seconds)
        return await self._carrier.run(gen, write=True)

    async def release(self, lease: Lease) -> None:
        await self._carrier.run(ops.release(lease), write=True, atomic=True)

    async def load_journal(self, tid: int, run_id: int) -> list[JournalRow]:
        return await self._carrier.run(ops.load_journal(tid, run_id), write=False)

    async def journal_head(self, tid: int, run_id: int, limit: int) -> tuple[list[JournalRow], bool]:
        return await self._carrier.run(ops.journal_head(tid, run_id, limit), write=False)

    async def journal_keys(self, tid: int, run_id: int, keys: Sequence[str]) -> list[JournalRow]:
        return await self._carrier.run(ops.journal_keys(tid, run_id, keys), write=False)

    async def append(self, lease: Lease, run_id: int, rows: Sequence[JournalRow]) -> None:
        if len(rows) == 1 and not ops.spills(rows[0]):  # the hot path: one statement, checking the lease
            await self._carrier.run(ops.append_one(lease, run_id, rows[0]), write=True, atomic=True)
        else:
            await self._carrier.run(ops.append(lease, run_id, rows), write=True)

    async def finish_run(self, lease: Lease, run_id: int, outcome: RunOutcome) -> None:
        await self._carrier.run(ops.finish_run(lease, run_id, outcome), write=True)


def _drive_ops(conn: sqlite3.Connection, gen: Generator[ops.Stmt, Any, T]) -> T:
    """Run an operation's statements on a connection, in whatever transaction the caller has open."""
    try:
        stmt = next(gen)
        while True:
            cur = conn.executemany(stmt.sql, stmt.params) if stmt.many else conn.execute(stmt.sql, stmt.params)
            stmt = gen.send(_fetch(cur, stmt.fetch))
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def _drive_sync(conn: sqlite3.Connection, gen: Generator[ops.Stmt, Any, T], *, write: bool) -> T:
    """`_drive_ops` in a transaction of its own when it writes (``BEGIN IMMEDIATE``: writers queue at the start)."""
    if write:
        conn.execute("BEGIN IMMEDIATE")
    try:
        value = _drive_ops(conn, gen)
    except BaseException:
        if write and conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    if write:
        conn.execute("COMMIT")
    return value


def _journal_mode(conn: sqlite3.Connection) -> str:
    return str(conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()


def _fetch(cur: sqlite3.Cursor, fetch: ops.Fetch) -> Any:
    if fetch == "one":
        return cur.fetchone()
    if fetch == "all":
        return cur.fetchall()
    if fetch == "lastrowid":
        return cur.lastrowid
    return cur.rowcount


def _store_error(path: str, exc: sqlite3.Error) -> StoreError:
    if isinstance(exc, sqlite3.OperationalError) and "locked" in str(exc):
        return StoreError(
            f"SQLite journal {path!r} stayed locked by another connection past busy_timeout; "
            f"raise SQLiteStore(busy_timeout=...) or look for a process holding a long transaction"
        )
    return StoreError(f"SQLite journal {path!r} failed: {exc}")


__all__ = ["SQLiteStore", "SchemaVersionError"]
