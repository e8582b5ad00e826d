"""The replay core: pure decisions, no I/O.

Given what the store returned, it decides what an invocation means (start a
new run, resume one, or return a finished value) and, for each call, whether
the journal already holds its outcome. The drivers in `_engine` carry the
decisions out against a store; nothing here touches a database, a thread or
an event loop.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, Literal, TypeVar

from .errors import (
    ArgumentsChangedError,
    NonDeterminismError,
    ResumeError,
    ThreadNotFoundError,
    UnfinishedRunError,
)
from .stores._base import ERROR, RETRY, JournalRow, ThreadRow

V = TypeVar("V")
S = TypeVar("S")

OnChangedArgs = Literal["raise", "warn", "rerun"]
Plan = Literal["new", "resume", "finished", "paused", "answer"]
InputKind = Literal["new", "none", "command"]


@dataclass(frozen=True, slots=True)
class Final(Generic[V, S]):
    """Return ``entrypoint.final(value=..., save=...)`` to return ``value`` but hand ``save``
    to the next run's ``previous`` parameter."""

    value: V
    save: S


def plan(thread_id: str, thread: ThreadRow | None, given: InputKind) -> Plan:
    """What an invocation with new input, ``None`` or a `Command` means for the thread as it is now.

    - new input: a new run if the thread is unknown or finished, else `UnfinishedRunError`;
    - ``None``: resume the unfinished run, return a finished one's value, or (paused) its
      interrupts again; `ThreadNotFoundError` for an unknown thread;
    - a `Command`: answer the paused run's interrupts (`ResumeError` if it is not paused).
    """
    run = thread.run if thread is not None else None
    if given == "new":
        if run is None or run.status == "completed":
            return "new"
        raise UnfinishedRunError(thread_id, run.run_id, run.status, run.entrypoint)
    if run is None:
        raise ThreadNotFoundError(thread_id)
    if given == "none":
        return {"completed": "finished", "interrupted": "paused"}.get(run.status, "resume")  # type: ignore[return-value]
    # A run whose answering executor died is "running" with its interrupts still recorded.
    if run.status != "interrupted" and not (run.status == "running" and run.interrupts is not None):
        raise ResumeError(
            f"thread {thread_id!r} has no pending interrupt to answer (its run is {run.status!r}): "
            + ("resume it with invoke(None, ...)" if run.status != "completed" else "start a new run with new input")
        )
    return "answer"


def latest_rows(rows: Iterable[JournalRow]) -> dict[str, JournalRow]:
    """Each key's row with the highest attempt: what the call at that key ended with (so far)."""
    latest: dict[str, JournalRow] = {}
    for row in rows:
        seen = latest.get(row.key)
        if seen is None or row.attempt > seen.attempt:
            latest[row.key] = row
    return latest


# A resume reads up to HEAD rows of the journal in one range scan (~0.5 µs a row): a journal that short is replayed
# from them, as a whole. A longer one is read WINDOW calls at a time by key (~2-3 µs a key, one index seek each), so
# memory stays bounded and the body starts at once whatever the journal's length.
HEAD = 4096
WINDOW = 256


class Replay:
    """The journal of one run, answering "is this call recorded?".

    Given ``rows``, it holds the journal whole. Given ``fetch`` (a store's `journal_keys` for the run), it
    reads the journal as the run needs it: a call not known yet reads the rows of the next `WINDOW` calls
    of its body (``"7"`` reads ``"7"``..``"262"``; ``"3.0"``, a task's first call, those of that task), so
    a replay of a million calls holds a window of them, not all of them, and the body starts at once.
    A window's keys without rows are calls the journal does not have. Each row is let go once its call has
    looked it up (a call looks up its key once).

    It also keeps which keys' errors make a run fail. ``retry_keys`` are the
    keys whose recorded error failed the previous attempt: on resume those tasks
    run again (a transient outage recovers), while errors the entrypoint caught
    and handled replay as recorded, so the run takes the same branch.
    """

    __slots__ = (
        "_absent", "_alive", "_fetch", "_latest", "_on_changed_args", "_origins", "_read", "_rerun", "_retry",
        "_rows", "retrying",
    )  # fmt: skip

    def __init__(
        self, rows: Iterable[JournalRow], retry_keys: Iterable[str] = (), on_changed_args: OnChangedArgs = "raise",
        fetch: Callable[[Sequence[str]], list[JournalRow]] | None = None,
    ) -> None:  # fmt: skip
        self._rows = rows = list(rows) if not isinstance(rows, list) else rows
        self._latest = latest_rows(rows)
        self._fetch = fetch
        self._absent: set[str] = set()  # keys a window read found no row at
        self._read = len(self._latest)  # recorded calls known, read or given
        self._retry = frozenset(retry_keys)
        self.retrying = bool(self._retry)
        # Keys to retry whose re-run recorded a result this time: only those stop being retried.
        self._rerun: set[str] = set()
        self._on_changed_args = on_changed_args
        # id(exception) -> the keys it was raised or re-raised under (a child's error often
        # fails its parent too); the list keeps those exceptions, and so their ids, alive.
        self._origins: dict[int, list[str]] = {}
        self._alive: list[BaseException] = []

    def __len__(self) -> int:
        return self._read

    def _row(self, key: str) -> JournalRow | None:
        """The latest row at ``key``, reading its window if the journal is read by keys."""
        row = self._latest.get(key)
        if row is not None or self._fetch is None or key in self._absent:
            return row
        scope, _, number = key.rpartition(".")
        head, first = (scope + "." if scope else ""), int(number)
        window = [f"{head}{n}" for n in range(first, first + WINDOW)]
        rows = self._fetch(window)
        latest = latest_rows(rows)
        self._read += len(latest)
        self._latest.update(latest)
        self._absent.update(k for k in window if k not in latest)
        if any(r.status == RETRY for r in latest.values()):  # `pending_retry` counts a retried call's attempts
            self._rows.extend(r for r in rows if latest[r.key].status == RETRY)
        return latest.get(key)

    def lookup(
        self, key: str, name: str, digest: bytes | None, aliases: tuple[str, ...] = ()
    ) -> tuple[JournalRow | None, int]:
        """The recorded outcome to replay for this call (or ``None``: run it) and the attempt number to record.

        ``aliases`` are other names the same task was recorded under (a default name that changed).
        """
        row = self._latest.get(key)
        if self._fetch is not None:  # read by windows; the call looks its key up once: its row can go
            if row is None:
                row = self._row(key)
            self._absent.discard(key)
            if row is not None and row.status != RETRY:
                del self._latest[key]
        if row is None:
            return None, 1
        if row.name != name and row.name not in aliases:
            raise NonDeterminismError(key, row.name, name)
        if row.status == RETRY or (row.status == ERROR and key in self._retry):
            return None, row.attempt + 1
        if digest is not None and row.digest is not None and digest != row.digest:
            policy = self._on_changed_args
            if policy == "rerun":
                return None, row.attempt + 1
            err = ArgumentsChangedError(key, row.name, name)
            if policy == "raise":
                raise err
            warnings.warn(f"{err} (replaying the recorded result)", RuntimeWarning, stacklevel=4)
        return row, row.attempt

    def peek(self, key: str) -> JournalRow | None:
        """The latest row at ``key``, leaving it for the call that will look it up (`durable.patched`)."""
        return self._row(key)

    def reached(self, prefix: str, n: int) -> bool:
        """Whether the journal holds anything at or past the call ``prefix + str(n)`` of its body: a row at that
        key, under it (a task's children), or at a later call of the body. As far as the rows read so far go: in a
        long journal read by windows, ``peek`` of that key has read the window of the calls from it on."""
        return from_call(self._latest, prefix, n)

    def children(self, key: str) -> int:
        """How many calls recorded under ``key`` are known (a task's own calls, read so far)."""
        inside = key + "."
        return sum(1 for k in self._latest if k.startswith(inside))

    def recorded(self, key: str) -> bool:
        """Whether a call at ``key`` would replay its recorded outcome (not run), as far as the journal says."""
        row = self._row(key)
        return row is not None and row.status != RETRY and not (row.status == ERROR and key in self._retry)

    def pending_retry(self, key: str) -> tuple[int, JournalRow | None]:
        """For a call whose latest row is a failed attempt its policy was retrying when the run stopped:
        the attempts made since the call last had an outcome, and that row. ``(0, None)`` otherwise."""
        row = self._latest.get(key)
        if row is None or row.status != RETRY:
            return 0, None
        if self._fetch is not None:
            del self._latest[key]
        tries = 0
        for r in sorted((r for r in self._rows if r.key == key), key=lambda r: r.attempt):
            tries = tries + 1 if r.status == RETRY else 0
        return tries, row

    def note_recorded(self, key: str) -> None:
        """A key to retry ran again and its outcome is journaled: it is no longer owed a retry."""
        if key in self._retry:
            self._rerun.add(key)

    def note_error(self, exc: BaseException, key: str) -> None:
        """Remember that ``exc`` came out of the call at ``key`` (recorded now, or replayed)."""
        keys = self._origins.get(id(exc))
        if keys is None:
            self._origins[id(exc)] = [key]
            self._alive.append(exc)
        else:
            keys.append(key)

    def retry_keys_after(self, error: BaseException) -> tuple[str, ...]:
        """The keys to run again when the run is resumed after failing with ``error``.

        Those whose error is ``error`` or among its causes and contexts, and those
        that were to be retried this time but recorded nothing (not reached, or
        stopped by a ``BaseException`` such as ``KeyboardInterrupt``).
        """
        keys = set(self._retry - self._rerun)
        seen: set[int] = set()
        stack: list[BaseException | None] = [error]
        while stack:
            exc = stack.pop()
            if exc is None or id(exc) in seen:
                continue
            seen.add(id(exc))
            keys.update(self._origins.get(id(exc), ()))
            stack.extend((exc.__cause__, exc.__context__))
            grouped = getattr(exc, "exceptions", None)  # an ExceptionGroup's members
            if isinstance(grouped, tuple):
                stack.extend(grouped)
        return tuple(sorted(keys))


def from_call(keys: Iterable[str], prefix: str, n: int) -> bool:
    """Whether any of ``keys`` is the call ``prefix + str(n)`` of a body, under it, or a later call of that body."""
    for key in keys:
        if key.startswith(prefix):
            head = key[len(prefix) :].partition(".")[0]
            if head.isdigit() and int(head) >= n:
                return True
    return False


def unwrap_final(value: Any) -> tuple[Any, Any]:
    """(what the run returns, what the next run's ``previous`` receives)."""
    if isinstance(value, Final):
        return value.value, value.save
    return value, value
