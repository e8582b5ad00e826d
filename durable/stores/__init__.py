"""Journal stores: one interface (`Store`), several backends."""

from ._base import AsyncSession, JournalRow, Lease, RunOutcome, RunRow, Store, ThreadRow
from .memory import MemoryStore
from .sqlite import SQLiteStore

__all__ = [
    "AsyncSession",
    "JournalRow",
    "Lease",
    "MemoryStore",
    "RunOutcome",
    "RunRow",
    "SQLiteStore",
    "Store",
    "ThreadRow",
]
