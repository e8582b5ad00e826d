"""`get_state`: a thread's status, output or error, and its journal, as plain data."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from ._codec import Codec, Keyring
from ._interrupts import Interrupt, pending_from_data
from ._peek import SealedValue, as_error
from ._serde import Serializer, load_value
from .errors import ConfigurationError, IncompatibleJournalError, ThreadNotFoundError
from .stores._base import ANSWER, ERROR, OK, RETRY, JournalRow, RunRow, RunStatus, Store, ThreadRow

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


class Reader(Protocol):
    """Turns one thread's stored values back into values: the application's codec, or the tools' reader."""

    def value(self, blob: bytes, run: int, slot: str) -> Any: ...

    def row(self, row: JournalRow, run: int) -> Any: ...


class CodecReader:
    """The application reads its own journal as a resume does: with its serializer and key, or an error."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    def value(self, blob: bytes, run: int, slot: str) -> Any:
        return self.codec.load(blob, run, slot, f"the run's {slot[1:]}")

    def row(self, row: JournalRow, run: int) -> Any:
        return load_value(self.codec.serde, self.codec.open_row(row, run), f"the recorded result of key {row.key}")


def app_reader(serde: Serializer, ring: Keyring | None) -> Callable[[ThreadRow, RunRow], Reader]:
    """How `Entrypoint.get_state` reads: a journal this process cannot read safely is refused first."""

    def make(thread: ThreadRow, run: RunRow) -> Reader:
        if run.stamp is not None and (reason := serde.incompatible(run.stamp)) is not None:
            raise IncompatibleJournalError(thread.thread_id, run.stamp, serde.stamp(), reason)
        return CodecReader(Codec(serde, ring, thread.thread_id, thread.nonce, run.entrypoint))

    return make


def read_state(
    store: Store, thread_id: str, reader: Callable[[ThreadRow, RunRow], Reader], run_id: int | None = None
) -> ThreadState:
    """The thread's latest run (or run ``run_id``), its values read by the reader made for it."""
    thread = store.get_thread(thread_id)
    if thread is None or thread.run is None:
        raise ThreadNotFoundError(thread_id)
    run = thread.run
    if run_id is not None and run_id != run.run_id:
        found = [r for r in store.list_runs(thread_id) if r.run_id == run_id]
        if not found:
            raise ConfigurationError(f"thread {thread_id!r} has no run #{run_id}")
        run = found[0]
    rows = store.load_journal(thread.tid, run.run_id)
    read = reader(thread, run)
    r = run.run_id
    output = read.value(run.output, r, "#output") if run.output is not None else None
    error = as_error(read.value(run.error, r, "#error")) if run.error is not None else None
    interrupts: tuple[Interrupt, ...] = ()
    if run.status == "interrupted" and run.interrupts is not None:
        interrupts = _interrupts(read.value(run.interrupts, r, "#interrupts"))
    return ThreadState(
        thread_id=thread_id,
        status=run.status,
        run_id=run.run_id,
        entrypoint=run.entrypoint,
        output=output,
        error=error,
        error_text=run.error_text,
        entries=tuple(_entry(read, r, row) for row in rows),
        interrupts=interrupts,
        started_at=run.started_at,
        finished_at=run.finished_at,
        owner=thread.owner if run is thread.run else None,
        lease_expires=thread.lease_expires if run is thread.run else None,
        recoveries=run.recoveries,
        wake_at=run.wake_at,
    )


_STATUS: dict[int, EntryStatus] = {OK: "ok", ERROR: "error", ANSWER: "answer", RETRY: "retry"}


def _entry(read: Reader, run_id: int, row: JournalRow) -> JournalEntry:
    value = read.row(row, run_id)
    failed = row.status in (ERROR, RETRY)
    return JournalEntry(
        key=row.key,
        task=row.name,
        status=_STATUS.get(row.status, "error"),
        result=None if failed else value,
        error=as_error(value) if failed else None,
        attempt=row.attempt,
        started_at=row.started_at,
        finished_at=row.finished_at,
    )


def _interrupts(data: Any) -> tuple[Interrupt, ...]:
    if not isinstance(data, SealedValue):
        try:
            return tuple(Interrupt(p.id, p.value) for p in pending_from_data(data))
        except (TypeError, ValueError):
            pass  # not what a run records: shown as it is
    # The questions cannot be read one by one: one stands for all of them.
    return (Interrupt("?", data),)
