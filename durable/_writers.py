"""How recorded outcomes reach the store: one writer per durability mode.

- ``"sync"``: `GroupCommitWriter`. A task's row is committed before its future
  resolves. Rows recorded while a commit is in flight wait for the next one,
  which takes them all: parallel tasks finishing together share a transaction.
- ``"async"``: `BackgroundWriter`. A thread commits rows in batches while the
  run goes on; the run's end waits for it.
- ``"exit"``: `ExitWriter`. Rows stay in memory until the run finishes, pauses
  or fails, and are then written in one transaction, before the run's outcome.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Literal

from ._futures import pool
from .stores._base import AsyncSession, JournalRow, Lease, Store

if TYPE_CHECKING:
    import asyncio
    from concurrent.futures import Future

Durability = Literal["sync", "async", "exit"]
DURABILITY_MODES = ("sync", "async", "exit")


class Writer:
    """Takes rows from task bodies (any thread, or the run's event loop)."""

    def write(self, row: JournalRow) -> None:
        raise NotImplementedError

    async def awrite(self, row: JournalRow) -> None:
        self.write(row)

    def post(self, row: JournalRow) -> None:
        """Take a row without waiting for any I/O (from the run's event loop): committed in order with the
        next write, or by the run's end (`close` returns it). The modes that do not wait already do that."""
        self.write(row)

    def close(self) -> list[JournalRow]:
        """Stop taking rows; return those the run's end must still write."""
        return []


class _Batch:
    """The rows one commit carries: each writer whose row is in it waits until it is `done`, then shares its `error`."""

    __slots__ = ("done", "error")

    def __init__(self) -> None:
        self.done = False
        self.error: BaseException | None = None

    def settle(self, error: BaseException | None) -> None:
        self.error = error
        self.done = True

    def check(self) -> None:
        if self.error is not None:
            raise self.error


class GroupCommitWriter(Writer):
    """Durability "sync": commit before returning, sharing commits between concurrent writers.

    A writer queues its row, then takes its turn at the commit lock (a thread's, or the event loop's); if the
    commit before its turn did not carry its row already, it commits everything queued (`_take`). `write` and
    `awrite` differ only in the lock they wait on and whether the store is called or awaited.
    """

    def __init__(self, store: Store, lease: Lease, run_id: int, session: AsyncSession | None) -> None:
        self._store, self._lease, self._run_id, self._session = store, lease, run_id, session
        self._queue_lock = threading.Lock()
        self._commit_lock = threading.Lock()
        self._pending: list[JournalRow] = []
        self._batch = _Batch()
        self._async_lock: asyncio.Lock | None = None

    def _enqueue(self, row: JournalRow) -> _Batch:
        with self._queue_lock:
            self._pending.append(row)
            return self._batch

    def _take(self) -> tuple[list[JournalRow], _Batch]:
        """Every queued row, for one commit, and the batch its writers wait on."""
        with self._queue_lock:
            rows, batch = self._pending, self._batch
            self._pending, self._batch = [], _Batch()
        return rows, batch

    def write(self, row: JournalRow) -> None:
        if self._commit_lock.acquire(blocking=False):
            # No commit in flight (always so in a sequential workflow): commit this row and
            # whatever others queued while we got here.
            try:
                if not self._pending:  # unlocked read: a row queued meanwhile is committed by its writer
                    self._store.append(self._lease, self._run_id, (row,))
                    return
                mine = self._enqueue(row)
                self._commit()
            finally:
                self._commit_lock.release()
        else:
            mine = self._enqueue(row)
            with self._commit_lock:
                # Whoever holds the lock commits everything queued, so by the time we get it,
                # the commit before us may have taken our row already.
                if not mine.done:
                    self._commit()
        mine.check()

    def _commit(self) -> None:
        rows, batch = self._take()
        try:
            self._store.append(self._lease, self._run_id, rows)
        except BaseException as exc:
            batch.settle(exc)
        else:
            batch.settle(None)

    async def awrite(self, row: JournalRow) -> None:
        if self._session is None:
            self.write(row)
            return
        if self._async_lock is None:
            import asyncio

            self._async_lock = asyncio.Lock()
        mine = self._enqueue(row)
        async with self._async_lock:
            if not mine.done:
                rows, batch = self._take()
                try:
                    await self._session.append(self._lease, self._run_id, rows)
                except BaseException as exc:
                    batch.settle(exc)
                else:
                    batch.settle(None)
        mine.check()

    def post(self, row: JournalRow) -> None:
        self._enqueue(row)  # the next commit takes it

    def close(self) -> list[JournalRow]:
        rows, batch = self._take()  # rows posted since the last commit: the run's end writes them
        batch.settle(None)
        return rows


class ExitWriter(Writer):
    """Durability "exit": keep rows until the run ends."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rows: list[JournalRow] = []

    def write(self, row: JournalRow) -> None:
        with self._lock:
            self._rows.append(row)

    def close(self) -> list[JournalRow]:
        with self._lock:
            rows, self._rows = self._rows, []
        return rows


class BackgroundWriter(Writer):
    """Durability "async": rows are committed in batches by a flush on the shared task pool.

    At most one flush is scheduled at a time; rows recorded while it commits wait for the
    next one. Borrowing a pool thread instead of starting one per run keeps short runs cheap.
    """

    def __init__(self, store: Store, lease: Lease, run_id: int) -> None:
        self._store, self._lease, self._run_id = store, lease, run_id
        self._lock = threading.Lock()
        self._rows: list[JournalRow] = []
        self._flushing: Future[None] | None = None
        self._error: BaseException | None = None

    def write(self, row: JournalRow) -> None:
        with self._lock:
            if self._error is not None:
                raise self._error
            self._rows.append(row)
            if self._flushing is None:
                self._flushing = pool().submit(self._flush)

    def _flush(self) -> None:
        while True:
            with self._lock:
                rows, self._rows = self._rows, []
                if not rows or self._error is not None:
                    self._flushing = None
                    return
            try:
                self._store.append(self._lease, self._run_id, rows)
            except BaseException as exc:  # surfaced by write() and close()
                with self._lock:
                    self._error = exc

    def close(self) -> list[JournalRow]:
        while True:
            with self._lock:
                flushing = self._flushing
                if flushing is None:
                    if self._error is not None:
                        raise self._error
                    rows, self._rows = self._rows, []  # normally none: each write schedules a flush
                    return rows
            flushing.result()


def make_writer(
    durability: Durability, store: Store, lease: Lease, run_id: int, session: AsyncSession | None
) -> Writer:
    if durability == "sync":
        return GroupCommitWriter(store, lease, run_id, session)
    if durability == "exit":
        return ExitWriter()
    return BackgroundWriter(store, lease, run_id)
