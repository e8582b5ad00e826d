"""Journal stores: one interface (`Store`), several backends."""

from ._base import AsyncSession, JournalRow, Lease, NewRun, RunOutcome, RunRow, Store, ThreadRow
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = [
    "AsyncSession",
    "JournalRow",
    "Lease",
    "NewRun",
    "MemoryStore",
    "RunOutcome",
    "RunRow",
    "SQLiteStore",
    "Store",
    "ThreadRow",
]
