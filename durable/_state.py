"""`get_state`: a thread's status, output or error, and its journal, as plain data."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from ._codec import Codec, Keyring
from ._interrupts import Interrupt, pending_from_data
from ._serde import Serializer
from .errors import DurableError, IncompatibleJournalError, ThreadNotFoundError
from .stores._base import ANSWER, ERROR, OK, RETRY, JournalRow, RunStatus, Store

EntryStatus = Literal["ok", "error", "answer", "retry"]


@dataclass(frozen=True, slots=True)
class JournalEntry:
    """One journal row: a task's value (``"ok"``), its exception (``"error"``), a failed attempt its
    retry policy tried again (``"retry"``, with that attempt's ``error``), or the answer given to an
    interrupt (``"answer"``, task ``"interrupt"``). ``result`` holds the value or answer."""

    key: str
    task: str
    status: EntryStatus
    result: Any
    error: BaseException | None
    attempt: int
    started_at: float
    finished_at: float

    @property
    def duration(self) -> float:
        return self.finished_at - self.started_at


@dataclass(frozen=True, slots=True)
class ThreadState:
    """A snapshot of a thread: its latest run's status, output or error, and journal.

    A run whose process died, or one submitted for a worker, shows ``"running"``
    until it is resumed; ``owner`` and ``lease_expires`` tell whether anyone
    holds it now, and ``recoveries`` how many dead executors it has outlived.
    """

    thread_id: str
    status: RunStatus
    run_id: int
    entrypoint: str
    output: Any
    error: BaseException | None
    error_text: str | None
    entries: tuple[JournalEntry, ...]
    interrupts: tuple[Interrupt, ...]
    started_at: float
    finished_at: float | None
    owner: str | None
    lease_expires: float | None
    recoveries: int = 0  # times a worker took the run over from an executor that died running it
    wake_at: float | None = None  # suspended in a durable sleep until then (a worker resumes it)


def read_state(
    store: Store, serde: Serializer, ring: Keyring | None, thread_id: str, run_id: int | None = None
) -> ThreadState:
    """The thread's latest run (or run ``run_id``), its values read with ``serde`` and ``ring``."""
    thread = store.get_thread(thread_id)
    if thread is None or thread.run is None:
        raise ThreadNotFoundError(thread_id)
    run = thread.run
    if run_id is not None and run_id != run.run_id:
        found = [r for r in store.list_runs(thread_id) if r.run_id == run_id]
        if not found:
            from .errors import ConfigurationError

            raise ConfigurationError(f"thread {thread_id!r} has no run #{run_id}")
        run = found[0]
    rows = store.load_journal(thread.tid, run.run_id)
    if run.stamp is not None and (reason := serde.incompatible(run.stamp)) is not None:
        raise IncompatibleJournalError(thread_id, run.stamp, serde.stamp(), reason)
    codec = Codec(serde, ring, thread_id)
    r = run.run_id
    output = codec.load(run.output, r, "#output", "", "the run's output") if run.output is not None else None
    error = _load_error(codec.load(run.error, r, "#error", "", "the run's error")) if run.error is not None else None
    return ThreadState(
        thread_id=thread_id,
        status=run.status,
        run_id=run.run_id,
        entrypoint=run.entrypoint,
        output=output,
        error=error,
        error_text=run.error_text,
        entries=tuple(_entry(codec, r, row) for row in rows),
        interrupts=_interrupts(codec, r, run.interrupts) if run.status == "interrupted" else (),
        started_at=run.started_at,
        finished_at=run.finished_at,
        owner=thread.owner if run is thread.run else None,
        lease_expires=thread.lease_expires if run is thread.run else None,
        recoveries=run.recoveries,
        wake_at=run.wake_at,
    )


_STATUS: dict[int, EntryStatus] = {OK: "ok", ERROR: "error", ANSWER: "answer", RETRY: "retry"}


def _entry(codec: Codec, run_id: int, row: JournalRow) -> JournalEntry:
    value = codec.load(row.payload, run_id, row.key, row.name, f"the recorded result of key {row.key}")
    failed = row.status in (ERROR, RETRY)
    return JournalEntry(
        key=row.key,
        task=row.name,
        status=_STATUS[row.status],
        result=None if failed else value,
        error=value if failed else None,
        attempt=row.attempt,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def _interrupts(codec: Codec, run_id: int, blob: bytes | None) -> tuple[Interrupt, ...]:
    if blob is None:
        return ()
    pending = pending_from_data(codec.load(blob, run_id, "#interrupts", "", "the pending interrupts"))
    return tuple(Interrupt(p.id, p.value) for p in pending)


def _load_error(value: Any) -> BaseException:
    if not isinstance(value, BaseException):
        raise DurableError(f"the run's recorded error is a {type(value).__name__}, not an exception")
    return value
