"""Postgres connections for async runs, per event loop and bounded, and what a forked child must never touch.

An async run borrows a connection for each store operation, not for the whole run, so a thousand runs in
flight share the few connections a loop may open (``PostgresStore(pool_size=...)``): an operation that
finds them all busy waits for one instead of opening more and hitting the server's ``max_connections``.
"""

from __future__ import annotations

import os
import threading
import weakref
from typing import TYPE_CHECKING, Any

from ..errors import ConfigurationError

if TYPE_CHECKING:
    import asyncio

    import psycopg

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

    def __init__(self, size: int = 10) -> None:
        self.size = size  # connections open at once per event loop, busy or idle
        self._lock = threading.Lock()
        self._idle: list[tuple[weakref.ref[asyncio.AbstractEventLoop], Any]] = []
        self._slots: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
            weakref.WeakKeyDictionary()
        )
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

    def _slot(self, loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
        import asyncio

        with self._lock:
            slots = self._slots.get(loop)
            if slots is None:
                slots = self._slots[loop] = asyncio.Semaphore(self.size)
            return slots

    async def take(self, store: Any) -> psycopg.AsyncConnection[Any]:
        """A connection for one operation, once one of the loop's ``size`` slots is free (`give` it back)."""
        import asyncio

        loop = asyncio.get_running_loop()
        slots = self._slot(loop)
        await slots.acquire()
        try:
            with self._lock:
                self._sweep()
                for i in range(len(self._idle) - 1, -1, -1):
                    if self._idle[i][0]() is loop:
                        conn = self._idle.pop(i)[1]
                        if not conn.closed:
                            return conn  # type: ignore[no-any-return]
            return await self.connect(store)
        except BaseException:
            slots.release()
            raise

    async def give(self, conn: psycopg.AsyncConnection[Any]) -> None:
        """Return a connection `take` gave (kept for the loop's next operation if it is still usable)."""
        import asyncio

        from psycopg.pq import TransactionStatus

        loop = asyncio.get_running_loop()
        try:
            reusable = not conn.closed and conn.info.transaction_status == TransactionStatus.IDLE
            with self._lock:
                self._sweep()
                if reusable:
                    self._idle.append((weakref.ref(loop), conn))
                    return
            await conn.close()
        finally:
            self._slot(loop).release()

    def close_all(self) -> None:
        with self._lock:
            _finish(self._idle, self._pid)


def _finish(idle: list[tuple[Any, Any]], pid: int) -> None:
    if pid == os.getpid():
        for _, conn in idle:
            conn.pgconn.finish()
    idle.clear()
