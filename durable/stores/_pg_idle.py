"""Postgres connections kept between async runs, per event loop, and what a forked child must never touch."""

from __future__ import annotations

import os
import threading
import weakref
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError

if TYPE_CHECKING:
    import asyncio

    import psycopg

IDLE_PER_LOOP = 8  # async connections kept open per event loop between runs
orphans: list[Any] = []  # pools and connections a forked child inherited: never used, never finalized


def psycopg_modules() -> Any:
    """psycopg and psycopg_pool, imported on first use (or a `ConfigurationError` saying what to install)."""
    try:
        import psycopg
        import psycopg_pool
    except ImportError as exc:
        raise ConfigurationError(
            "PostgresStore needs psycopg 3 and its pool: pip install 'durable-exec[postgres]'"
        ) from exc
    return psycopg, psycopg_pool


class IdleConnections:
    """Async connections kept open between runs, each for the event loop it was last used on.

    A connection is reused only on its own loop. Those whose loop has closed are
    closed at the next take or give, by `close_all`, and at interpreter exit.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._idle: list[tuple[weakref.ref[asyncio.AbstractEventLoop], Any]] = []
        self._pid = os.getpid()
        # Closed with the store when it is garbage-collected, or at interpreter exit.
        weakref.finalize(self, _finish, self._idle, self._pid)

    async def connect(self, store: Any) -> psycopg.AsyncConnection[Any]:
        pg, _ = psycopg_modules()
        try:
            conn: psycopg.AsyncConnection[Any] = await pg.AsyncConnection.connect(
                store.dsn, autocommit=True, connect_timeout=max(1, int(store.connect_timeout))
            )
            return conn
        except pg.Error as exc:
            raise store._connect_error(exc) from exc

    def _sweep(self) -> None:
        """Under the lock: close the connections of closed loops (and drop a parent process's)."""
        if self._pid != os.getpid():
            orphans.append(self._idle[:])  # the parent's sockets: closing them here would close them there
            self._idle.clear()
            self._pid = os.getpid()
        keep = []
        for ref, conn in self._idle:
            loop = ref()
            if loop is None or loop.is_closed():
                conn.pgconn.finish()  # nothing is in flight on an idle connection: libpq closes it without a loop
            else:
                keep.append((ref, conn))
        self._idle[:] = keep

    async def take(self, store: Any) -> psycopg.AsyncConnection[Any]:
        import asyncio

        loop = asyncio.get_running_loop()
        with self._lock:
            self._sweep()
            for i in range(len(self._idle) - 1, -1, -1):
                if self._idle[i][0]() is loop:
                    conn = self._idle.pop(i)[1]
                    if not conn.closed:
                        return conn  # type: ignore[no-any-return]
        return await self.connect(store)

    async def give(self, conn: psycopg.AsyncConnection[Any]) -> None:
        import asyncio

        from psycopg.pq import TransactionStatus

        loop = asyncio.get_running_loop()
        reusable = not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE
        with self._lock:
            self._sweep()
            if reusable and sum(ref() is loop for ref, _ in self._idle) < IDLE_PER_LOOP:
                self._idle.append((weakref.ref(loop), conn))
                return
        await conn.close()

    def close_all(self) -> None:
        with self._lock:
            _finish(self._idle, self._pid)


def _finish(idle: list[tuple[Any, Any]], pid: int) -> None:
    if pid == os.getpid():
        for _, conn in idle:
            conn.pgconn.finish()
    idle.clear()
