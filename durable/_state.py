"""`get_state`: a thread's status, output or error, and its journal, as plain data."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timezone
from typing import Any, Literal, NamedTuple, Protocol

from ._answers import Answer, read_answer
from ._codec import Codec, Keyring, unsigned_part
from ._interrupts import Interrupt, pending_from_data
from ._patching import PATCHED
from ._peek import SealedValue, as_error, sealed
from ._serde import JsonSerializer, PickleSerializer, Serializer, load_value
from ._versions import TAG as VERSIONED
from ._versions import peel
from .errors import ConfigurationError, IncompatibleJournalError, SerializationError, ThreadNotFoundError
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
    size: int = 0  # the stored value's bytes
    # An answer's (``"answer"``): who gave it (`Command(by=)`), when, and whether a timeout gave it instead.
    answered_by: str | None = None
    answered_at: float | None = None
    timed_out: bool = False
    # A versioned task's value (``"ok"``): the task version that recorded it (``@task(version=)``).
    version: int | None = None

    @property
    def duration(self) -> float:
        return self.finished_at - self.started_at


class PregelTask(NamedTuple):
    """A pending step of a snapshot, with LangGraph's fields: in the Functional API, the entrypoint's
    unfinished run (its ``interrupts`` when paused, its ``error`` text when failed, its ``result`` once
    known)."""

    id: str
    name: str
    path: tuple[str, ...]
    error: str | None = None
    interrupts: tuple[Interrupt, ...] = ()
    state: None = None
    result: Any = None


@dataclass(frozen=True, slots=True)
class ThreadState:
    """A snapshot of a thread: its latest run's status, output or error, and journal.

    A run whose process died, or one submitted for a worker, shows ``"running"``
    until it is resumed; ``owner`` and ``lease_expires`` tell whether anyone
    holds it now, and ``recoveries`` how many dead executors it has outlived.

    It also has LangGraph's ``StateSnapshot`` fields, so code written for
    ``get_state(config)`` reads it as it is: ``values`` (the run's output once it
    completed; before, the previous run's), ``next`` (the entrypoint's name while
    the run is unfinished), ``tasks`` (`PregelTask` items with the pending
    ``interrupts`` or the ``error``), ``config`` (with a ``checkpoint_id`` naming
    this snapshot), ``metadata`` (``source``, ``step``), ``created_at`` (ISO 8601)
    and ``parent_config``.
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
    # LangGraph's StateSnapshot fields.
    values: Any = None
    next: tuple[str, ...] = ()
    tasks: tuple[PregelTask, ...] = ()
    config: Mapping[str, Any] = field(default_factory=dict)
    metadata: Mapping[str, Any] = field(default_factory=dict)
    created_at: str | None = None
    parent_config: Mapping[str, Any] | None = None

    @property
    def phase(self) -> str:
        """What the run is doing now, in words a person can act on: ``"queued"``, ``"running"`` (a live executor
        holds it), ``"crashed"`` (its executor died or its lease ran out: resumable now), ``"sleeping"``,
        ``"interrupted"``, ``"completed"``, ``"failed"``, ``"dead-lettered"`` or ``"cancelled"``. ``status`` stays
        the stored one (a crashed run's is ``"running"``)."""
        from ._phases import phase_of

        return phase_of(self.status, self.owner, self.lease_expires, self.wake_at, self.error_text, time.time())


class Reader(Protocol):
    """Turns one thread's stored values back into values: the application's codec, or the tools' reader."""

    def value(self, blob: bytes, run: int, slot: str) -> Any: ...

    def row(self, row: JournalRow, run: int) -> Any: ...


class CodecReader:
    """The application reads its own journal as a resume does: with its serializer and key, or an error."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    def value(self, blob: bytes, run: int, slot: str) -> Any:
        if slot == "#interrupts":  # JSON when they were plain data, whatever the serializer
            return self.codec.load_plain(self.codec.open(blob, run, slot), "the pending interrupts")
        return self.codec.load(blob, run, slot, f"the run's {slot[1:]}")

    def row(self, row: JournalRow, run: int) -> Any:
        if row.status == ANSWER:
            return read_answer(self.codec, self.codec.open_row(row, run), row)
        if row.name == PATCHED:  # a patch's marker: its id, as JSON whatever the serializer
            return self.codec.load_plain(self.codec.open_row(row, run), f"the patch marker at key {row.key}")
        blob = self.codec.open_row(row, run)
        return load_value(self.codec.serde, peel(blob)[1], f"the recorded result of key {row.key}")


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
    runs: list[RunRow] | None = None
    if run_id is not None and run_id != run.run_id:
        runs = store.list_runs(thread_id)
        found = [r for r in runs if r.run_id == run_id]
        if not found:
            raise ConfigurationError(f"thread {thread_id!r} has no run #{run_id}")
        run = found[0]
    read = reader(thread, run)
    state = _run_state(store, thread, run, read)
    if run.status == "completed":
        return _snapshot(state, "end", None, is_update(run))
    if run.run_id > 1:  # an unfinished run starts from the values the run before it ended with
        runs = runs if runs is not None else store.list_runs(thread_id)
        before = next((r for r in runs if r.run_id == run.run_id - 1), None)
        if before is not None and before.output is not None:
            return _snapshot(state, "input", read.value(before.output, before.run_id, "#output"))
    return _snapshot(state, "input", None)


def history(store: Store, thread_id: str, reader: Callable[[ThreadRow, RunRow], Reader]) -> list[ThreadState]:
    """Every snapshot of the thread, newest first: each run's end (once it finished), then its start, as
    LangGraph's ``get_state_history`` lists checkpoints (an ``update_state`` has an end only)."""
    thread = store.get_thread(thread_id)
    if thread is None or thread.run is None:
        raise ThreadNotFoundError(thread_id)
    runs = store.list_runs(thread_id)
    states = {run.run_id: _run_state(store, thread, run, reader(thread, run)) for run in runs}
    found: list[ThreadState] = []
    for run in reversed(runs):
        state, update = states[run.run_id], is_update(run)
        if run.status == "completed":
            found.append(_snapshot(state, "end", None, update))
        if not update:
            before = states.get(run.run_id - 1)
            found.append(_snapshot(state, "input", before.output if before is not None else None))
    return found


def _run_state(store: Store, thread: ThreadRow, run: RunRow, read: Reader) -> ThreadState:
    rows = store.load_journal(thread.tid, run.run_id)
    r = run.run_id
    output = read.value(run.output, r, "#output") if run.output is not None else None
    error = as_error(read.value(run.error, r, "#error")) if run.error is not None else None
    interrupts: tuple[Interrupt, ...] = ()
    if run.status == "interrupted" and run.interrupts is not None:
        answered: dict[str, int] = {}  # an answer journaled for a worker to carry is no longer a question
        for row in rows:
            if row.status == ANSWER:
                answered[row.key] = max(row.attempt, answered.get(row.key, 0))
        interrupts = _interrupts(read.value(run.interrupts, r, "#interrupts"), answered)
    latest = run is thread.run or (thread.run is not None and run.run_id == thread.run.run_id)
    return ThreadState(
        thread_id=thread.thread_id,
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
        owner=thread.owner if latest else None,
        lease_expires=thread.lease_expires if latest else None,
        recoveries=run.recoveries,
        wake_at=run.wake_at,
    )


_NONE_INPUTS = (PickleSerializer().dumps(None), JsonSerializer().dumps(None))


def is_update(run: RunRow) -> bool:
    """Whether the run was written by ``update_state``: a completed run whose input is ``None``, which no
    invoke ever starts a run with (``None`` resumes)."""
    return run.status == "completed" and unsigned_part(run.input) in _NONE_INPUTS


def checkpoint_id(run_id: int, phase: str) -> str:
    """The id of a snapshot: a run's start (``"3.0"``) or its end (``"3.1"``)."""
    return f"{run_id}.{0 if phase == 'input' else 1}"


def _config(thread_id: str, run_id: int, phase: str) -> dict[str, Any]:
    cid = checkpoint_id(run_id, phase)
    return {"configurable": {"thread_id": thread_id, "checkpoint_ns": "", "checkpoint_id": cid}}


def _snapshot(state: ThreadState, phase: str, previous_values: Any, update: bool = False) -> ThreadState:
    """The run seen at its start (``"input"``: what it started from, what it is doing) or at its end."""
    r, name = state.run_id, state.entrypoint
    step = 2 * r - 2 if phase == "end" else 2 * r - 3
    if phase == "end":
        # An update has no start of its own: it follows the end of the run before it.
        parent = _config(state.thread_id, r - 1, "end") if update else _config(state.thread_id, r, "input")
        when = state.finished_at if state.finished_at is not None else state.started_at
        return replace(
            state, values=state.output, next=(), tasks=(), config=_config(state.thread_id, r, "end"),
            metadata={"source": "update" if update else "loop", "step": step, "parents": {}, "run_id": r},
            created_at=_iso(when), parent_config=parent,
        )  # fmt: skip
    error = None if state.error is None or state.status != "failed" else repr(state.error)
    from ._stream import entry_id  # the id "tasks" and "checkpoints" chunks give the same run

    task = PregelTask(
        entry_id(state.thread_id, r), name, ("__pregel_pull", name), error, state.interrupts, None,
        state.output if state.status == "completed" else None,
    )  # fmt: skip
    return replace(
        state, values=previous_values, next=(name,), tasks=(task,), config=_config(state.thread_id, r, "input"),
        metadata={"source": "input", "step": step, "parents": {}, "run_id": r}, created_at=_iso(state.started_at),
        parent_config=_config(state.thread_id, r - 1, "end") if r > 1 else None,
    )  # fmt: skip


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).isoformat()


_STATUS: dict[int, EntryStatus] = {OK: "ok", ERROR: "error", ANSWER: "answer", RETRY: "retry"}


def _entry(read: Reader, run_id: int, row: JournalRow) -> JournalEntry:
    try:
        value = read.row(row, run_id)
    except SerializationError as exc:
        # One entry that cannot be read (a class that moved) is described, never deserialized, and the thread's other
        # entries are still shown. A signature that fails is not: tampering is refused loudly (IntegrityError).
        value = sealed(unsigned_part(row.payload), "unreadable", str(exc))
    failed = row.status in (ERROR, RETRY)
    answer = value if isinstance(value, Answer) else None
    if answer is not None:
        value = answer.value
    return JournalEntry(
        key=row.key,
        task=row.name,
        status=_STATUS.get(row.status, "error"),
        result=None if failed else value,
        error=as_error(value) if failed else None,
        attempt=row.attempt,
        started_at=row.started_at,
        finished_at=row.finished_at,
        size=len(row.payload),
        answered_by=answer.by if answer is not None else None,
        answered_at=(answer.at if answer is not None else row.finished_at) if row.status == ANSWER else None,
        timed_out=answer is not None and answer.timed_out,
        version=_version(row),
    )


def _version(row: JournalRow) -> int | None:
    """The task version a value was recorded by, when its task had one (its header, inside the signature)."""
    if row.status != OK:
        return None
    inner = unsigned_part(row.payload)
    return peel(inner)[0] if inner[:1] == VERSIONED else None


def _interrupts(data: Any, answered: Mapping[str, int]) -> tuple[Interrupt, ...]:
    if not isinstance(data, SealedValue):
        try:
            return tuple(p.public() for p in pending_from_data(data) if answered.get(p.key, 0) <= p.seen)
        except (TypeError, ValueError):
            pass  # not what a run records: shown as it is
    # The questions cannot be read one by one: one stands for all of them.
    return (Interrupt("?", data),)
