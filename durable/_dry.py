"""Dry runs: what resuming a thread would do, found by replaying its journal without running any task.

`forecast` reads a thread and its run's whole journal (it takes no lease and writes nothing, so it never gets in
the way of a live owner), then runs the entrypoint's body under a `DryRun`: a `Run` whose recorded calls replay
as a resume replays them, and whose first call with nothing to replay stops the body with `DryStop` instead of
running. What the body does up to there is what the resume would do:

* it stops at a call: that task runs next (``runs``), and why: nothing recorded, its recorded error is retried, its
  retry policy owes an attempt, its arguments changed under ``on_changed_args="rerun"``;
* it pauses on questions (``pauses``), or reaches a durable sleep still to wait (``sleeps``, until when);
* it returns (``finishes``: everything it needs is recorded), or raises (``fails``);
* or the journal no longer fits the code (``diverges``): a call that differs from the one recorded at its key
  (`NonDeterminismError`), a value that no longer reads (`RecordedValueError`), a question no longer asked or
  asked under another id, recorded calls the code no longer makes.

A `Command` is planned as a resume with its answers: they are checked (a bad one raises as `invoke` would) and
added to the journal the dry run reads, not to the store. The body's own code runs (it is replayed on every
resume anyway), and so do the converters of versioned tasks; task bodies never do. A nested entrypoint is
workflow code too: the dry run replays its body.
"""

from __future__ import annotations

import asyncio
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
from typing import Any, Literal

from . import _context
from . import _questions as _q
from ._codec import Codec, Keyring
from ._context import Scope
from ._core import InputKind, Replay, plan
from ._digest import digest_call
from ._engine import EntrypointSpec, _check_stamp, check_owner
from ._futures import TaskFuture
from ._interrupts import Command, Interrupt, Pause, PendingInterrupt, Suspend
from ._run import Run, TaskSpec
from ._runtime import RunEnv, _no_writer, injected
from ._serde import error_text
from .errors import NonDeterminismError, SerializationError
from .stores._base import ERROR, RETRY, JournalRow, Lease, RunRow, Store, ThreadRow

Outcome = Literal["runs", "pauses", "sleeps", "finishes", "fails", "returns", "waits", "diverges"]
Why = Literal["unrecorded", "failed", "retrying", "arguments-changed", "new-run", "memory-write"]


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
    with ``output``), ``"fails"`` (the body raises ``error`` during the replay), ``"returns"`` (the run finished:
    ``output`` is returned again), ``"waits"`` (paused with nothing answered: ``interrupts`` are returned again),
    or ``"diverges"`` (the journal no longer fits the code: ``error`` says where). ``replayed`` are the keys whose
    recorded outcomes the resume reads back, in the order the body reaches them.
    """

    thread_id: str
    entrypoint: str
    status: str  # the thread's run status now ("new": no run, or a finished one, and new input)
    outcome: Outcome
    replayed: tuple[str, ...] = ()
    next: NextCall | None = None
    interrupts: tuple[Interrupt, ...] = ()
    wake_at: float | None = None
    output: Any = None
    error: BaseException | None = None
    notes: tuple[str, ...] = ()
    held_by: str | None = None  # a live executor holds the thread now: the invoke would raise ThreadBusyError
    repeats: bool = False  # "fails": with the error the run failed with before (not a new failure)

    def __str__(self) -> str:
        from ._verify import describe

        return describe(self)


class DryStop(BaseException):
    """The dry run reached a call the journal cannot answer: a real resume would run it here.

    A `BaseException`, as pausing is, so a body's ``except Exception:`` does not swallow it."""

    def __init__(self, call: NextCall) -> None:
        super().__init__(call.key)
        self.call = call


class _Watched(Replay):
    """The replay, remembering the keys whose recorded outcomes the body read back, in order."""

    __slots__ = ("looked",)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.looked: list[str] = []

    def lookup(
        self, key: str, name: str, digest: bytes | None, aliases: tuple[str, ...] = ()
    ) -> tuple[JournalRow | None, int]:
        found = super().lookup(key, name, digest, aliases)
        if found[0] is not None:
            self.looked.append(key)
        return found


class DryRun(Run):
    """A `Run` that replays what is recorded and stops (`DryStop`) where a resume would run a task.

    Its writer buffers (``durability="exit"``) and is never flushed, so what the body would journal besides
    tasks (``durable.now()``, a sleep's wake-up time, a patch's marker) stays in memory. Every durable sleep
    still to wait ends the body (``suspend_after = 0``).
    """

    def __init__(self, *, status: str, **kwargs: Any) -> None:
        super().__init__(durability="exit", **kwargs)
        self.status = status
        self.suspend_after = 0.0

    def call(self, spec: TaskSpec, scope: Scope, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskFuture[Any]:
        key = scope.next_key()
        digest = b"" if spec.node else digest_call(args, kwargs)
        before = self.replay.peek(key)
        row, attempt = self.replay.lookup(key, spec.name, digest, spec.aliases)
        if row is not None:
            return self._replayed(row, spec.name, spec)
        if (
            not spec.inherit_retry and not spec.node
        ):  # a nested entrypoint: its body is workflow code, replayed as a resume does
            return self._nested(spec, key, attempt, args, kwargs)
        raise DryStop(self._why(spec, key, before))

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
            children = sum(1 for k in self.replay_keys() if k.startswith(key + "."))
            detail = {
                "running": "not recorded: it was running, or about to start, when the run's process stopped",
                "failed": "not recorded: the run stopped before it got here",
            }.get(self.status, "not recorded: the run has not got here yet")
            if children:
                detail += f" (its {children} recorded call(s) replay inside it)"
            return NextCall(key, spec.name, "unrecorded", detail)
        if row.status == RETRY:
            return NextCall(
                key, spec.name, "retrying", f"attempt {row.attempt} failed and its retry policy tries it again"
            )
        if row.status == ERROR:
            return NextCall(key, spec.name, "failed", "its recorded error failed the run: it runs again")
        return NextCall(
            key, spec.name, "arguments-changed", "it is called with other arguments than were recorded "
            "(on_changed_args='rerun')"
        )  # fmt: skip

    def replay_keys(self) -> list[str]:
        return list(self.replay._latest)


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
        return _dry(spec, store, ring, thread_id, thread, input, (), [], "new", env, held)
    assert thread is not None and thread.run is not None
    run = thread.run
    _check_stamp(spec.serde, thread_id, run.stamp)
    codec = Codec(spec.serde, ring, thread_id, thread.nonce, run.entrypoint, store.max_result_bytes)
    asked = _q.pending_questions(codec, thread)
    rows = store.load_journal(thread.tid, run.run_id)
    if kind == "finished":
        output = codec.load(run.output, run.run_id, "#output", "the output") if run.output is not None else None
        return ResumePlan(thread_id, spec.name, run.status, "returns", output=output, held_by=held)
    if kind == "paused" and not _q.due(asked, rows) and not deep:
        interrupts = tuple(p.public() for p in asked)
        return ResumePlan(thread_id, spec.name, run.status, "waits", interrupts=interrupts, held_by=held)
    answered: list[JournalRow] = []
    if isinstance(input, Command):
        records = _q.answers_given(codec, thread, input, thread_id, asked)
        _q.refuse_answered(thread_id, asked, rows, records)
        answered = _q.answer_rows(codec, run.run_id, rows, records)
    answered += _q.timeout_rows(codec, run.run_id, rows, asked, {r.key for r in answered})
    value = codec.load(run.input, run.run_id, "#input", f"the input of thread {thread_id!r}")
    planned = _dry(spec, store, ring, thread_id, thread, value, asked, rows + answered, run.status, env, held)
    if kind == "paused" and not answered and not _q.due(asked, rows):
        return _asked_again(planned, asked)
    return planned


def _dry(
    spec: EntrypointSpec, store: Store, ring: Keyring | None, thread_id: str, thread: ThreadRow | None, input: Any,
    asked: tuple[PendingInterrupt, ...], rows: list[JournalRow], status: str, env: RunEnv,
    held: str | None,
) -> ResumePlan:  # fmt: skip
    run_row = thread.run if thread is not None else None
    fresh = status == "new"
    run_id = (run_row.run_id + 1 if fresh else run_row.run_id) if run_row is not None else 1
    nonce = thread.nonce if thread is not None else None
    codec = Codec(spec.serde, ring, thread_id, nonce, spec.name if fresh or run_row is None else run_row.entrypoint)
    replay = _Watched(rows, () if fresh or run_row is None else run_row.retry_keys, spec.on_changed_args)
    phantom = ThreadRow(thread_id, thread.tid if thread is not None else 0, None, None, 0, run_row, nonce)
    run = DryRun(
        status=status, store=store, lease=Lease(thread_id, phantom.tid, "dry-run", 0, phantom), run_id=run_id,
        replay=replay, codec=codec,
    )  # fmt: skip
    run.asked = {p.key: p for p in asked}
    run.default_retry = spec.retry
    run.env, run.cache = env, None
    previous = None
    if (
        not fresh
        and run_row is not None
        and run_row.previous is not None
        and set(spec.injects) & {"previous", "runtime"}
    ):
        previous = codec.load(run_row.previous, run_row.run_id - 1, "#save", "the previous run's value")
    # The body may read the long-term memory as a resume would; a write stops the dry run there.
    env = replace(env, store=_ReadOnlyMemory(env.store, run) if env.store is not None else None, cache=None)
    kwargs = injected(spec.injects, env, previous, _no_writer) if spec.injects else {}
    base = partial(ResumePlan, thread_id, spec.name, status, held_by=held)
    scope = Scope(run, "")
    token = _context.current.set(scope)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            result = _run_coroutine(spec.fn(input, **kwargs)) if spec.is_async else spec.fn(input, **kwargs)
        if run.misuse is not None:
            raise run.misuse
        if run.pending:  # a question the body caught with `except BaseException`: it stands
            raise Pause(run.pending[0].public())
    except DryStop as stop:
        return base(outcome="runs", replayed=_replayed(replay), next=stop.call, notes=_notes(caught))
    except Pause:
        return _paused(run, asked, base, replay)
    except Suspend as sleeping:
        return base(outcome="sleeps", replayed=_replayed(replay), wake_at=sleeping.wake_at)
    except (NonDeterminismError, SerializationError) as diverged:
        return base(outcome="diverges", replayed=_replayed(replay), error=diverged)
    except Exception as exc:
        return _failed(run_row, exc, base, replay)
    finally:
        _context.current.reset(token)
    from ._core import unwrap_final

    output, _ = unwrap_final(result)
    left = _unreached(replay, rows)
    if left:
        return base(outcome="diverges", replayed=_replayed(replay), error=_left_behind(left, rows))
    return base(outcome="finishes", replayed=_replayed(replay), output=output, notes=_notes(caught))


def _paused(
    run: DryRun, asked: tuple[PendingInterrupt, ...], base: partial[ResumePlan], replay: _Watched
) -> ResumePlan:
    pending = tuple(sorted(run.pending, key=lambda p: tuple(int(part) for part in p.key.split("."))))
    now = {p.key: p for p in pending}
    for p in asked:
        if p.key not in now:
            continue
        if now[p.key].id != p.id:
            return base(outcome="diverges", replayed=_replayed(replay), error=NonDeterminismError(
                p.key, "interrupt", "interrupt", f"journal key {p.key!r} asked interrupt {p.id!r}, and the code now "
                f"asks it as {now[p.key].id!r}: an answer given by its recorded id would not reach it; keep the id",
            ))  # fmt: skip
    return base(outcome="pauses", replayed=_replayed(replay), interrupts=tuple(p.public() for p in pending))


def _asked_again(planned: ResumePlan, asked: tuple[PendingInterrupt, ...]) -> ResumePlan:
    """A paused run, dry-run with nothing answered, must come back to its questions: asked again at their keys,
    or inside the task that runs next (which asks them when it runs). Otherwise an answer would reach nothing."""
    if planned.outcome == "diverges":
        return planned
    again = {i.id for i in planned.interrupts} if planned.outcome == "pauses" else set()
    inside = planned.next.key + "." if planned.outcome == "runs" and planned.next is not None else None
    for p in asked:
        if p.id in again or (inside is not None and p.key.startswith(inside)):
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
        return replace(planned, outcome="diverges", error=gone, next=None, interrupts=())
    return replace(planned, outcome="waits") if planned.outcome == "pauses" else planned


def _failed(run_row: RunRow | None, exc: Exception, base: partial[ResumePlan], replay: _Watched) -> ResumePlan:
    """The body raised during the replay: ``repeats`` when the run failed with that very error before."""
    repeats = run_row is not None and run_row.status == "failed" and run_row.error_text == error_text(exc)
    return base(outcome="fails", replayed=_replayed(replay), error=exc, repeats=repeats)


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


def _notes(caught: list[warnings.WarningMessage]) -> tuple[str, ...]:
    return tuple(str(w.message) for w in caught)


class _ReadOnlyMemory:
    """The long-term memory as a dry run's body sees it: read as it is; a write stops the dry run (a resume
    would make it, and a dry run writes nothing)."""

    _WRITES = frozenset({"put", "aput", "delete", "adelete", "batch", "abatch"})

    def __init__(self, memory: Any, run: DryRun) -> None:
        self._memory, self._run = memory, run

    def __getattr__(self, name: str) -> Any:
        if name in self._WRITES:

            def refused(*args: Any, **kwargs: Any) -> Any:
                scope = _context.current.get()
                key = f"{scope.prefix}{scope.n}" if scope is not None else "?"
                raise DryStop(NextCall(key, f"store.{name}", "memory-write", "the body writes to its long-term memory"))

            return refused
        return getattr(self._memory, name)


def _held_by(thread: ThreadRow | None) -> str | None:
    import time

    from ._leases import owner_is_dead

    if thread is None or thread.owner is None or thread.lease_expires is None:
        return None
    if thread.lease_expires > time.time() and not owner_is_dead(thread.owner):
        return thread.owner
    return None


def _run_coroutine(coro: Any) -> Any:
    """Run an async body to its end from sync code: here, or in a thread of its own if a loop runs here."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    with ThreadPoolExecutor(1) as pool:
        import contextvars

        return pool.submit(contextvars.copy_context().run, asyncio.run, coro).result()
