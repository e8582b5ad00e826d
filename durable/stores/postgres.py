"""The store for many processes on many machines: one Postgres database, shared through psycopg 3.

The SQL lives in `_pg_ops` as generators, driven here by a blocking runner on
connections from a ``psycopg_pool.ConnectionPool`` and by an async runner on
``psycopg.AsyncConnection``s, so the two paths run the same statements and the
blocking path never spins an event loop.

A connection that breaks mid-operation (the server restarted, an administrator
ran ``pg_terminate_backend``) is replaced and the operation retried when that is
safe: reads, renewals, releases, and journal inserts (an insert whose commit may
or may not have landed is retried, and a duplicate of the very same row counts
as done). A claim or a run's finish is not retried: its error reaches the
caller as `StoreError`, and the run stays resumable.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import AsyncIterator, Callable, Generator, Iterator, Sequence
from contextlib import asynccontextmanager, contextmanager
from typing import TYPE_CHECKING, Any, TypeVar

from ..errors import ConfigurationError, LeaseLostError, StoreError, UsageError
from . import _pg_kv as kv
from . import _pg_ops as ops
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
from ._pg_dsn import checked_dsn
from ._pg_dsn import redact as _redact
from ._pg_idle import IdleConnections, orphans, psycopg_modules

if TYPE_CHECKING:
    import psycopg
    import psycopg_pool

T = TypeVar("T")
Gen = Generator[ops.Stmt, Any, T]

_ATTEMPTS = 3  # tries of a retryable operation whose connection broke


class PostgresStore(Store):
    """Journal in a Postgres database, shared by every process that opens the same ``dsn`` and ``schema``.

    With ``read_only=True`` the schema must exist at this version (nothing is created or migrated:
    `JournalNotFoundError` otherwise) and the server refuses every write; the operator's read-only
    commands open journals so.

    ``dsn`` is a libpq connection string or URL (``postgresql://user@host:5432/db``); a URL's query
    may also give ``schema`` and ``lease_seconds`` (as ``checkpointer=`` URLs do), the rest going to libpq.
    The tables live in ``schema`` (created if missing; ``public`` by default) and are created or
    migrated on first use, under an advisory lock so concurrent workers migrate
    once. Leases use the database's clock. ``pool_size`` bounds the connections
    open at once: the blocking path's pool, and each event loop's for async runs
    (which borrow one for each store operation, so any number of runs in flight
    share them: an operation waits for a free one). ``secret`` and
    ``max_result_bytes`` are as for `SQLiteStore`.
    """

    def __init__(
        self,
        dsn: str,
        *,
        schema: str | None = None,
        lease_seconds: float | None = None,
        secret: Any = None,
        max_result_bytes: int | None = None,
        pool_size: int = 10,
        connect_timeout: float = 10.0,
        read_only: bool = False,
    ) -> None:
        dsn, schema, lease_seconds = checked_dsn(dsn, schema, lease_seconds)
        if pool_size < 1:
            raise ConfigurationError(f"pool_size={pool_size!r}: use 1 or more")
        self.dsn = dsn
        self.schema = schema
        self.lease_seconds = lease_seconds
        self.secret = secret
        self.max_result_bytes = max_result_bytes
        self.pool_size = pool_size
        self.connect_timeout = connect_timeout
        self.read_only = read_only
        self._sql = ops.SQL(schema)
        self._lock = threading.Lock()
        self._pool: psycopg_pool.ConnectionPool[Any] | None = None
        self._pid = 0
        self._migrated = False
        self._idle = IdleConnections(pool_size)

    def __repr__(self) -> str:
        return f"PostgresStore({_redact(self.dsn, self.dsn)!r}, schema={self.schema!r})"

    def same_database(self, other: Store) -> bool:
        """The same schema of the same database on the same server (as the DSNs name them: host, port, database),
        whoever connects and however."""
        return isinstance(other, PostgresStore) and _where(other) == _where(self)

    # -- connections -------------------------------------------------------------------------

    def _connect_error(self, exc: BaseException) -> StoreError:
        where, why = _redact(self.dsn, self.dsn), _redact(exc, self.dsn).strip()
        return StoreError(f"cannot reach the Postgres journal at {where}: {why}".strip())

    def _get_pool(self) -> psycopg_pool.ConnectionPool[Any]:
        pool = self._pool
        if pool is not None and self._pid == os.getpid():
            return pool
        with self._lock:
            if self._pool is not None and self._pid != os.getpid():
                # Inherited across a fork: its threads are gone and its sockets are the parent's.
                orphans.append(self._pool)
                self._pool = None
            if self._pool is None:
                psycopg, psycopg_pool = psycopg_modules()
                if not self._migrated:
                    # One plain connection first: its error says why the server cannot be reached,
                    # where a pool only times out.
                    try:
                        timeout = max(1, int(self.connect_timeout))
                        with psycopg.connect(self.dsn, connect_timeout=timeout) as conn, conn.transaction():
                            if self.read_only:
                                conn.execute("SET TRANSACTION READ ONLY")
                                where = f"schema {self.schema!r} of {_redact(self.dsn, self.dsn)}"
                                _drive(conn, ops.check_schema(self._sql, where))
                            else:
                                _drive(conn, ops.migrate(self._sql))
                    except psycopg.Error as exc:
                        raise self._connect_error(exc) from exc
                    self._migrated = True
                new = psycopg_pool.ConnectionPool(
                    self.dsn,
                    min_size=1,
                    max_size=self.pool_size,
                    kwargs={"autocommit": True},
                    # Read-only, the server refuses every write of the pool's connections, whatever runs on them.
                    configure=_read_only if self.read_only else None,
                    open=False,
                    name=f"durable-{self.schema}",
                    timeout=self.connect_timeout,
                )
                try:
                    new.open(wait=True, timeout=self.connect_timeout)
                except psycopg_pool.PoolTimeout as exc:
                    new.close()
                    raise self._connect_error(exc) from exc
                self._pool, self._pid = new, os.getpid()
            return self._pool

    def _run(self, make: Callable[[], Gen[T]], *, write: bool, retry: bool) -> T:
        psycopg, _ = psycopg_modules()
        pool = self._get_pool()
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                with pool.connection() as conn:
                    if not write:
                        return _drive(conn, make())
                    with conn.transaction():
                        return _drive(conn, make())
            except psycopg.Error as exc:
                if _broken(exc):
                    # One dead connection often means all of them (a restart, a failover): test the idle
                    # ones now rather than meet them one failed attempt at a time.
                    pool.check()
                    if retry and attempt < _ATTEMPTS:
                        continue
                raise _store_error(self, exc) from exc
        raise AssertionError("unreachable")

    def listen_for_work(self, wake: threading.Event) -> Callable[[], None] | None:
        """A thread LISTENing on the schema's channel sets ``wake`` when a run is left for a worker."""
        from ._listen import listen

        self._get_pool()  # the schema exists, and the server answers, before a listener relies on it
        psycopg, _ = psycopg_modules()
        channel = self._sql.channel

        @contextmanager
        def subscribe() -> Iterator[Callable[[float], bool]]:
            timeout = max(1, int(self.connect_timeout))
            with psycopg.connect(self.dsn, autocommit=True, connect_timeout=timeout) as conn:
                conn.execute(f'LISTEN "{channel}"')
                yield lambda seconds: any(True for _ in conn.notifies(timeout=seconds))

        return listen(channel, subscribe, (psycopg.Error,), wake)

    def close(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
            if pool is not None and self._pid == os.getpid():
                pool.close()
        self._idle.close_all()

    # -- the interface -----------------------------------------------------------------------

    def get_thread(self, thread_id: str) -> ThreadRow | None:
        return self._run(lambda: ops.get_thread(self._sql, thread_id), write=False, retry=True)

    def claim(self, thread_id: str, owner: str, steal_from: str | None = None, new_run: NewRun | None = None) -> Lease:
        q, lease = self._sql, self.lease_seconds
        return self._run(lambda: ops.claim(q, thread_id, owner, steal_from, new_run, lease), write=True, retry=False)

    def cancel_run(self, thread_id: str, run_id: int, outcome: RunOutcome) -> bool:
        q = self._sql
        return self._run(lambda: ops.cancel_run(q, thread_id, run_id, outcome), write=True, retry=False)

    def list_threads(self, where: ThreadFilter) -> list[ThreadSummary]:
        return self._run(lambda: ops.list_threads(self._sql, where), write=False, retry=True)

    def list_runs(self, thread_id: str) -> list[RunRow]:
        return self._run(lambda: ops.list_runs(self._sql, thread_id), write=False, retry=True)

    def delete_thread(self, thread_id: str) -> bool:
        return self._run(lambda: ops.delete_thread(self._sql, thread_id), write=True, retry=False)

    def prune(self, finished_before: float, statuses: Sequence[str], limit: int) -> list[str]:
        if not statuses or limit < 1:
            return []
        return self._run(lambda: ops.prune(self._sql, finished_before, statuses, limit), write=True, retry=False)

    def import_thread(
        self, thread_id: str, runs: Sequence[RunRow], journal: Sequence[tuple[int, JournalRow]], nonce: bytes | None
    ) -> None:
        self._run(lambda: ops.import_thread(self._sql, thread_id, runs, journal, nonce), write=True, retry=False)

    def rewrite_thread(
        self, thread: ThreadRow, nonce: bytes, runs: Sequence[RunRow], journal: Sequence[tuple[int, JournalRow]]
    ) -> bool:
        q = self._sql
        return self._run(lambda: ops.rewrite_thread(q, thread, nonce, runs, journal), write=True, retry=False)

    def reserve(self, owner: str, entrypoints: Sequence[str], limit: int, now: float | None = None) -> list[Lease]:
        q, lease, due = self._sql, self.lease_seconds, time.time() if now is None else now
        return self._run(lambda: ops.reserve(q, owner, entrypoints, limit, lease, due), write=True, retry=False)

    def renew(self, lease: Lease) -> bool:
        return self._run(lambda: ops.renew(self._sql, lease, self.lease_seconds), write=False, retry=True)

    def release(self, lease: Lease) -> None:
        self._run(lambda: ops.release(self._sql, lease), write=False, retry=True)

    def load_journal(self, tid: int, run_id: int) -> list[JournalRow]:
        return self._run(lambda: ops.load_journal(self._sql, tid, run_id), write=False, retry=True)

    def journal_head(self, tid: int, run_id: int, limit: int) -> tuple[list[JournalRow], bool]:
        return self._run(lambda: ops.journal_head(self._sql, tid, run_id, limit), write=False, retry=True)

    def journal_keys(self, tid: int, run_id: int, keys: Sequence[str]) -> list[JournalRow]:
        return self._run(lambda: ops.journal_keys(self._sql, tid, run_id, keys), write=False, retry=True)

    def append(self, lease: Lease, run_id: int, rows: Sequence[JournalRow]) -> None:
        if len(rows) == 1 and self._pool is not None and self._pid == os.getpid():
            # The hot path, one row per finished task: one statement on a pooled connection, without the
            # generator machinery. Any error takes the general path below, which retries and explains.
            params = (*ops.row_params(lease.tid, run_id, rows[0]), lease.tid, lease.fence, lease.owner)
            try:
                with self._pool.connection() as conn:
                    n = conn.execute(self._sql.append, params).rowcount
            except Exception as exc:
                tried = 1 if _broken(exc) else 0  # its commit may have landed before the connection broke
            else:
                if n != 1:
                    raise LeaseLostError(lease.thread_id)
                return
        else:
            tried = 0
        psycopg, _ = psycopg_modules()
        make, tries = _appender(self._sql, lease, run_id, rows, tried)
        try:
            self._run(make, write=len(rows) != 1, retry=True)
        except StoreError as exc:
            # A retry after a broken connection may find the first attempt's commit landed: the very same
            # rows are then recorded already, which is what was asked.
            duplicate = isinstance(exc.__cause__, psycopg.errors.UniqueViolation)
            if duplicate and tries[0] > 1 and self._recorded(lease.tid, run_id, rows):
                return
            raise

    def _recorded(self, tid: int, run_id: int, rows: Sequence[JournalRow]) -> bool:
        return _same(self.load_journal(tid, run_id), rows)

    def finish_run(self, lease: Lease, run_id: int, outcome: RunOutcome) -> None:
        self._run(lambda: ops.finish_run(self._sql, lease, run_id, outcome), write=True, retry=False)

    # Key-value rows: a put or a delete done twice is done once (a retry after a broken connection is safe);
    # a clear's count is not, so it is not retried.

    def kv_put(self, namespace: str, key: str, value: bytes, ttl_seconds: float | None) -> None:
        self._run(lambda: kv.put(self._sql, namespace, key, value, ttl_seconds), write=True, retry=True)

    def kv_get(self, namespace: str, key: str, refresh: bool) -> KVRow | None:
        return self._run(lambda: kv.get(self._sql, namespace, key, refresh), write=False, retry=True)

    def kv_touch(self, items: Sequence[tuple[str, str]]) -> None:
        if items:
            self._run(lambda: kv.touch(self._sql, items), write=True, retry=True)

    def kv_delete(self, namespace: str, key: str) -> None:
        self._run(lambda: kv.delete(self._sql, namespace, key), write=False, retry=True)

    def kv_search(self, prefix: str, refresh: bool) -> list[KVRow]:
        return self._run(lambda: kv.search(self._sql, prefix, refresh), write=False, retry=True)

    def kv_namespaces(self, prefix: str) -> list[str]:
        return self._run(lambda: kv.namespaces(self._sql, prefix), write=False, retry=True)

    def kv_clear(self, prefix: str) -> int:
        return self._run(lambda: kv.clear(self._sql, prefix), write=True, retry=False)

    @asynccontextmanager
    async def asession(self) -> AsyncIterator[AsyncSession]:
        if self.read_only:
            raise UsageError("a read-only PostgresStore serves the blocking API only (the operator's tools use it)")
        self._get_pool()  # migrates the schema once, with the blocking path's error reporting
        yield _AsyncPgSession(self)


class _AsyncPgSession:
    """The same operations as `PostgresStore`, each on a connection borrowed from the loop's for its duration."""

    def __init__(self, store: PostgresStore) -> None:
        self._store = store

    async def run(self, make: Callable[[], Gen[T]], *, write: bool, retry: bool) -> T:
        psycopg, _ = psycopg_modules()
        idle = self._store._idle
        for attempt in range(1, _ATTEMPTS + 1):
            conn = await idle.take(self._store)
            try:
                if not write:
                    return await _adrive(conn, make())
                async with conn.transaction():
                    return await _adrive(conn, make())
            except psycopg.Error as exc:
                if _broken(exc) or conn.broken:
                    await conn.close()  # `give` drops a closed connection; the next try takes another
                    if retry and attempt < _ATTEMPTS:
                        continue
                raise _store_error(self._store, exc) from exc
            finally:
                await idle.give(conn)
        raise AssertionError("unreachable")

    async def get_thread(self, thread_id: str) -> ThreadRow | None:
        return await self.run(lambda: ops.get_thread(self._store._sql, thread_id), write=False, retry=True)

    async def claim(
        self, thread_id: str, owner: str, steal_from: str | None = None, new_run: NewRun | None = None
    ) -> Lease:
        q, lease = self._store._sql, self._store.lease_seconds
        return await self.run(
            lambda: ops.claim(q, thread_id, owner, steal_from, new_run, lease), write=True, retry=False
        )

    async def release(self, lease: Lease) -> None:
        await self.run(lambda: ops.release(self._store._sql, lease), write=False, retry=True)

    async def load_journal(self, tid: int, run_id: int) -> list[JournalRow]:
        return await self.run(lambda: ops.load_journal(self._store._sql, tid, run_id), write=False, retry=True)

    async def journal_head(self, tid: int, run_id: int, limit: int) -> tuple[list[JournalRow], bool]:
        q = self._store._sql
        return await self.run(lambda: ops.journal_head(q, tid, run_id, limit), write=False, retry=True)

    async def journal_keys(self, tid: int, run_id: int, keys: Sequence[str]) -> list[JournalRow]:
        q = self._store._sql
        return await self.run(lambda: ops.journal_keys(q, tid, run_id, keys), write=False, retry=True)

    async def append(self, lease: Lease, run_id: int, rows: Sequence[JournalRow]) -> None:
        psycopg, _ = psycopg_modules()
        make, tries = _appender(self._store._sql, lease, run_id, rows, 0)
        try:
            await self.run(make, write=len(rows) != 1, retry=True)
        except StoreError as exc:
            duplicate = isinstance(exc.__cause__, psycopg.errors.UniqueViolation)
            if duplicate and tries[0] > 1 and _same(await self.load_journal(lease.tid, run_id), rows):
                return
            raise

    async def finish_run(self, lease: Lease, run_id: int, outcome: RunOutcome) -> None:
        await self.run(lambda: ops.finish_run(self._store._sql, lease, run_id, outcome), write=True, retry=False)


def _drive(conn: psycopg.Connection[Any], gen: Gen[T]) -> T:
    try:
        stmt = next(gen)
        while True:
            if stmt.many:
                with conn.cursor() as cur:
                    cur.executemany(stmt.sql, stmt.params)
                    result: Any = cur.rowcount
            else:
                cur = conn.execute(stmt.sql, stmt.params)
                fetch = stmt.fetch
                result = cur.fetchone() if fetch == "one" else cur.fetchall() if fetch == "all" else cur.rowcount
            stmt = gen.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


async def _adrive(conn: psycopg.AsyncConnection[Any], gen: Gen[T]) -> T:
    try:
        stmt = next(gen)
        while True:
            if stmt.many:
                async with conn.cursor() as cur:
                    await cur.executemany(stmt.sql, stmt.params)
                    result: Any = cur.rowcount
            else:
                cur = await conn.execute(stmt.sql, stmt.params)
                if stmt.fetch == "one":
                    result = await cur.fetchone()
                elif stmt.fetch == "all":
                    result = await cur.fetchall()
                else:
                    result = cur.rowcount
            stmt = gen.send(result)
    except StopIteration as stop:
        return stop.value  # type: ignore[no-any-return]


def _appender(
    q: ops.SQL, lease: Lease, run_id: int, rows: Sequence[JournalRow], tried: int
) -> tuple[Callable[[], Gen[None]], list[int]]:
    """The append operation, made afresh for each try, and the count of tries (``tried`` made already):
    after more than one, a duplicate of the very same rows means an earlier try's commit landed."""
    tries = [tried]

    def make() -> Gen[None]:
        tries[0] += 1
        return ops.append_one(q, lease, run_id, rows[0]) if len(rows) == 1 else ops.append(q, lease, run_id, rows)

    return make, tries


def _same(stored: list[JournalRow], rows: Sequence[JournalRow]) -> bool:
    """Whether every row is in the journal already, with the same task and payload."""
    by_slot = {(r.key, r.attempt): r for r in stored}
    return all(
        (s := by_slot.get((r.key, r.attempt))) is not None and (s.name, s.payload) == (r.name, r.payload) for r in rows
    )


def _read_only(conn: psycopg.Connection[Any]) -> None:
    conn.execute("SET default_transaction_read_only = on")


def _broken(exc: BaseException) -> bool:
    """Whether the error is the connection's (closed, terminated, unreachable), not the statement's."""
    import psycopg

    if isinstance(exc, psycopg.errors.AdminShutdown | psycopg.errors.ConnectionException):
        return True
    return isinstance(exc, psycopg.OperationalError) and getattr(exc, "sqlstate", None) is None


def _store_error(store: PostgresStore, exc: BaseException) -> StoreError:
    if _broken(exc):
        return store._connect_error(exc)
    return StoreError(f"Postgres journal {store!r} failed: {_redact(exc, store.dsn).strip()}")


__all__ = ["PostgresStore"]


def _where(store: PostgresStore) -> tuple[str, str, str, str]:
    """Where a store's journal is: its server, port, database and schema (libpq's defaults filled in from the
    environment as libpq would, so ``postgresql:///app`` and ``host=localhost dbname=app`` may compare equal only
    when they are)."""
    from psycopg.conninfo import conninfo_to_dict

    params = conninfo_to_dict(store.dsn)
    host = str(params.get("host") or os.environ.get("PGHOST") or "localhost")
    port = str(params.get("port") or os.environ.get("PGPORT") or "5432")
    user = os.environ.get("PGUSER") or os.environ.get("USER") or ""
    dbname = str(params.get("dbname") or os.environ.get("PGDATABASE") or params.get("user") or user)
    return host, port, dbname, store.schema
