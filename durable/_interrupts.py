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

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import KW_ONLY, dataclass
from typing import Any, ClassVar, Generic, TypeVar

from . import _context
from .errors import ResumeError, UsageError

R = TypeVar("R")

INTERRUPT = "interrupt"  # the task name journal rows of answered interrupts carry


@dataclass(frozen=True, slots=True)
class Interrupt:
    """A question a paused run asks: answer it by ``id`` with `Command`."""

    id: str
    value: Any


INTERRUPT_KEY = "__interrupt__"


@dataclass(frozen=True, slots=True)
class Interrupted(Mapping[str, Any]):
    """What ``invoke`` returns when the run paused: every pending interrupt, all at once.

    It also reads as LangGraph's paused result, a mapping with one key: ``"__interrupt__" in out``
    and ``out["__interrupt__"]`` (a list of its interrupts) work as they do there.
    """

    interrupts: tuple[Interrupt, ...]
    thread_id: str

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(i.id for i in self.interrupts)

    def __getitem__(self, key: str) -> list[Interrupt]:
        if key != INTERRUPT_KEY:
            raise KeyError(key)
        return list(self.interrupts)

    def __iter__(self) -> Iterator[str]:
        return iter((INTERRUPT_KEY,))

    def __len__(self) -> int:
        return 1


@dataclass(frozen=True, slots=True)
class GraphOutput(Generic[R]):
    """What ``invoke(..., version="v2")`` returns, finished or paused alike (LangGraph's ``GraphOutput``):
    the run's ``value`` (``{}`` while paused, as LangGraph's Functional API gives) and its pending
    ``interrupts`` (empty once finished)."""

    value: R
    interrupts: tuple[Interrupt, ...] = ()

    def __getitem__(self, key: str) -> Any:
        """LangGraph's backward-compatible access: ``out["__interrupt__"]``, or a key of a dict value."""
        if key == INTERRUPT_KEY:
            return self.interrupts
        if isinstance(self.value, Mapping):
            return self.value[key]
        raise KeyError(key)


def shaped(out: Any, version: str) -> Any:
    """An invoke's result in the shape ``version`` asks for: ``"v1"`` as it is, ``"v2"`` a `GraphOutput`."""
    if version == "v1":
        return out
    if isinstance(out, Interrupted):
        return GraphOutput({}, out.interrupts)
    return GraphOutput(out)


@dataclass(frozen=True, slots=True)
class Command(Generic[R]):
    """Resume a paused run: ``Command(resume=answer)`` for one pending interrupt, or
    ``Command(resume={id: answer, ...})`` for several (answering some leaves the rest pending).

    In a graph (`durable.graph`), a node may also return a ``Command`` to update the state and choose
    where to go next in one value: ``Command(update={"k": v}, goto="node")`` (``goto`` is a node name,
    a `Send`, or a list of them; ``graph=Command.PARENT`` sends it to the graph that runs this one as a
    node). Given to a graph's ``invoke``, ``update`` and ``goto`` apply before it continues.
    """

    resume: R = None  # type: ignore[assignment]
    _: KW_ONLY
    update: Any = None
    goto: Send | str | Sequence[Send | str] = ()
    graph: str | None = None

    PARENT: ClassVar[str] = "__parent__"

    @property
    def steers(self) -> bool:
        """Whether it updates or routes a graph (then ``resume=None`` is no answer)."""
        return self.update is not None or bool(self.goto) or self.graph is not None


@dataclass(frozen=True, slots=True)
class Send:
    """Run ``node`` in the next superstep with ``arg`` as its input instead of the graph's state
    (LangGraph's ``Send``): return a list of them from a conditional edge to fan out, one task each."""

    node: str
    arg: Any


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
    if isinstance(resume, Mapping) and resume:
        named = [k for k in resume if isinstance(k, str) and k in by_id]
        if len(named) == len(resume):
            return {by_id[i].key: answer for i, answer in resume.items()}
        if named:  # some keys name pending interrupts, others do not: a typo, not an answer
            others = sorted(repr(k) for k in resume if k not in by_id)
            raise ResumeError(
                f"thread {thread_id!r}: Command(resume=...) names pending interrupt(s) {sorted(named)} but also "
                f"{', '.join(others)}, which no pending interrupt has (pending: {sorted(by_id)}); nothing was recorded"
            )
    if len(pending) == 1:
        return {pending[0].key: resume}
    unknown = sorted(str(k) for k in resume if k not in by_id) if isinstance(resume, Mapping) else []
    what = f"unknown interrupt id(s) {unknown}" if unknown else "one answer"
    raise ResumeError(
        f"thread {thread_id!r} has {len(pending)} pending interrupts {sorted(by_id)} but the Command gives {what}: "
        f"resume with Command(resume={{id: answer, ...}}) naming pending ids"
    )
