"""Journal stores: one interface (`Store`), several backends."""

from typing import TYPE_CHECKING, Any

from ._base import AsyncSession, JournalRow, KVRow, Lease, NewRun, RunOutcome, RunRow, Store, ThreadRow
from .memory import MemoryStore
from .sqlite import SQLiteStore

if TYPE_CHECKING:
    from .postgres import PostgresStore


def __getattr__(name: str) -> Any:
    if name == "PostgresStore":  # imported on first use, like psycopg itself
        from .postgres import PostgresStore

        return PostgresStore
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "AsyncSession",
    "JournalRow",
    "KVRow",
    "Lease",
    "NewRun",
    "MemoryStore",
    "PostgresStore",
    "RunOutcome",
    "RunRow",
    "SQLiteStore",
    "Store",
    "ThreadRow",
]
