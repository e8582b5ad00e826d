"""durable: durable execution for plain Python functions.

Mark side effects with `task`, the workflow with `entrypoint`, and run it on a
thread with ``invoke``. Finished tasks are journaled; invoking the thread again
with ``None`` replays them from the journal and runs only the unfinished tail.
"""

import importlib
from typing import TYPE_CHECKING, Any

from ._api import Entrypoint, entrypoint
from ._caching import CachePolicy
from ._codec import Keyring
from ._context import TaskContext, task_context
from ._futures import TaskFuture
from ._interrupts import Command, GraphOutput, Interrupt, Interrupted, Send, interrupt
from ._patching import deprecate_patch, patched
from ._peek import SealedError, SealedValue
from ._retry import RetryPolicy
from ._runtime import Runtime, StreamWriter, get_config, get_runtime, get_store, get_stream_writer
from ._serde import JsonSerializer, PickleSerializer, ReplayedError, Serializer
from ._state import JournalEntry, PregelTask, ThreadState
from ._steps import asleep, now, random, sleep, uuid4
from ._task import Task, task
from .errors import (
    AnswerRejectedError,
    ArgumentsChangedError,
    ConfigurationError,
    DeadLetteredError,
    DurableError,
    EntrypointMismatchError,
    GraphRecursionError,
    IncompatibleJournalError,
    InsecureJournalWarning,
    IntegrityError,
    InterruptTimeoutError,
    InvalidNamespaceError,
    InvalidUpdateError,
    JournalNotFoundError,
    LeaseLostError,
    NonDeterminismError,
    NonRetryableError,
    RecordedValueError,
    ResumeError,
    RunCancelledError,
    SchemaVersionError,
    SerializationError,
    StoreError,
    TaskTimeoutError,
    ThreadBusyError,
    ThreadExistsError,
    ThreadNotFoundError,
    UnfinishedRunError,
    UsageError,
    VolatileJournalWarning,
)
from .stores import MemoryStore, SQLiteStore, Store

if TYPE_CHECKING:
    from ._admin import JournalDiff, ResignReport, ThreadPage, Threads
    from ._cache import Cache
    from ._check import Finding, check
    from ._dry import NextCall, ResumePlan
    from ._memory import Item, Memory, SearchItem
    from ._verify import ThreadCheck, verify
    from ._worker import Worker, WorkerStats
    from .stores.postgres import PostgresStore
    from .stores.redis import RedisStore

__version__ = "0.1.0"

# Imported on first use: most programs never start a worker or open Postgres.
_LAZY = {
    "Worker": "._worker",
    "WorkerStats": "._worker",
    "PostgresStore": ".stores.postgres",
    "RedisStore": ".stores.redis",
    "check": "._check",
    "Finding": "._check",
    "Threads": "._admin",
    "ThreadPage": "._admin",
    "JournalDiff": "._admin",
    "ResignReport": "._admin",
    "Memory": "._memory",  # json and datetime: only programs with a long-term memory need them
    "Item": "._memory",
    "SearchItem": "._memory",
    "Cache": "._cache",
    "ResumePlan": "._dry",
    "NextCall": "._dry",
    "verify": "._verify",
    "ThreadCheck": "._verify",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name], __name__), name)
        if isinstance(value, type):
            value.__module__ = "durable"
        globals()[name] = value
        return value
    raise AttributeError(f"module 'durable' has no attribute {name!r}")


__all__ = [
    "ArgumentsChangedError",
    "Cache",
    "CachePolicy",
    "Command",
    "ConfigurationError",
    "DeadLetteredError",
    "DurableError",
    "Entrypoint",
    "EntrypointMismatchError",
    "Finding",
    "GraphOutput",
    "GraphRecursionError",
    "IncompatibleJournalError",
    "InsecureJournalWarning",
    "IntegrityError",
    "Interrupt",
    "Interrupted",
    "InvalidNamespaceError",
    "InvalidUpdateError",
    "Item",
    "JournalDiff",
    "JournalNotFoundError",
    "JournalEntry",
    "JsonSerializer",
    "Keyring",
    "LeaseLostError",
    "Memory",
    "MemoryStore",
    "NextCall",
    "NonDeterminismError",
    "NonRetryableError",
    "PickleSerializer",
    "PostgresStore",
    "PregelTask",
    "RedisStore",
    "RecordedValueError",
    "ReplayedError",
    "ResignReport",
    "ResumeError",
    "ResumePlan",
    "RetryPolicy",
    "RunCancelledError",
    "Runtime",
    "SQLiteStore",
    "SchemaVersionError",
    "SealedError",
    "SealedValue",
    "SearchItem",
    "Send",
    "SerializationError",
    "Serializer",
    "Store",
    "StoreError",
    "StreamWriter",
    "Task",
    "TaskContext",
    "TaskFuture",
    "TaskTimeoutError",
    "AnswerRejectedError",
    "InterruptTimeoutError",
    "ThreadBusyError",
    "ThreadCheck",
    "ThreadExistsError",
    "ThreadNotFoundError",
    "ThreadPage",
    "ThreadState",
    "Threads",
    "UnfinishedRunError",
    "UsageError",
    "VolatileJournalWarning",
    "Worker",
    "WorkerStats",
    "asleep",
    "check",
    "deprecate_patch",
    "entrypoint",
    "get_config",
    "get_runtime",
    "get_store",
    "get_stream_writer",
    "interrupt",
    "now",
    "patched",
    "random",
    "sleep",
    "task",
    "task_context",
    "uuid4",
    "verify",
]

# Show the public path in reprs and tracebacks (durable.TaskFuture, not durable._futures.TaskFuture).
for _name in __all__:
    _obj = globals().get(_name)
    if isinstance(_obj, type) and _obj.__module__.startswith("durable."):
        _obj.__module__ = "durable"
del _name, _obj
