"""Pausing a run for a person: `interrupt`, what `invoke` returns when paused, and `Command`.

An interrupt takes a key in its body's call order, exactly like a task call,
so a replay meets it at the same key. Its default id is that key, which is
stable across replays and unique across parallel tasks. Answering writes a
journal row at the key; on resume the same `interrupt(...)` call finds the row
and returns the answer instead of pausing.

Pausing raises `Pause`, a `BaseException`: a user's ``except Exception:`` cannot
swallow it, and the task it passes through is not recorded, so that task runs
again from its start on resume (its finished children replay).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from . import _context
from .errors import ResumeError, UsageError

R = TypeVar("R")

INTERRUPT = "interrupt"  # the task name journal rows of answered interrupts carry


@dataclass(frozen=True, slots=True)
class Interrupt:
    """A question a paused run asks: answer it by ``id`` with `Command`."""

    id: str
    value: Any


@dataclass(frozen=True, slots=True)
class Interrupted:
    """What ``invoke`` returns when the run paused: every pending interrupt, all at once."""

    interrupts: tuple[Interrupt, ...]
    thread_id: str

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(i.id for i in self.interrupts)


@dataclass(frozen=True, slots=True)
class Command(Generic[R]):
    """Resume a paused run: ``Command(resume=answer)`` for one pending interrupt, or
    ``Command(resume={id: answer, ...})`` for several (answering some leaves the rest pending)."""

    resume: R


class Pause(BaseException):
    """Raised by `interrupt` to pause the run. Not an `Exception`: ``except Exception`` lets it through."""

    def __init__(self, interrupt: Interrupt) -> None:
        super().__init__(interrupt)
        self.interrupt = interrupt

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.interrupt,))


class Suspend(BaseException):
    """Raised by a durable sleep in a run a worker carries: end the run for now, resume it at ``wake_at``."""

    def __init__(self, wake_at: float) -> None:
        super().__init__(wake_at)
        self.wake_at = wake_at

    def __reduce__(self) -> tuple[Any, ...]:
        return (type(self), (self.wake_at,))


@dataclass(frozen=True, slots=True)
class Suspended:
    """What an invoke made by a worker returns when the run went to sleep until ``wake_at``."""

    wake_at: float


@dataclass(frozen=True, slots=True)
class PendingInterrupt:
    """A pending interrupt as the run records it: its id, the key it will be answered at, its value."""

    id: str
    key: str
    value: Any


def pending_to_data(pending: tuple[PendingInterrupt, ...]) -> list[list[Any]]:
    """Pending interrupts as plain lists, so every serializer (JSON too) can journal them."""
    return [[p.id, p.key, p.value] for p in pending]


def pending_from_data(data: Any) -> tuple[PendingInterrupt, ...]:
    """Read what `pending_to_data` wrote (or, from early journals, `PendingInterrupt` objects)."""
    return tuple(p if isinstance(p, PendingInterrupt) else PendingInterrupt(*p) for p in data)


def interrupt(value: Any, *, id: str | None = None) -> Any:
    """Pause the run and ask ``value``; on resume, return the answer given with `Command`.

    Call it in an entrypoint or inside a task (at any depth). The run pauses once
    everything running alongside has finished or paused too, so parallel tasks'
    interrupts surface together in one `Interrupted`. ``id`` names the interrupt
    (default: its call-order key, such as ``"2"`` or ``"1.0"``); ids must be unique
    among the run's pending interrupts.
    """
    scope = _context.current.get()
    if scope is None:
        raise UsageError("interrupt() pauses a durable run: call it inside an @entrypoint or a @task it runs")
    if id is not None and (not isinstance(id, str) or not id):
        raise UsageError(f"interrupt id {id!r}: use a non-empty string")
    key = scope.next_key()
    found, answer = scope.run.answer(key)
    if found:
        return answer
    pending = PendingInterrupt(id or key, key, value)
    scope.run.add_pending(pending)
    raise Pause(Interrupt(pending.id, value))


def answers_for(pending: tuple[PendingInterrupt, ...], resume: Any, thread_id: str) -> dict[str, Any]:
    """Map a `Command`'s ``resume`` to {key: answer} for the pending interrupts it answers."""
    if not pending:
        raise ResumeError(
            f"thread {thread_id!r} has no pending interrupt to resume: invoke it with new input, or with None "
            f"to resume a failed run"
        )
    by_id = {p.id: p for p in pending}
    if isinstance(resume, Mapping) and resume and all(isinstance(k, str) and k in by_id for k in resume):
        return {by_id[i].key: answer for i, answer in resume.items()}
    if len(pending) == 1:
        return {pending[0].key: resume}
    unknown = sorted(str(k) for k in resume if k not in by_id) if isinstance(resume, Mapping) else []
    what = f"unknown interrupt id(s) {unknown}" if unknown else "one answer"
    raise ResumeError(
        f"thread {thread_id!r} has {len(pending)} pending interrupts {sorted(by_id)} but the Command gives {what}: "
        f"resume with Command(resume={{id: answer, ...}}) naming pending ids"
    )


StreamWriter = Callable[[Any], None]


def _no_writer(chunk: Any) -> None:
    """Nothing is streaming: custom events are dropped."""


def get_stream_writer() -> StreamWriter:
    """A function that sends a custom event to whoever streams this run (``stream_mode="custom"``).

    Outside a streamed run the writer does nothing, so the same code runs under ``invoke``.
    """
    scope = _context.current.get()
    sink = scope.run.sink if scope is not None else None
    if sink is None:
        return _no_writer
    return lambda chunk: sink("custom", chunk)
