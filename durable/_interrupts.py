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
from datetime import timedelta
from typing import Any, ClassVar, Generic, TypeVar

from . import _answers, _clock, _context
from .errors import InterruptTimeoutError, ResumeError, UsageError

R = TypeVar("R")

INTERRUPT = "interrupt"  # the task name journal rows of answered interrupts carry


@dataclass(frozen=True, slots=True)
class Interrupt:
    """A question a paused run asks: answer it by ``id`` with `Command`.

    ``response_schema`` is the JSON Schema an answer must satisfy (from ``interrupt(..., response_schema=)``;
    a form can be drawn from it), ``deadline`` when the question times out (seconds since the epoch), and
    ``errors`` why the last answer was refused when a check only the schema's type could make refused it at the
    question (``[{"interrupt", "path", "message"}]``, as `AnswerRejectedError` gives them).
    """

    id: str
    value: Any
    response_schema: dict[str, Any] | None = None
    deadline: float | None = None
    errors: tuple[dict[str, str], ...] = ()


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
    ``by`` says who answered (``Command(resume=True, by="alice")``): it is journaled with the answer.

    In a graph (`durable.graph`), a node may also return a ``Command`` to update the state and choose
    where to go next in one value: ``Command(update={"k": v}, goto="node")`` (``goto`` is a node name,
    a `Send`, or a list of them; ``graph=Command.PARENT`` sends it to the graph that runs this one as a
    node). Given to a graph's ``invoke``, ``update`` and ``goto`` apply before it continues.
    """

    resume: R = None  # type: ignore[assignment]
    _: KW_ONLY
    by: str | None = None  # who answers: journaled with the answer, signed with it, shown by get_state and the tools
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
    """A pending interrupt as the run records it: its id, the key it will be answered at, its value, and what
    `interrupt` was given besides (the JSON Schema, the deadline, the default as a 1-tuple, or ``None``).
    ``seen`` is the attempt of an answer at its key that was already used and refused (0: none)."""

    id: str
    key: str
    value: Any
    schema: dict[str, Any] | None = None
    deadline: float | None = None
    default: tuple[Any] | None = None
    seen: int = 0
    errors: tuple[dict[str, str], ...] = ()  # why the answer at attempt ``seen`` was refused

    def public(self) -> Interrupt:
        return Interrupt(self.id, self.value, self.schema, self.deadline, self.errors)


def pending_to_data(pending: tuple[PendingInterrupt, ...]) -> list[list[Any]]:
    """Pending interrupts as plain lists, so every serializer (JSON too) can journal them. A plain question
    is ``[id, key, value]`` as it always was; one with options adds a dict of them."""
    return [[p.id, p.key, p.value, *_options(p)] for p in pending]


def _options(p: PendingInterrupt) -> list[dict[str, Any]]:
    options: dict[str, Any] = {}
    if p.schema is not None:
        options["schema"] = p.schema
    if p.deadline is not None:
        options["deadline"] = p.deadline
    if p.default is not None:
        options["default"] = list(p.default)
    if p.seen:
        options["seen"] = p.seen
    if p.errors:
        options["errors"] = [dict(e) for e in p.errors]
    return [options] if options else []


def pending_from_data(data: Any) -> tuple[PendingInterrupt, ...]:
    """Read what `pending_to_data` wrote (or, from early journals, `PendingInterrupt` objects)."""
    found = []
    for p in data:
        if isinstance(p, PendingInterrupt):  # pickled by early versions, with only the first three fields
            found.append(PendingInterrupt(p.id, p.key, p.value))
            continue
        options = p[3] if len(p) > 3 else {}
        default = options.get("default")
        found.append(
            PendingInterrupt(
                p[0], p[1], p[2], options.get("schema"), options.get("deadline"),
                None if default is None else (default[0],), options.get("seen", 0),
                tuple(options.get("errors", ())),
            )
        )  # fmt: skip
    return tuple(found)


class _NoDefault:
    def __repr__(self) -> str:
        return "<no default>"


NO_DEFAULT: Any = _NoDefault()


def interrupt(
    value: Any,
    *,
    id: str | None = None,
    response_schema: Any = None,
    timeout: float | timedelta | None = None,
    default: Any = NO_DEFAULT,
) -> Any:
    """Pause the run and ask ``value``; on resume, return the answer given with `Command`.

    Call it in an entrypoint or inside a task (at any depth). The run pauses once
    everything running alongside has finished or paused too, so parallel tasks'
    interrupts surface together in one `Interrupted`. ``id`` names the interrupt
    (default: its call-order key, such as ``"2"`` or ``"1.0"``); ids must be unique
    among the run's pending interrupts.

    ``response_schema`` (a Pydantic model, dataclass, ``TypedDict`` or JSON Schema dict) is what an answer
    must satisfy: a `Command` whose answer does not fit is refused with `AnswerRejectedError` before anything
    is journaled, and a type's answer comes back as an instance of it. The pending `Interrupt` shows it as a
    JSON Schema. ``timeout`` (seconds or a ``timedelta``) gives the question a deadline, fixed when it is
    first asked: once it passes, the next resume (a worker carries it by itself) answers it with ``default``,
    journaled as a timeout, or raises `InterruptTimeoutError` here when no default is given.
    """
    scope = _context.current.get()
    if scope is None:
        raise UsageError("interrupt() pauses a durable run: call it inside an @entrypoint or a @task it runs")
    if id is not None and (not isinstance(id, str) or not id):
        raise UsageError(f"interrupt id {id!r}: use a non-empty string")
    schema = None if response_schema is None else _answers.schema_of(response_schema)
    wait = None if timeout is None else _answers.seconds(timeout)
    if default is not NO_DEFAULT and wait is None:
        raise UsageError("interrupt(default=...) is the answer a timeout gives: give timeout= too")
    key = scope.next_key()
    run = scope.run
    asked = run.asked.get(key)  # this question as the run's last pause recorded it
    seen = asked.seen if asked is not None else 0
    errors = asked.errors if asked is not None else ()
    found = run.answer(key)
    if found is not None and found[1] > seen:
        answer, attempt = found
        if answer.timed_out and not answer.defaulted:
            raise InterruptTimeoutError(id or key, asked.deadline if asked and asked.deadline else answer.at or 0.0)
        if schema is None:
            return answer.value
        try:
            return schema.convert(answer.value, id or key)
        except _answers.Rejected as rejected:  # a check only the type could make: ask again, and say why
            run.rejected.extend(rejected.errors)
            seen, errors = attempt, tuple(rejected.errors)
    if asked is not None and asked.deadline is not None:
        deadline: float | None = asked.deadline
    else:
        deadline = None if wait is None else _clock.clock.time() + wait
    kept = None if default is NO_DEFAULT else (default,)
    pending = PendingInterrupt(id or key, key, value, schema.json if schema else None, deadline, kept, seen, errors)
    run.add_pending(pending)
    raise Pause(pending.public())


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
