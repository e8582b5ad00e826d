"""SQLiteStore's async path: one thread per store carries every async run's operations, committing them in groups.

An async run hands each store operation (an `_sqlite_ops` generator) to the store's `Carrier` and awaits
its result: one hop to the carrier's thread and back, whatever the operation. The carrier takes every
operation queued while it was busy and runs them in one ``BEGIN IMMEDIATE`` transaction, each write in a
savepoint of its own (one that fails rolls back alone), then commits once and only then resolves their
futures. So a thousand runs finishing tasks together share a handful of commits, each task's row is still
committed before its future resolves (durability "sync"), and however many runs are in flight the store
uses one thread and one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import sqlite3
import threading
from collections.abc import Callable, Generator
from dataclasses import dataclass
from typing import Any, TypeVar

T = TypeVar("T")
_BATCH = 512  # operations one transaction carries at most (a long transaction holds the write lock longer)


@dataclass(slots=True)
class _Request:
    gen: Generator[Any, Any, Any]
    write: bool
    atomic: bool  # one statement: atomic without a savepoint
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[Any]


class Carrier:
    """A thread with its own connection that runs async runs' operations, grouping their commits."""

    def __init__(self, connect: Callable[[], sqlite3.Connection], drive: Callable[..., Any],
                 on_error: Callable[[sqlite3.Error], BaseException]) -> None:  # fmt: skip
        self._connect = connect
        self._drive = drive  # runs one operation's generator on a connection (no transaction of its own)
        self._on_error = on_error
        self._queue: queue.SimpleQueue[_Request | None] = queue.SimpleQueue()
        self._pid = os.getpid()
        self._thread = threading.Thread(target=self._serve, name="durable-sqlite", daemon=True)
        self._thread.start()

    @property
    def alive(self) -> bool:
        return self._pid == os.getpid() and self._thread.is_alive()

    async def run(self, gen: Generator[Any, Any, T], *, write: bool, atomic: bool = False) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Request(gen, write, atomic, loop, future))
        return await future

    def stop(self) -> None:
        if self.alive:
            self._queue.put(None)

    # -- the carrier's thread ---------------------------------------------------------------------------

    def _serve(self) -> None:
        conn: sqlite3.Connection | None = None
        while True:
            first = self._queue.get()
            if first is None:
                break
            batch = [first]
            while len(batch) < _BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is None:
                    self._queue.put(None)  # stop after this batch
                    break
                batch.append(more)
            try:
                if conn is None:
                    conn = self._connect()
            except BaseException as exc:  # the journal cannot be opened: every operation says so
                _deliver(batch, [(None, exc)] * len(batch))
                continue
            self._carry(conn, batch)
        if conn is not None:
            conn.close()

    def _carry(self, conn: sqlite3.Connection, batch: list[_Request]) -> None:
        outcomes: list[tuple[Any, BaseException | None]] = []
        writes = any(r.write for r in batch)
        try:
            if writes:
                conn.execute("BEGIN IMMEDIATE")
            for request in batch:
                outcomes.append(self._one(conn, request, writes))
            if writes:
                conn.execute("COMMIT")
        except BaseException as exc:  # the transaction itself failed (locked past busy_timeout, disk full...)
            if conn.in_transaction:
                conn.rollback()
            outcomes = [(None, self._error(exc))] * len(batch)
        _deliver(batch, outcomes)

    def _one(
        self, conn: sqlite3.Connection, request: _Request, in_transaction: bool
    ) -> tuple[Any, BaseException | None]:
        """Run one operation in the group's transaction; a write that fails leaves no trace of itself."""
        savepoint = in_transaction and request.write and not request.atomic
        try:
            if savepoint:
                conn.execute("SAVEPOINT op")
            value = self._drive(conn, request.gen)
            if savepoint:
                conn.execute("RELEASE op")
            return value, None
        except Exception as exc:
            if savepoint:
                conn.execute("ROLLBACK TO op")
                conn.execute("RELEASE op")
            return None, self._error(exc)

    def _error(self, exc: BaseException) -> BaseException:
        """What an operation raises for ``exc``: sqlite3's errors as the store's, caused by them."""
        if not isinstance(exc, sqlite3.Error):
            return exc
        error = self._on_error(exc)
        error.__cause__ = exc
        return error


def _deliver(batch: list[_Request], outcomes: list[tuple[Any, BaseException | None]]) -> None:
    """Resolve the batch's futures on their loops: one wake-up per loop, not one per operation."""
    by_loop: dict[asyncio.AbstractEventLoop, list[tuple[asyncio.Future[Any], Any, BaseException | None]]] = {}
    for request, (value, error) in zip(batch, outcomes, strict=True):
        by_loop.setdefault(request.loop, []).append((request.future, value, error))
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is waiting any more
            loop.call_soon_threadsafe(_settle, settled)


def _settle(settled: list[tuple[asyncio.Future[Any], Any, BaseException | None]]) -> None:
    for future, value, error in settled:
        if future.done():  # its awaiter was cancelled: nobody wants the result
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)
