"""Journal stores: one interface (`Store`), several backends, found by a URL's scheme (`register_scheme`, or the
``durable.stores`` entry-point group of an installed package)."""

from typing import TYPE_CHECKING, Any

from ._base import AsyncSession, JournalRow, KVRow, Lease, NewRun, RunOutcome, RunRow, Store, ThreadRow
from .memory import MemoryStore
from .sqlite import SQLiteStore

if TYPE_CHECKING:
    from .._urls import register_scheme
    from .postgres import PostgresStore
    from .redis import RedisStore


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":  # imported on first use, like psycopg itself
        from .postgres import PostgresStore

        return PostgresStore
    if name == "RedisStore":  # imported on first use, like redis-py itself
        from .redis import RedisStore

        return RedisStore
    if name == "register_scheme":  # it lives with the URLs it opens (which import this package)
        from .._urls import register_scheme

        return register_scheme
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AsyncSession",
    "JournalRow",
    "KVRow",
    "Lease",
    "NewRun",
    "MemoryStore",
    "PostgresStore",
    "RedisStore",
    "RunOutcome",
    "RunRow",
    "SQLiteStore",
    "Store",
    "ThreadRow",
    "register_scheme",
]
