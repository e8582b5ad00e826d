"""Invoking an entrypoint on a thread: one flow, two thin drivers.

`invoke_flow` is the whole procedure (look the thread up, claim its lease,
start or resume the run, call the body, record how it ended, let the lease go)
written as a generator of effects. `drive` carries the effects out with
blocking calls; `adrive` with awaits on an async session. Neither driver knows
what the flow is doing, so the sync and async paths cannot disagree.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from dataclasses import dataclass
from functools import partial
from typing import Any, NamedTuple

from . import _context, _faults
from ._codec import Codec, Keyring
from ._context import Scope
from ._core import InputKind, OnChangedArgs, Replay, plan, unwrap_final
from ._interrupts import (
    INTERRUPT,
    Command,
    Interrupt,
    Interrupted,
    Pause,
    PendingInterrupt,
    Suspend,
    Suspended,
    answers_for,
    pending_from_data,
    pending_to_data,
)
from ._leases import heartbeat, new_owner, owner_is_dead, retire
from ._retry import RetryPolicy
from ._run import Run, Sink, adrain, drain
from ._serde import Serializer, error_text
from ._writers import Durability
from .errors import (
    DurableError,
    IncompatibleJournalError,
    LeaseLostError,
    ResumeError,
    RunCancelledError,
    StoreError,
    ThreadBusyError,
    ThreadNotFoundError,
    UnfinishedRunError,
    UsageError,
)
from .stores._base import ANSWER, AsyncSession, JournalRow, Lease, NewRun, RunOutcome, Store, ThreadRow


@dataclass(frozen=True, slots=True)
class EntrypointSpec:
    name: str
    fn: Callable[..., Any]
    is_async: bool
    takes_previous: bool
    serde: Serializer
    on_changed_args: OnChangedArgs
    retry: RetryPolicy | None = None  # the default for its tasks


class _Op(NamedTuple):
    """Call a store operation (a method of `Store`, or of `AsyncSession` in the async driver)."""

    name: str
    args: tuple[Any, ...]


class _Body(NamedTuple):
    fn: Callable[..., Any]
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class _Drain(NamedTuple):
    scope: Scope


Effect = _Op | _Body | _Drain
Flow = Generator[Effect, Any, Any]


def invoke_flow(
    spec: EntrypointSpec,
    store: Store,
    input: Any,
    thread_id: str,
    durability: Durability,
    session: AsyncSession | None = None,
    sink: Sink | None = None,
    ring: Keyring | None = None,
    reserved: Lease | None = None,
    suspend_after: float | None = None,
) -> Flow:
    """Invoke ``spec`` on a thread. ``reserved`` is a lease a worker's `Store.reserve` took on the
    thread's run: the invoke runs under it, with no claim of its own (its owner stays the worker's).
    With ``suspend_after``, a durable sleep at least that long ends the invoke with `Suspended` and
    leaves the run to a worker."""
    codec = Codec(spec.serde, ring, thread_id)
    given: InputKind = "none" if input is None else "command" if isinstance(input, Command) else "new"
    thread = reserved.thread if reserved is not None else (yield _Op("get_thread", (thread_id,)))
    try:
        kind = plan(thread_id, thread, given)
    except (UnfinishedRunError, ResumeError):
        # A run in progress elsewhere is "busy", not "unfinished" or "not paused": the caller should wait.
        _raise_if_held(thread_id, thread)
        raise
    if kind != "new":
        assert thread is not None and thread.run is not None
        _check_stamp(spec.serde, thread_id, thread.run.stamp)
    if kind == "paused":
        # A paused run being resumed right now, or whose answers were journaled by a resume that
        # then died, is not paused any more, whatever its status still says.
        _raise_if_held(thread_id, thread)
        assert thread is not None and thread.run is not None
        recorded: list[JournalRow] = yield _Op("load_journal", (thread.tid, thread.run.run_id))
        if not _answered(codec, thread, recorded):
            return _settled(codec, thread_id, thread, kind, sink)
        kind = "resume"
    if kind == "finished":
        return _settled(codec, thread_id, thread, kind, sink)
    if kind == "answer":
        answers_for(_pending(codec, thread), input.resume, thread_id)  # a bad Command fails before any write
    what = f"the input of {spec.name!r}"
    input_blob = codec.dump(input, "*", "#input", "", what) if given == "new" else b""

    owner = reserved.owner if reserved is not None else new_owner()
    owns = reserved is None  # a reservation's owner is the worker's, and outlives this run
    # New input starts its run in the claim's own transaction (one commit, not two).
    new_run = NewRun(spec.name, input_blob, spec.serde.stamp()) if given == "new" else None
    try:
        if reserved is not None:
            lease: Lease = reserved
        else:
            try:
                lease = yield _Op("claim", (thread_id, owner, None, new_run))
            except ThreadBusyError as busy:
                if busy.owner is None or not owner_is_dead(busy.owner):
                    raise
                lease = yield _Op("claim", (thread_id, owner, busy.owner, new_run))
    except BaseException:
        if owns:
            retire(owner)
        raise
    released = False
    try:
        thread = lease.thread
        run_row = thread.run
        if lease.started:
            assert run_row is not None
            rows: list[JournalRow] = []
        else:
            # Look again: another executor may have moved the thread on while we were claiming it.
            kind = plan(thread_id, thread, given)
            if kind == "finished":
                return _settled(codec, thread_id, thread, kind, sink)
            assert run_row is not None
            _check_stamp(spec.serde, thread_id, run_row.stamp)
            rows = yield _Op("load_journal", (lease.tid, run_row.run_id))
            if kind == "paused" and not _answered(codec, thread, rows):
                return _settled(codec, thread_id, thread, kind, sink)
            if kind == "answer":
                answers = answers_for(_pending(codec, thread), input.resume, thread_id)
                answered = _answer_rows(codec, run_row.run_id, rows, answers)
                yield _Op("append", (lease, run_row.run_id, answered))
                rows += answered
            input = codec.load(run_row.input, "*", "#input", "", f"the input of thread {thread_id!r}")

        replay = Replay(rows, run_row.retry_keys, spec.on_changed_args)
        run = Run(
            store=store,
            lease=lease,
            run_id=run_row.run_id,
            replay=replay,
            codec=codec,
            durability=durability,
            session=session,
            sink=sink,
        )
        run.default_retry = spec.retry
        run.suspend_after = suspend_after
        from . import _observe  # logging is imported by the first run, not by `import durable`

        observer = run.observer = _observe.run_started(spec.name, thread_id, run.run_id, not lease.started, len(rows))
        ended = partial(_observe.run_ended, observer, spec.name, thread_id, run.run_id)
        kwargs: dict[str, Any] = {}
        if spec.takes_previous:
            prev = run_row.previous
            what = "the previous run's value"
            kwargs["previous"] = None if prev is None else codec.load(prev, run_row.run_id - 1, "#save", "", what)

        scope = Scope(run, "")
        token = _context.current.set(scope)
        heartbeat.add(store, lease, partial(run.lose, LeaseLostError(thread_id)))
        paused: Interrupted | Suspended | None = None
        try:
            try:
                try:
                    result = yield _Body(spec.fn, (input,), kwargs)
                finally:
                    yield _Drain(scope)
                    if run.misuse is not None:
                        raise run.misuse
                if run.pending:  # an interrupt the body caught with `except BaseException`: the question stands
                    raise Pause(Interrupt(run.pending[0].id, run.pending[0].value))
                output, save = unwrap_final(result)
                outcome = RunOutcome(
                    "completed",
                    output=codec.dump(output, run.run_id, "#output", "", f"the output of {spec.name!r}"),
                    save=codec.dump(save, run.run_id, "#save", "", f"the saved value of {spec.name!r}"),
                )
            except Pause:
                # In call order, whichever parallel task happened to pause first.
                pending = tuple(sorted(run.pending, key=lambda p: tuple(int(part) for part in p.key.split("."))))
                paused = Interrupted(tuple(Interrupt(p.id, p.value) for p in pending), thread_id)
                blob = codec.dump(pending_to_data(pending), run.run_id, "#interrupts", "", "the pending interrupts")
                outcome = RunOutcome("interrupted", interrupts=blob)
            except Suspend as sleeping:
                paused = Suspended(sleeping.wake_at)
                outcome = RunOutcome("running", wake_at=sleeping.wake_at)
            except BaseException as exc:
                if run.lost is not None:
                    raise run.lost from None  # the lease is gone: nothing more can be recorded
                ended("failed", exc)
                failed = RunOutcome(
                    "failed",
                    error=codec.dump_error(exc, run.run_id, "#error", ""),
                    error_text=error_text(exc),
                    retry_keys=replay.retry_keys_after(exc),
                )
                yield from _finish(run, failed)
                released = True
                raise
            finally:
                _context.current.reset(token)
                heartbeat.remove(lease)
            yield from _finish(run, outcome)
        except LeaseLostError as lost:
            # Taken over, or cancelled: a cancellation says so.
            now: ThreadRow | None = yield _Op("get_thread", (thread_id,))
            cancelled = _cancelled(codec, now, run.run_id)
            ended("stopped", cancelled or lost)
            if cancelled is not None:
                raise cancelled from None
            raise
        released = True
        if isinstance(paused, Interrupted):
            ended(f"paused on {len(paused.interrupts)} interrupt(s)", None)
        elif paused is not None:
            ended(f"suspended in a durable sleep until {time.ctime(paused.wake_at)}", None)
        else:
            ended("completed", None)
        if isinstance(paused, Interrupted):
            if sink is not None:
                sink("updates", {"__interrupt__": paused.interrupts})
                sink("values", paused)
            return paused
        if paused is not None:
            return paused
        if sink is not None:
            sink("updates", {spec.name: output})
            sink("values", output)
        return output
    finally:
        try:
            if not released:  # finish_run gives the lease up with the outcome, in one commit
                yield _Op("release", (lease,))
        finally:
            if owns:
                retire(owner)


def submit_flow(spec: EntrypointSpec, input: Any, thread_id: str, ring: Keyring | None) -> Flow:
    """Record a new run with ``input`` and leave it for a worker: claim it, start it, let the lease go."""
    if input is None or isinstance(input, Command):
        raise UsageError(
            f"submit() starts a new run, so it takes new input, not {input!r}: resume a thread's run with "
            f"invoke(None, thread_id=...) or answer it with invoke(Command(resume=...), thread_id=...)"
        )
    thread = yield _Op("get_thread", (thread_id,))
    try:
        plan(thread_id, thread, "new")
    except UnfinishedRunError:
        _raise_if_held(thread_id, thread)
        raise
    codec = Codec(spec.serde, ring, thread_id)
    blob = codec.dump(input, "*", "#input", "", f"the input of {spec.name!r}")
    owner = new_owner()
    try:
        lease: Lease = yield _Op("claim", (thread_id, owner, None, NewRun(spec.name, blob, spec.serde.stamp())))
        try:
            if not lease.started:  # another executor started a run since we looked
                plan(thread_id, lease.thread, "new")
        finally:
            yield _Op("release", (lease,))
    finally:
        retire(owner)
    return thread_id


def cancel_flow(spec: EntrypointSpec, thread_id: str, ring: Keyring | None) -> Flow:
    """Fail the thread's unfinished run with `RunCancelledError`; whoever runs it stops at its next write."""
    thread: ThreadRow | None = yield _Op("get_thread", (thread_id,))
    run = thread.run if thread is not None else None
    if run is None:
        raise ThreadNotFoundError(thread_id)
    if run.status not in ("running", "interrupted"):
        return False
    codec = Codec(spec.serde, ring, thread_id)
    exc = RunCancelledError(thread_id, run.run_id)
    outcome = RunOutcome(
        "failed", error=codec.dump_error(exc, run.run_id, "#error", ""), error_text=f"RunCancelledError: {exc}"
    )
    return (yield _Op("cancel_run", (thread_id, run.run_id, outcome)))


def _cancelled(codec: Codec, thread: ThreadRow | None, run_id: int) -> RunCancelledError | None:
    run = thread.run if thread is not None else None
    if run is None or run.run_id != run_id or run.status != "failed" or run.error is None:
        return None
    if not (run.error_text or "").startswith("RunCancelledError"):
        return None
    try:
        error = codec.load(run.error, run_id, "#error", "", "the run's error")
    except DurableError:
        return None
    return error if isinstance(error, RunCancelledError) else None


def _pending(codec: Codec, thread: ThreadRow | None) -> tuple[PendingInterrupt, ...]:
    run = thread.run if thread is not None else None
    if run is None or run.interrupts is None:
        return ()
    return pending_from_data(codec.load(run.interrupts, run.run_id, "#interrupts", "", "the pending interrupts"))


def _answered(codec: Codec, thread: ThreadRow | None, rows: list[JournalRow]) -> bool:
    """Whether any pending interrupt already has an answer in the journal."""
    keys = {p.key for p in _pending(codec, thread)}
    return any(r.status == ANSWER and r.key in keys for r in rows)


def _check_stamp(serde: Serializer, thread_id: str, stamp: str | None) -> None:
    """Refuse, before unpickling anything, a journal this process cannot safely read."""
    if stamp is None:
        return
    reason = serde.incompatible(stamp)
    if reason is not None:
        raise IncompatibleJournalError(thread_id, stamp, serde.stamp(), reason)


def _settled(codec: Codec, thread_id: str, thread: ThreadRow | None, kind: str, sink: Sink | None) -> Any:
    """What a finished run returned, or the interrupts a paused run is waiting on (nothing runs)."""
    if kind == "paused":
        value: Any = Interrupted(tuple(Interrupt(p.id, p.value) for p in _pending(codec, thread)), thread_id)
        if sink is not None:
            sink("updates", {"__interrupt__": value.interrupts})
    else:
        value = _finished_output(codec, thread_id, thread)
    if sink is not None:
        sink("values", value)
    return value


def _answer_rows(codec: Codec, run_id: int, rows: list[JournalRow], answers: dict[str, Any]) -> list[JournalRow]:
    now = time.time()
    last = {r.key: r.attempt for r in rows if r.key in answers}
    return [
        JournalRow(key, last.get(key, 0) + 1, INTERRUPT, ANSWER, None,
                   codec.dump(value, run_id, key, INTERRUPT, f"the answer to interrupt {key}"), now, now)
        for key, value in answers.items()
    ]  # fmt: skip


def _raise_if_held(thread_id: str, thread: ThreadRow | None) -> None:
    if thread is None or thread.owner is None or thread.lease_expires is None:
        return
    remaining = thread.lease_expires - time.time()
    if remaining > 0 and not owner_is_dead(thread.owner):
        raise ThreadBusyError(thread_id, thread.owner, remaining)


def _finished_output(codec: Codec, thread_id: str, thread: ThreadRow | None) -> Any:
    run = thread.run if thread is not None else None
    if run is None or run.output is None:
        raise StoreError(f"thread {thread_id!r} is completed but its output is missing from the store")
    return codec.load(run.output, run.run_id, "#output", "", f"the output of thread {thread_id!r}")


def _finish(run: Run, outcome: RunOutcome) -> Flow:
    _faults.hit("before_finish")
    rows = run.take_buffered()
    if rows:
        yield _Op("append", (run.lease, run.run_id, rows))
    yield _Op("finish_run", (run.lease, run.run_id, outcome))
    _faults.hit("after_finish")


def drive(flow: Flow, store: Store) -> Any:
    """Carry a flow out with blocking calls."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value
        value = error = None
        try:
            if isinstance(effect, _Op):
                value = getattr(store, effect.name)(*effect.args)
            elif isinstance(effect, _Body):
                value = effect.fn(*effect.args, **effect.kwargs)
            else:
                drain(effect.scope)
        except BaseException as exc:
            error = exc


async def adrive(flow: Flow, session: AsyncSession) -> Any:
    """Carry a flow out with awaits."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            effect = flow.send(value) if error is None else flow.throw(error)
        except StopIteration as stop:
            return stop.value
        value = error = None
        try:
            if isinstance(effect, _Op):
                value = await getattr(session, effect.name)(*effect.args)
            elif isinstance(effect, _Body):
                value = await effect.fn(*effect.args, **effect.kwargs)
            else:
                await adrain(effect.scope)
        except BaseException as exc:
            error = exc
