"""Dry runs: what resuming a thread would do, found by replaying its journal without running any task.

`forecast` reads the thread and its run's journal as a resume does (the same head, then windows of keys, so a
long journal is read the same way), taking no lease and writing nothing, so it never gets in the way of a live
owner. Then it runs the entrypoint's body under a `DryRun`, made by the engine's own `_run_for`: recorded calls
replay as a resume replays them, and a call with nothing to replay does not run. It gets a *blocked* future
instead, which stops the body (`DryStop`) only when the body waits for it, so the calls a resume would make
alongside it (a fan-out, a graph's superstep) are still checked against the journal. What the body did up to
there is what the resume would do:

* it made calls with nothing recorded: the first of them runs next (``runs``), and why: never recorded, its
  recorded error is retried, its retry policy owes an attempt, its arguments changed under
  ``on_changed_args="rerun"``;
* it pauses on questions (``pauses``), or reaches a durable sleep still to wait (``sleeps``, until when);
* it returns (``finishes``: everything it needs is recorded), or raises (``fails``);
* or the journal no longer fits the code (``diverges``): a call that differs from the one recorded at its key
  (`NonDeterminismError`), a value that no longer reads (`RecordedValueError`), a question no longer asked or
  asked under another id, recorded calls the code no longer makes.

A `Command` is planned as a resume with its answers: they are checked (a bad one raises as `invoke` would) and
added to the journal the dry run reads, not to the store. The body's own code runs (it runs on every resume
anyway), and so do the converters of versioned tasks; task bodies never do. Whatever reaches outside the run
stops it where it would act: a write to the long-term memory, another thread's run (`refuse`). A nested
entrypoint (called without a thread id) is workflow code: its body is replayed too.
"""

from __future__ import annotations

import asyncio
import contextvars
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Literal

from . import _clock, _context
from . import _questions as _q
from ._codec import Codec, Keyring
from ._context import Scope
from ._core import HEAD, InputKind, Replay, plan, unwrap_final
from ._digest import digest_call
from ._drivers import drive
from ._engine import EntrypointSpec, Invocation, _check_stamp, _merged, _run_for, check_owner
from ._futures import TaskFuture
from ._interrupts import Command, Interrupt, Pause, PendingInterrupt, Suspend
from ._leases import owner_is_dead
from ._run import Run, TaskSpec
from ._runtime import RunEnv, _no_writer, injected
from .errors import AnswerRejectedError, ArgumentsChangedError, NonDeterminismError, SerializationError
from .stores._base import ERROR, RETRY, JournalRow, Lease, RunRow, Store, ThreadRow

Outcome = Literal["runs", "pauses", "sleeps", "finishes", "fails", "returns", "waits", "diverges"]
Why = Literal["unrecorded", "failed", "retrying", "arguments-changed", "new-run", "outside"]


@dataclass(frozen=True, slots=True)
class NextCall:
    """The call a resume would run first: its journal ``key``, its ``task``, and ``why`` it runs (a code, and
    ``detail`` in words)."""

    key: str
    task: str
    why: Why
    detail: str


@dataclass(frozen=True, slots=True)
class ResumePlan:
    """What invoking a thread would do now, worked out without doing it (`Entrypoint.plan`).

    ``outcome`` is one of ``"runs"`` (``next`` is the call that runs first), ``"pauses"`` (on ``interrupts``),
    ``"sleeps"`` (a durable sleep until ``wake_at``), ``"finishes"`` (everything is recorded: the run completes
    with ``output``), ``"fails"`` (the body raises ``error`` during the replay; ``repeats`` when the run failed
    with that error before), ``"returns"`` (the run finished: ``output`` is returned again), ``"waits"`` (paused
    with nothing answered: ``interrupts`` are returned again), or ``"diverges"`` (the journal no longer fits the
    code: ``error`` says where). ``replayed`` are the keys whose recorded outcomes the resume reads back, in the
    order the body reaches them; ``runs`` every call it would run before the body can go on (a fan-out's, a
    graph superstep's: ``next`` is the first); ``notes`` what else it would say (a replayed call whose arguments
    changed, under ``on_changed_args="warn"``). ``held_by`` names a live executor holding the thread now (an
    invoke would raise `ThreadBusyError` until it lets go).
    """

    thread_id: str
    entrypoint: str
    status: str  # the thread's run status now ("new": no run, or a finished one, and new input)
    outcome: Outcome
    replayed: tuple[str, ...] = ()
    next: NextCall | None = None
    runs: tuple[NextCall, ...] = ()  # every call it would run before the body can go on (``next`` is the first)
    interrupts: tuple[Interrupt, ...] = ()
    wake_at: float | None = None
    output: Any = None
    error: BaseException | None = None
    notes: tuple[str, ...] = ()
    held_by: str | None = None
    repeats: bool = False

    def __str__(self) -> str:
        return describe(self)


class DryStop(BaseException):
    """The body waited for a call the dry run does not run, or reached outside its run: a resume would act here.

    A `BaseException`, as pausing is, so a body's ``except Exception:`` does not swallow it."""

    def __init__(self, call: NextCall) -> None:
        super().__init__(call.key)
        self.call = call


class _Watched(Replay):
    """The replay, remembering the keys whose recorded outcomes the body read back (in order), and noting what a
    resume would only warn about (a replayed call's changed arguments, under ``on_changed_args="warn"``)."""

    __slots__ = ("looked", "notes")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.looked: list[str] = []
        self.notes: list[str] = []

    def lookup(
        self, key: str, name: str, digest: bytes | None, aliases: tuple[str, ...] = ()
    ) -> tuple[JournalRow | None, int]:
        if self._on_changed_args == "warn":  # noted here, not through `warnings` (process-wide state)
            row = self.peek(key)
            changed = row is not None and digest is not None and row.digest is not None and row.digest != digest
            if changed and row is not None and (row.name == name or row.name in aliases):
                self.notes.append(f"{ArgumentsChangedError(key, row.name, name)} (replaying the recorded result)")
                digest = None
        found = super().lookup(key, name, digest, aliases)
        if found[0] is not None:
            self.looked.append(key)
        return found


class DryRun(Run):
    """A `Run` that replays what is recorded and runs nothing else: a call with no outcome to replay gets a
    blocked future (`DryStop` when waited for), and is remembered in ``blocked``.

    Its writer buffers (``durability="exit"``) and is never flushed, so what the body would journal besides
    tasks (``durable.now()``, a sleep's wake-up time, a patch's marker) stays in memory. Every durable sleep
    still to wait ends the body (``suspend_after = 0``).
    """

    dry = True

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.status = "running"  # the thread's run status when the dry run began ("new" for a new run)
        self.blocked: list[NextCall] = []

    def call(self, spec: TaskSpec, scope: Scope, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskFuture[Any]:
        key = scope.next_key()
        digest = b"" if spec.node else digest_call(args, kwargs)
        before = self.replay.peek(key)
        row, attempt = self.replay.lookup(key, spec.name, digest, spec.aliases)
        if row is not None:
            return self._replayed(row, spec.name, spec)
        if not spec.inherit_retry and not spec.node:  # a nested entrypoint: workflow code, replayed as resumes do
            return self._nested(spec, key, attempt, args, kwargs)
        call = self._why(spec, key, before)
        self.blocked.append(call)
        return TaskFuture.failed(DryStop(call))

    def refuse(self, what: str) -> None:
        """The body reaches outside its run (``what``): a resume would act there, a dry run stops."""
        scope = _context.current.get()
        key = f"{scope.prefix}{scope.n}" if scope is not None else "?"
        call = NextCall(key, what, "outside", f"{what}: the body acts outside its run here")
        self.blocked.append(call)
        raise DryStop(call)

    def _nested(
        self, spec: TaskSpec, key: str, attempt: int, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> TaskFuture[Any]:
        inner = Scope(self, key + ".", spec.name, attempt)
        token = _context.current.set(inner)
        try:
            if spec.is_async:
                return TaskFuture.resolved(_run_coroutine(spec.fn(*args, **kwargs)))
            return TaskFuture.resolved(spec.fn(*args, **kwargs))
        except Exception as exc:
            return TaskFuture.failed(exc)
        finally:
            _context.current.reset(token)

    def _why(self, spec: TaskSpec, key: str, row: JournalRow | None) -> NextCall:
        if row is None:
            if self.status == "new":
                return NextCall(key, spec.name, "new-run", "the new run starts it")
            children = self.replay.children(key)
            detail = {
                "running": "not recorded: it was running, or about to start, when the run's process stopped",
                "failed": "not recorded: the run stopped before it got here",
            }.get(self.status, "not recorded: the run has not got here yet")
            if children:
                detail += f" (its {children} recorded call(s) replay inside it)"
            return NextCall(key, spec.name, "unrecorded", detail)
        if row.status == RETRY:
            detail = f"attempt {row.attempt} failed and its retry policy tries it again"
            return NextCall(key, spec.name, "retrying", detail)
        if row.status == ERROR:
            return NextCall(key, spec.name, "failed", "its recorded error failed the run: it runs again")
        detail = "it is called with other arguments than were recorded (on_changed_args='rerun')"
        return NextCall(key, spec.name, "arguments-changed", detail)


def forecast(
    spec: EntrypointSpec, store: Store, ring: Keyring | None, thread_id: str, input: Any, env: RunEnv,
    deep: bool = False,
) -> ResumePlan:  # fmt: skip
    """What invoking ``spec`` on ``thread_id`` with ``input`` would do (see the module docstring).

    ``deep`` (`verify`): a paused run with nothing answered is dry-run too, to check that the code still asks
    its questions where and as the run recorded them (an invoke would only return them again).
    """
    given: InputKind = "none" if input is None else "command" if isinstance(input, Command) else "new"
    thread = store.get_thread(thread_id)
    check_owner(thread_id, thread, spec)
    held = _held_by(thread)
    kind = plan(thread_id, thread, given)  # new input on an unfinished run, and the like, raise as invoke would
    if kind == "new":
        return _dry(spec, store, ring, thread, thread_id, input, (), [], True, env, "new", held)
    assert thread is not None and thread.run is not None
    run = thread.run
    _check_stamp(spec.serde, thread_id, run.stamp)
    codec = Codec(spec.serde, ring, thread_id, thread.nonce, run.entrypoint, store.max_result_bytes)
    if kind == "finished":
        output = codec.load(run.output, run.run_id, "#output", "the output") if run.output is not None else None
        return ResumePlan(thread_id, spec.name, run.status, "returns", output=output, held_by=held)
    asked = _q.pending_questions(codec, thread)
    rows, whole = store.journal_head(thread.tid, run.run_id, HEAD)
    if not whole:  # the replay reads the rest as the run goes; the answers need their keys' rows now
        rows = _merged(rows, drive(_q.pending_rows(thread, asked), store))
    due = _q.due(asked, rows)
    if kind == "paused" and not due and not deep:
        interrupts = tuple(p.public() for p in asked)
        return ResumePlan(thread_id, spec.name, run.status, "waits", interrupts=interrupts, held_by=held)
    answered: list[JournalRow] = []
    if isinstance(input, Command):
        records = _q.answers_given(codec, thread, input, thread_id, asked)
        _q.refuse_answered(thread_id, asked, rows, records)
        answered = _q.answer_rows(codec, run.run_id, rows, records)
    answered += _q.timeout_rows(codec, run.run_id, rows, asked, {r.key for r in answered})
    value = codec.load(run.input, run.run_id, "#input", f"the input of thread {thread_id!r}")
    planned = _dry(spec, store, ring, thread, thread_id, value, asked, rows + answered, whole, env, run.status, held)
    if isinstance(input, Command) and planned.error is not None and isinstance(planned.error, AnswerRejectedError):
        raise planned.error  # the question's type refused the answer: invoke raises it too
    if kind == "paused" and not answered and not due:
        return _asked_again(planned, asked)
    return planned


def _dry(
    spec: EntrypointSpec, store: Store, ring: Keyring | None, thread: ThreadRow | None, thread_id: str, input: Any,
    asked: tuple[PendingInterrupt, ...], rows: list[JournalRow], whole: bool, env: RunEnv, status: str,
    held: str | None,
) -> ResumePlan:  # fmt: skip
    last = thread.run if thread is not None else None
    fresh = status == "new"
    # A run's values are signed under the entrypoint name it was recorded as (a new run's: this one's).
    owner = spec.name if fresh or last is None else last.entrypoint
    codec = Codec(spec.serde, ring, thread_id, thread.nonce if thread is not None else None, owner)
    run_row, previous = _run_row(spec, codec, last, fresh)
    # The body may read the long-term memory as a resume would; a write stops the dry run there.
    env = replace(env, store=_ReadOnlyMemory(env.store) if env.store is not None else None, cache=None)
    phantom = ThreadRow(thread_id, thread.tid if thread is not None else 0, None, None, 0, run_row, codec.nonce)
    lease = Lease(thread_id, phantom.tid, "dry-run", 0, phantom)
    inv = Invocation(spec, store, input, "none", thread_id, "exit", None, None, ring, 0.0, env)
    run = _run_for(inv, lease, codec, run_row, rows, whole, previous, DryRun, _Watched)
    assert isinstance(run, DryRun) and isinstance(run.replay, _Watched)
    run.status, run.asked = status, {p.key: p for p in asked}
    replay = run.replay
    kwargs = injected(spec.injects, env, previous, _no_writer) if spec.injects else {}
    base = partial(ResumePlan, thread_id, spec.name, status, held_by=held)
    scope = Scope(run, "")
    token = _context.current.set(scope)
    try:
        try:
            result = _run_coroutine(spec.fn(input, **kwargs)) if spec.is_async else spec.fn(input, **kwargs)
        except BaseException as exc:
            stop = _stop_in(exc)
            if stop is None or stop is exc:
                raise
            raise stop from None  # a TaskGroup's group of stops: the dry run stopped where a task would run
        if run.misuse is not None:
            raise run.misuse
        if run.pending:  # a question the body caught with `except BaseException`: it stands
            raise Pause(run.pending[0].public())
    except (NonDeterminismError, SerializationError) as diverged:
        return base(outcome="diverges", replayed=_replayed(replay), error=diverged)
    except (DryStop, Pause, Suspend) as stopped:
        if run.blocked:  # a resume runs these before the body can go on (or pause, or sleep)
            return _runs(base, run, replay)
        if isinstance(stopped, Suspend):
            return base(outcome="sleeps", replayed=_replayed(replay), wake_at=stopped.wake_at)
        return _paused(run, base, replay)
    except Exception as exc:
        if run.blocked:
            return _runs(base, run, replay)
        repeats = last is not None and last.status == "failed" and _same_error(last.error_text, exc)
        return base(outcome="fails", replayed=_replayed(replay), error=exc, repeats=repeats)
    finally:
        _context.current.reset(token)
    if run.blocked:  # calls the body never waited for: a resume waits for them before the run ends
        return _runs(base, run, replay)
    output, _ = unwrap_final(result)
    left = _unreached(replay, rows) if whole else []
    if left:
        return base(outcome="diverges", replayed=_replayed(replay), error=_left_behind(left, rows))
    return base(outcome="finishes", replayed=_replayed(replay), output=output, notes=tuple(replay.notes))


def _run_row(spec: EntrypointSpec, codec: Codec, last: RunRow | None, fresh: bool) -> tuple[RunRow, Any]:
    """The run the dry run replays (a new one's, made up: nothing is recorded for it), and its ``previous``
    value as the engine gives it (a new run's is the last finished run's saved value)."""
    wants = bool({"previous", "runtime"} & set(spec.injects))
    if fresh:
        number = last.run_id + 1 if last is not None else 1
        row = RunRow(number, spec.name, "running", b"", None, _clock.clock.time())
        saved = last.save if last is not None and last.status == "completed" else None
        previous = codec.load(saved, number - 1, "#save", "the previous run's value") if saved and wants else None
        return row, previous
    assert last is not None
    previous = None
    if wants and last.previous is not None:
        previous = codec.load(last.previous, last.run_id - 1, "#save", "the previous run's value")
    return last, previous


def _stop_in(exc: BaseException) -> DryStop | None:
    """``exc`` if it is a `DryStop`, or the first one in an exception group it is (``None``: neither)."""
    if isinstance(exc, DryStop):
        return exc
    for inner in getattr(exc, "exceptions", None) or ():
        if isinstance(inner, BaseException) and (found := _stop_in(inner)) is not None:
            return found
    return None


def _same_error(recorded: str | None, exc: BaseException) -> bool:
    """Whether the run failed before with ``exc``'s type and message (its traceback's frames differ here)."""
    if recorded is None:
        return False
    last = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    return recorded.rstrip().endswith(last)


def _paused(run: DryRun, base: partial[ResumePlan], replay: _Watched) -> ResumePlan:
    pending = tuple(sorted(run.pending, key=lambda p: tuple(int(part) for part in p.key.split("."))))
    if run.rejected:  # the question's type refused a planned answer: invoke raises it
        return base(outcome="diverges", error=AnswerRejectedError(base.args[0], run.rejected))
    now = {p.key: p for p in pending}
    for p in run.asked.values():
        if p.key in now and now[p.key].id != p.id:
            return base(outcome="diverges", replayed=_replayed(replay), error=NonDeterminismError(
                p.key, "interrupt", "interrupt", f"journal key {p.key!r} asked interrupt {p.id!r}, and the code now "
                f"asks it as {now[p.key].id!r}: an answer given by its recorded id would not reach it; keep the id",
            ))  # fmt: skip
    return base(outcome="pauses", replayed=_replayed(replay), interrupts=tuple(p.public() for p in pending))


def _asked_again(planned: ResumePlan, asked: tuple[PendingInterrupt, ...]) -> ResumePlan:
    """A paused run, dry-run with nothing answered, must come back to its questions: asked again at their keys,
    or inside a task the resume runs (which asks them when it runs). Otherwise an answer would reach nothing."""
    if planned.outcome == "diverges":
        return planned
    again = {i.id for i in planned.interrupts} if planned.outcome == "pauses" else set()
    for p in asked:
        if p.id in again or any(p.key.startswith(call.key + ".") for call in planned.runs):
            continue
        now = {
            "runs": f"runs task {planned.next.task!r} at key {planned.next.key}" if planned.next else "runs a task",
            "pauses": f"asks {sorted(again)} instead",
            "sleeps": "sleeps",
            "finishes": "finishes",
            "fails": f"fails with {type(planned.error).__name__}: {planned.error}",
        }.get(planned.outcome, planned.outcome)
        gone = NonDeterminismError(
            p.key, "interrupt", "(nothing)",
            f"journal key {p.key!r}: the run is paused on interrupt {p.id!r}, and the code no longer asks it there "
            f"(replaying the journal, it now {now}): its answer would reach nothing; keep the question, or cancel "
            f"the thread",
        )  # fmt: skip
        return replace(planned, outcome="diverges", error=gone, next=None, runs=(), interrupts=())
    if planned.outcome in ("pauses", "runs"):  # asked again (or by the tasks that ask them): it waits, as it did
        return replace(planned, outcome="waits", next=None, runs=(), interrupts=tuple(p.public() for p in asked))
    return planned


def _runs(base: partial[ResumePlan], run: DryRun, replay: _Watched) -> ResumePlan:
    calls = tuple(run.blocked)
    return base(outcome="runs", replayed=_replayed(replay), next=calls[0], runs=calls, notes=tuple(replay.notes))


def _replayed(replay: _Watched) -> tuple[str, ...]:
    return tuple(dict.fromkeys(replay.looked))


def _unreached(replay: _Watched, rows: list[JournalRow]) -> list[str]:
    """Recorded keys of this run that the body neither read back nor reached through a parent it read back."""
    looked = set(replay.looked)
    left = []
    for key in dict.fromkeys(r.key for r in rows):
        parts = key.split(".")
        if not any(".".join(parts[:i]) in looked for i in range(1, len(parts) + 1)):
            left.append(key)
    return sorted(left, key=lambda k: tuple(int(p) for p in k.split(".")))


def _left_behind(keys: list[str], rows: list[JournalRow]) -> NonDeterminismError:
    names = {r.key: r.name for r in rows}
    first = keys[0]
    return NonDeterminismError(
        first, names[first], "(nothing)",
        f"the run would finish without reaching {len(keys)} recorded call(s), the first at journal key {first!r} "
        f"(task {names[first]!r}): the code no longer makes calls it made when the run started",
    )  # fmt: skip


class _ReadOnlyMemory:
    """The long-term memory as a dry run's body sees it: read as it is (no ttl refreshed); a write stops the dry
    run there (a resume would make it)."""

    _READS = frozenset({"get", "aget", "search", "asearch"})
    _LISTS = frozenset({"list_namespaces", "alist_namespaces"})

    def __init__(self, memory: Any) -> None:
        self._memory = memory

    def __getattr__(self, name: str) -> Any:
        if name in self._LISTS:
            return getattr(self._memory, name)
        if name in self._READS:
            return partial(getattr(self._memory, name), refresh_ttl=False)

        def refused(*args: Any, **kwargs: Any) -> Any:
            scope = _context.current.get()
            if scope is None or not isinstance(scope.run, DryRun):
                raise AttributeError(name)
            scope.run.refuse(f"store.{name}")

        return refused


def _held_by(thread: ThreadRow | None) -> str | None:
    if thread is None or thread.owner is None or thread.lease_expires is None:
        return None
    if thread.lease_expires > time.time() and not owner_is_dead(thread.owner):  # leases are in real time
        return thread.owner
    return None


def _run_coroutine(coro: Any) -> Any:
    """Run an async body to its end from sync code: here, or in a thread of its own if a loop runs here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(contextvars.copy_context().run, asyncio.run, coro).result()


def describe(plan: ResumePlan) -> str:
    """What a resume would do, in a line."""
    count = len(plan.replayed)
    replayed = f"replays {count} recorded call{'s' if count != 1 else ''}, then "
    outcome = plan.outcome
    if outcome == "runs":
        assert plan.next is not None
        also = f" (and {len(plan.runs) - 1} more alongside)" if len(plan.runs) > 1 else ""
        text = f"{replayed}runs {plan.next.task!r} at key {plan.next.key}{also} ({plan.next.detail})"
    elif outcome == "pauses":
        text = f"{replayed}pauses on {', '.join(repr(i.id) for i in plan.interrupts)}"
    elif outcome == "sleeps":
        assert plan.wake_at is not None
        left = plan.wake_at - _clock.clock.time()
        text = f"{replayed}sleeps until {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(plan.wake_at))}" + (
            f" ({_span(left)} from now)" if left > 0 else ""
        )
    elif outcome == "finishes":
        text = f"{replayed}finishes: every call it needs is recorded"
    elif outcome == "fails":
        again = "fails again" if plan.repeats else "fails"
        text = f"{replayed}{again}: {type(plan.error).__name__}: {plan.error}"
    elif outcome == "returns":
        text = "the run finished: returns its output again, running nothing"
    elif outcome == "waits":
        text = f"paused: waits for an answer to {', '.join(repr(i.id) for i in plan.interrupts)}"
    else:
        text = f"diverges: {plan.error}"
    if plan.held_by is not None:
        text += f"; note: {plan.held_by} holds the thread now (an invoke would raise ThreadBusyError)"
    return text


def _span(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds / size:.1f}{unit}"
    return f"{seconds:.0f}s"
