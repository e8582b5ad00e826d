"""Journal stores: one interface (`Store`), several backends."""

from ._base import AsyncSession, JournalRow, Lease, NewRun, RunOutcome, RunRow, Store, ThreadRow
from .memory import MemoryStore
from .postgres import PostgresStore  # imports psycopg (an optional extra) only when used
from .sqlite import SQLiteStore

__all__ = [
    "AsyncSession",
    "JournalRow",
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
