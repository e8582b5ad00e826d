"""Invoking an entrypoint on a thread, written once as a flow of effects (see `_drivers`).

`invoke_flow` is the whole procedure, in four steps: `_look` at the thread and
decide what the input means (nothing is written yet), `_claim` its lease,
`_carry` the run back in (a run that cannot be read fails here), and
`_execute` the body and record how it ended, which lets the lease go.
`submit_flow` and `cancel_flow` are the two other ways to change a thread.
`drive` and `adrive` carry any of them out, blocking or async.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from . import _chunks, _context, _faults
from . import _questions as _q
from ._codec import SIGNED, SIGNED_V1, Codec, Keyring, new_nonce
from ._context import Scope
from ._core import HEAD, InputKind, OnChangedArgs, Replay, plan, unwrap_final
from ._drivers import Body as _Body
from ._drivers import Drain as _Drain
from ._drivers import Flow
from ._drivers import Op as _Op
from ._interrupts import (
    Command,
    Interrupt,
    Interrupted,
    Pause,
    PendingInterrupt,
    Suspend,
    Suspended,
    pending_from_data,
    pending_to_data,
)
from ._leases import heartbeat, new_owner, owner_is_dead, retire
from ._retry import Retry
from ._run import Run, Sink
from ._runtime import EMPTY, RunEnv, _no_writer, injected
from ._serde import Serializer, error_text
from ._state import is_update
from ._writers import Durability
from .errors import (
    AnswerRejectedError,
    ConfigurationError,
    DurableError,
    EntrypointMismatchError,
    IncompatibleJournalError,
    IntegrityError,
    LeaseLostError,
    ResumeError,
    RunCancelledError,
    SerializationError,
    StoreError,
    ThreadBusyError,
    ThreadNotFoundError,
    UnfinishedRunError,
    UsageError,
)
from .stores._base import AsyncSession, JournalRow, Lease, NewRun, RunOutcome, RunRow, Store, ThreadRow


@dataclass(frozen=True, slots=True)
class EntrypointSpec:
    name: str
    fn: Callable[..., Any]
    is_async: bool
    injects: tuple[str, ...]  # the parameters the body declared among `_runtime.INJECTABLE`
    serde: Serializer
    on_changed_args: OnChangedArgs
    retry: Retry | None = None  # the default for its tasks
    aliases: tuple[str, ...] = ()  # names its runs were recorded under by earlier versions
    forget_prior: bool = False  # its saved value is all the next run needs (a graph's state): see RunOutcome


_CLAIM_TRIES = 5  # looks at a thread that keeps changing between the look and the claim


@dataclass(frozen=True, slots=True)
class Invocation:
    """One invocation of an entrypoint on a thread: what it was given, and how its run is carried out."""

    spec: EntrypointSpec
    store: Store
    input: Any
    given: InputKind  # what ``input`` means: "new" input, "none" (resume), or a "command"
    thread_id: str
    durability: Durability
    session: AsyncSession | None  # the async driver's (None: blocking)
    sink: Sink | None  # where a streamed run's events go
    ring: Keyring | None
    suspend_after: float | None
    env: RunEnv


@dataclass(frozen=True, slots=True)
class _Ticket:
    """What a look at the thread decided to claim: a new run (its signed input), or the run there is."""

    codec: Codec
    new_run: NewRun | None
    answers: dict[str, bytes] | None  # a Command's answers by journal key, serialized before anything is written
    # The paused run's questions as the look read them, and the recorded bytes they were read from: the carry
    # reuses them (and the answers made against them) while the run still holds those bytes.
    asked: tuple[PendingInterrupt, ...] = ()
    asked_from: bytes | None = None


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
    env: RunEnv = EMPTY,
) -> Flow:
    """Invoke ``spec`` on a thread: look at it, claim it, carry its run (`_carry`).

    ``reserved`` is a lease a worker's `Store.reserve` took on the thread's run: the invoke runs
    under it, with no claim of its own (its owner stays the worker's). With ``suspend_after``, a
    durable sleep at least that long ends the invoke with `Suspended` and leaves the run to a worker.
    """
    given: InputKind = "none" if input is None else "command" if isinstance(input, Command) else "new"
    if given == "command" and input.steers:
        raise UsageError(
            f"{spec.name!r} is an entrypoint: Command(update=..., goto=..., graph=...) steers a graph "
            f"(durable.graph); answer an entrypoint's interrupts with Command(resume=...)"
        )
    inv = Invocation(spec, store, input, given, thread_id, durability, session, sink, ring, suspend_after, env)
    if reserved is not None:
        thread = reserved.thread
        assert thread.run is not None
        codec = Codec(spec.serde, ring, thread_id, thread.nonce, spec.name, store.max_result_bytes)
        return (yield from _carry(inv, reserved, _Ticket(codec, None, None)))
    owner = new_owner()
    try:
        for _ in range(_CLAIM_TRIES):
            looked = yield from _look(inv)
            if not isinstance(looked, _Ticket):
                return looked  # finished, or still paused: nothing to run
            lease = yield from _claim(thread_id, owner, looked.new_run)
            if not (given == "new" and not lease.started and _startable(lease.thread)):
                return (yield from _carry(inv, lease, looked))
            # The thread changed between the look and the claim (a run came and went, or it was deleted and
            # made again): the input was signed for another run number or nonce. Look again.
            yield _Op("release", (lease,))
        raise ThreadBusyError(thread_id, "other executors (the thread kept changing under this one)", None)
    finally:
        retire(owner)


def _look(inv: Invocation) -> Flow:
    """Decide what the invocation means before writing anything: a finished or paused run's value is
    returned at once (nothing to claim); otherwise a `_Ticket`. A bad input or `Command` fails here."""
    spec, store, input, thread_id = inv.spec, inv.store, inv.input, inv.thread_id
    thread: ThreadRow | None = yield _Op("get_thread", (thread_id,))
    check_owner(thread_id, thread, spec)
    nonce = thread.nonce if thread is not None else new_nonce()
    codec = Codec(spec.serde, inv.ring, thread_id, nonce, spec.name, store.max_result_bytes)
    try:
        kind = plan(thread_id, thread, inv.given)
    except (UnfinishedRunError, ResumeError):
        # A run in progress elsewhere is "busy", not "unfinished" or "not paused": the caller should wait.
        _raise_if_held(thread_id, thread)
        raise
    if kind == "new":
        number = thread.run.run_id + 1 if thread is not None and thread.run is not None else 1
        blob = codec.dump(input, number, "#input", f"the input of {spec.name!r}")
        # The run starts in the claim's own transaction (one commit, not two).
        return _Ticket(codec, NewRun(spec.name, blob, spec.serde.stamp(), number, nonce), None)
    assert thread is not None and thread.run is not None
    _check_stamp(spec.serde, thread_id, thread.run.stamp)
    codec = codec.for_thread(nonce, thread.run.entrypoint)  # its values are signed under the name it was run as
    if kind == "paused":
        # A paused run being resumed right now, or whose answers were journaled by a resume that
        # then died (or by `Threads.answer`), or whose question's deadline passed, is not paused any
        # more, whatever its status still says.
        _raise_if_held(thread_id, thread)
        asked = _q.pending_questions(codec, thread)
        if not _q.due(asked, (yield from _q.pending_rows(thread, asked))):
            return (yield from _settled(inv, codec, thread, kind))
    if kind == "finished":
        return (yield from _settled(inv, codec, thread, kind))
    if kind != "answer":
        return _Ticket(codec, None, None)
    # A bad Command (or an answer that does not fit or cannot be stored) fails here, before any write.
    asked = _q.pending_questions(codec, thread)
    answers = _q.answers_given(codec, thread, input, thread_id, asked)
    return _Ticket(codec, None, answers, asked, thread.run.interrupts)


def _claim(thread_id: str, owner: str, new_run: NewRun | None) -> Flow:
    try:
        return (yield _Op("claim", (thread_id, owner, None, new_run)))
    except ThreadBusyError as busy:
        if busy.owner is None or not owner_is_dead(busy.owner):
            raise
        return (yield _Op("claim", (thread_id, owner, busy.owner, new_run)))


def _startable(thread: ThreadRow) -> bool:
    return thread.run is None or thread.run.status == "completed"


def check_owner(thread_id: str, thread: ThreadRow | None, spec: EntrypointSpec) -> None:
    """A thread belongs to the entrypoint that started it (by its name, or a name it had): refuse any other."""
    run = thread.run if thread is not None else None
    if run is not None and run.entrypoint != spec.name and run.entrypoint not in spec.aliases:
        raise EntrypointMismatchError(thread_id, run.entrypoint, spec.name)


def _carry(inv: Invocation, lease: Lease, ticket: _Ticket) -> Flow:
    """Under the lease: read the run back (a run that cannot be read fails), then run it (`_execute`).

    Until `_execute` takes the lease over, leaving here in any way lets the lease go.
    """
    spec, input, given = inv.spec, inv.input, inv.given
    thread_id = lease.thread_id
    command = input if given == "command" else None
    handed_over = False
    try:
        thread = lease.thread
        run_row = thread.run
        codec = ticket.codec.for_thread(thread.nonce, run_row.entrypoint if run_row is not None else None)
        rows: list[JournalRow] = []
        whole = True  # the rows are the run's whole journal (else the replay reads the rest by keys)
        if not lease.started:
            # Look again: another executor may have moved the thread on while we were claiming it.
            check_owner(thread_id, thread, spec)
            kind = plan(thread_id, thread, given)
            if kind == "finished":
                return (yield from _settled(inv, codec, thread, kind))
            assert run_row is not None
            rows, whole = yield _Op("journal_head", (lease.tid, run_row.run_id, HEAD))
            if not whole:  # the replay reads the rest as the run goes; the answers need their keys' rows now
                rows = _merged(rows, (yield from _q.pending_rows(thread, _asked(codec, thread, ticket))))
            if kind == "paused" and not _q.due(_asked(codec, thread, ticket), rows):
                return (yield from _settled(inv, codec, thread, kind))
        assert run_row is not None
        if not lease.started:
            # Another Python (or serializer) wrote it: left for a worker that can read it, not failed.
            _check_stamp(spec.serde, thread_id, run_row.stamp)
        answered: list[JournalRow] = []
        asked: tuple[PendingInterrupt, ...] = ()
        try:
            previous = None
            if not lease.started:
                input = codec.load(run_row.input, run_row.run_id, "#input", f"the input of thread {thread_id!r}")
                asked = _asked(codec, thread, ticket)
            if command is not None:
                # Answered again under the lease unless the questions are those the look answered.
                records = ticket.answers if ticket.asked_from == run_row.interrupts else None
                if records is None:
                    records = _q.answers_given(codec, thread, command, thread_id, asked)
                _q.refuse_answered(thread_id, asked, rows, records)
                answered = _q.answer_rows(codec, run_row.run_id, rows, records)
            answered += _q.timeout_rows(codec, run_row.run_id, rows, asked, {r.key for r in answered})
            if "previous" in spec.injects or "runtime" in spec.injects:
                prev, what = run_row.previous, "the previous run's value"
                previous = None if prev is None else codec.load(prev, run_row.run_id - 1, "#save", what)
        except (SerializationError, IntegrityError) as unreadable:
            # Released, a run that cannot be read would be reserved and released again by every worker, for
            # ever: it fails instead, saying why, and waits for a person to resume it once it can be read.
            error = f"{type(unreadable).__name__}: {unreadable}"
            outcome = RunOutcome("failed", error_text=error, retry_keys=run_row.retry_keys)
            handed_over = True  # finish_run lets the lease go
            yield _Op("finish_run", (lease, run_row.run_id, outcome))
            raise
        if answered:
            yield _Op("append", (lease, run_row.run_id, answered))
            rows += answered
        handed_over = True
        return (yield from _execute(inv, lease, codec, run_row, rows, whole, input, previous, asked))
    finally:
        if not handed_over:
            yield _Op("release", (lease,))


def _execute(
    inv: Invocation, lease: Lease, codec: Codec, run_row: RunRow, rows: list[JournalRow], whole: bool, input: Any,
    previous: Any, asked: tuple[PendingInterrupt, ...] = (),
) -> Flow:  # fmt: skip
    """Run the body on the journal so far, then record how the run ended (which lets the lease go)."""
    spec, store, sink, env = inv.spec, inv.store, inv.sink, inv.env
    thread_id = lease.thread_id
    released = False
    try:
        run = _run_for(inv, lease, codec, run_row, rows, whole, previous)
        run.asked = {p.key: p for p in asked}
        replay = run.replay
        body = spec.fn
        if sink is not None:
            body = yield from _stream_start(inv, codec, run_row, not lease.started, input)
        writer = _no_writer if sink is None else partial(sink, "custom")
        kwargs = injected(spec.injects, env, previous, writer) if spec.injects else {}
        from . import _observe  # logging is imported by the first run, not by `import durable`

        observer = run.observer = _observe.run_started(spec.name, thread_id, run.run_id, not lease.started, len(rows))
        ended = partial(_observe.run_ended, observer, spec.name, thread_id, run.run_id)
        scope = Scope(run, "")
        token = _context.current.set(scope)
        heartbeat.add(store, lease, partial(run.lose, LeaseLostError(thread_id)))
        paused: Interrupted | Suspended | None = None
        try:
            try:
                try:
                    try:
                        result = yield _Body(body, (input,), kwargs)
                    finally:
                        yield _Drain(scope)
                        if run.misuse is not None:
                            raise run.misuse
                    if run.pending:  # an interrupt the body caught with `except BaseException`: the question stands
                        raise Pause(run.pending[0].public())
                    output, save = unwrap_final(result)
                    outcome = RunOutcome(
                        "completed",
                        output=codec.dump(output, run.run_id, "#output", f"the output of {spec.name!r}"),
                        save=codec.dump(save, run.run_id, "#save", f"the saved value of {spec.name!r}"),
                        forget_prior=spec.forget_prior,
                    )
                except Pause:
                    # Questions that cannot be stored (too large, not serializable) fail the run, as an output would.
                    paused, outcome = _paused(codec, run, thread_id)
            except Suspend as sleeping:
                paused = Suspended(sleeping.wake_at)
                outcome = RunOutcome("running", wake_at=sleeping.wake_at)
            except BaseException as exc:
                if run.lost is not None:
                    raise run.lost from None  # the lease is gone: nothing more can be recorded
                ended("failed", exc)
                failed = RunOutcome(
                    "failed",
                    error=codec.dump_error(exc, run.run_id, "#error"),
                    error_text=error_text(exc),
                    retry_keys=replay.retry_keys_after(exc),
                )
                yield from _finish(run, failed)
                released = True
                if sink is not None and sink.runs:
                    _chunks.run_failed(sink, exc)
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
    finally:
        if not released:  # finish_run gives the lease up with the outcome, in one commit
            yield _Op("release", (lease,))
    if isinstance(paused, Interrupted):
        ended(f"paused on {len(paused.interrupts)} interrupt(s)", None)
        if sink is not None and sink.runs:
            _chunks.run_paused(sink, paused)
        if run.rejected and inv.given == "command":  # the question's type refused the answer: it is asked again
            raise AnswerRejectedError(thread_id, run.rejected)
        return paused
    if paused is not None:
        ended(f"suspended in a durable sleep until {time.ctime(paused.wake_at)}", None)
        return paused
    ended("completed", None)
    if sink is not None and sink.runs:
        _chunks.run_completed(sink, output)
    return output


def _asked(codec: Codec, thread: ThreadRow, ticket: _Ticket) -> tuple[PendingInterrupt, ...]:
    """The run's questions: those the look read, while the run still holds the bytes they were read from."""
    run = thread.run
    if run is not None and run.interrupts is not None and run.interrupts == ticket.asked_from:
        return ticket.asked
    return _q.pending_questions(codec, thread)


def _run_for(
    inv: Invocation, lease: Lease, codec: Codec, run_row: RunRow, rows: list[JournalRow], whole: bool, previous: Any,
    kind: type[Run] = Run, replay: type[Replay] = Replay,
) -> Run:  # fmt: skip
    """The state of one execution of the run: its replay of the journal (read whole, or by windows of calls when
    ``rows`` is only its head), its writer, its policies. A dry run (`_dry`) makes its own kinds the same way."""
    spec, store = inv.spec, inv.store
    fetch = None if whole else partial(store.journal_keys, lease.tid, run_row.run_id)
    run = kind(
        store=store,
        lease=lease,
        run_id=run_row.run_id,
        replay=replay(rows, run_row.retry_keys, spec.on_changed_args, fetch),
        codec=codec,
        durability=inv.durability,
        session=inv.session,
        sink=inv.sink,
    )
    run.default_retry = spec.retry
    run.suspend_after = inv.suspend_after
    run.env, run.previous, run.cache = inv.env, previous, inv.env.cache
    return run


def _stream_start(inv: Invocation, codec: Codec, run_row: RunRow, resumed: bool, input: Any) -> Flow:
    """Stream a run's start (the values it resumes from, its input checkpoint, its entrypoint's start);
    returns the body to run (which streams the messages of the models it calls, when asked)."""
    spec, store, sink, env = inv.spec, inv.store, inv.sink, inv.env
    assert sink is not None
    sink.bind(codec.thread_id, run_row.run_id, spec.name, env.config)
    if not sink.runs:
        return spec.fn
    prior = None
    if run_row.run_id > 1 and _chunks.wants_prior(sink, resumed):
        runs = yield _chunks.read_prior(store, spec.is_async, codec.thread_id)
        prior = _chunks.prior_values(runs, codec, run_row.run_id)
    interrupts: tuple[Interrupt, ...] = ()
    error = None
    if resumed and (sink.checkpoints or sink.debug):
        interrupts, error = _resumed_from(codec, run_row)
    _chunks.run_started(sink, spec.fn, input, resumed, prior, interrupts, error)
    if sink.messages:
        from ._messages import with_body

        return with_body(sink, spec.fn, spec.is_async, input)
    return spec.fn


def _resumed_from(codec: Codec, run_row: RunRow) -> tuple[tuple[Interrupt, ...], str | None]:
    """The pending interrupts, or the error, of a run being resumed (as its input checkpoint shows them)."""
    from ._peek import as_error

    try:
        if run_row.status == "failed" and run_row.error is not None:
            return (), repr(as_error(codec.load(run_row.error, run_row.run_id, "#error", "the run's error")))
        if run_row.interrupts is not None:
            data = _q.read_questions(codec, run_row.interrupts, run_row.run_id)
            return tuple(p.public() for p in pending_from_data(data)), None
    except DurableError:
        pass  # unreadable: the checkpoint shows none (get_state() would say why)
    return (), None


def _paused(codec: Codec, run: Run, thread_id: str) -> tuple[Interrupted, RunOutcome]:
    """What a run that paused returns, and records: its pending interrupts in call order (whichever parallel
    task happened to pause first)."""
    pending = tuple(sorted(run.pending, key=lambda p: tuple(int(part) for part in p.key.split("."))))
    # As JSON when they are plain data, so that the tools show them without the code or the key.
    inner = codec.serialize_plain(pending_to_data(pending), "the pending interrupts")
    data = codec.seal(inner, run.run_id, "#interrupts")
    # A question with a deadline is due to a worker then, as a durable sleep is (`Store.reserve`).
    deadlines = [p.deadline for p in pending if p.deadline is not None]
    return Interrupted(tuple(p.public() for p in pending), thread_id), RunOutcome(
        "interrupted", interrupts=data, wake_at=min(deadlines) if deadlines else None
    )


def submit_flow(spec: EntrypointSpec, input: Any, thread_id: str, ring: Keyring | None, store: Store) -> Flow:
    """Record a new run with ``input`` and leave it for a worker: claim it, start it, let the lease go."""
    if input is None or isinstance(input, Command):
        raise UsageError(
            f"submit() starts a new run, so it takes new input, not {input!r}: resume a thread's run with "
            f"invoke(None, thread_id=...) or answer it with invoke(Command(resume=...), thread_id=...)"
        )
    yield from _new_run(spec, input, thread_id, ring, store, _LEAVE)
    return thread_id


def update_flow(spec: EntrypointSpec, values: Any, thread_id: str, ring: Keyring | None, store: Store) -> Flow:
    """``update_state``: record ``values`` as the thread's latest values, which the next run's ``previous``
    receives: a run that completes at once with them as its output. Its input is ``None``, which no invoke
    starts a run with, so it reads as an update. Returns that run's number."""
    return (yield from _new_run(spec, None, thread_id, ring, store, values))


_LEAVE: Any = object()  # _new_run: leave the run for a worker


def _new_run(
    spec: EntrypointSpec, input: Any, thread_id: str, ring: Keyring | None, store: Store, values: Any
) -> Flow:  # fmt: skip
    """Start a new run with ``input`` in a claim, then let it go for a worker (``values`` is `_LEAVE`) or
    finish it at once with ``values`` as its output and saved value. Returns its number."""
    owner = new_owner()
    inv = Invocation(spec, store, input, "new", thread_id, "sync", None, None, ring, None, EMPTY)
    try:
        for _ in range(_CLAIM_TRIES):
            looked = yield from _look(inv)
            assert isinstance(looked, _Ticket) and looked.new_run is not None
            lease: Lease = yield _Op("claim", (thread_id, owner, None, looked.new_run))
            if lease.started and values is not _LEAVE:
                run_id, codec = looked.new_run.run_id, looked.codec
                output = codec.dump(values, run_id, "#output", "the values of update_state")
                save = codec.dump(values, run_id, "#save", "the values of update_state")
                yield _Op("finish_run", (lease, run_id, RunOutcome("completed", output=output, save=save)))
                return run_id
            try:
                if lease.started:
                    return looked.new_run.run_id
                check_owner(thread_id, lease.thread, spec)
                plan(thread_id, lease.thread, "new")  # another executor started a run since we looked: refused
            finally:
                yield _Op("release", (lease,))
        raise ThreadBusyError(thread_id, "other executors (the thread kept changing under this one)", None)
    finally:
        retire(owner)


def cancel_flow(spec: EntrypointSpec | None, serde: Serializer, thread_id: str, ring: Keyring | None) -> Flow:
    """Fail the thread's unfinished run with `RunCancelledError`; whoever runs it stops at its next write.

    ``spec`` is the entrypoint cancelling (`None`: an operator, through `Threads`).
    """
    thread: ThreadRow | None = yield _Op("get_thread", (thread_id,))
    run = thread.run if thread is not None else None
    if thread is None or run is None:
        raise ThreadNotFoundError(thread_id)
    if spec is not None:
        check_owner(thread_id, thread, spec)
    if run.status not in ("running", "interrupted"):
        return False
    if ring is None and run.input[:1] in (SIGNED, SIGNED_V1):
        # An unsigned error in a signed journal would read as tampering to the application.
        raise ConfigurationError(
            f"thread {thread_id!r} is signed: cancelling it records a signed error, so give the key "
            f"(DURABLE_SECRET, secret=, or --secret-file); nothing was changed"
        )
    codec = Codec(serde, ring, thread_id, thread.nonce, run.entrypoint)
    exc = RunCancelledError(thread_id, run.run_id)
    outcome = RunOutcome(
        "failed", error=codec.dump_error(exc, run.run_id, "#error"), error_text=f"RunCancelledError: {exc}"
    )
    return (yield _Op("cancel_run", (thread_id, run.run_id, outcome)))


def _cancelled(codec: Codec, thread: ThreadRow | None, run_id: int) -> RunCancelledError | None:
    run = thread.run if thread is not None else None
    if run is None or run.run_id != run_id or run.status != "failed" or run.error is None:
        return None
    if not (run.error_text or "").startswith("RunCancelledError"):
        return None
    try:
        error = codec.load(run.error, run_id, "#error", "the run's error")
    except DurableError:
        return None
    return error if isinstance(error, RunCancelledError) else None


def _merged(rows: list[JournalRow], more: list[JournalRow]) -> list[JournalRow]:
    """``rows`` and the rows of ``more`` it does not have yet (each attempt of a key counts once)."""
    have = {(r.key, r.attempt) for r in rows}
    return rows + [r for r in more if (r.key, r.attempt) not in have]


def _check_stamp(serde: Serializer, thread_id: str, stamp: str | None) -> None:
    """Refuse, before unpickling anything, a journal this process cannot safely read."""
    if stamp is None:
        return
    reason = serde.incompatible(stamp)
    if reason is not None:
        raise IncompatibleJournalError(thread_id, stamp, serde.stamp(), reason)


def _settled(inv: Invocation, codec: Codec, thread: ThreadRow | None, kind: str) -> Flow:
    """What a finished run returned, or the interrupts a paused run is waiting on (nothing runs)."""
    spec, store, sink, thread_id = inv.spec, inv.store, inv.sink, inv.thread_id
    if kind == "paused":
        value: Any = Interrupted(tuple(p.public() for p in _q.pending_questions(codec, thread)), thread_id)
    else:
        value = _finished_output(codec, thread_id, thread)
    if sink is not None and sink.runs:
        run = thread.run if thread is not None else None
        assert run is not None
        sink.bind(thread_id, run.run_id, spec.name)
        prior = None
        if kind == "paused" and run.run_id > 1 and _chunks.wants_prior(sink, True):
            runs = yield _chunks.read_prior(store, spec.is_async, thread_id)
            prior = _chunks.prior_values(runs, codec, run.run_id)
        read_input = partial(codec.load, run.input, run.run_id, "#input", f"the input of thread {thread_id!r}")
        _chunks.settled(sink, spec.fn, value, kind == "paused", read_input, prior, is_update(run))
    return value


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
    return codec.load(run.output, run.run_id, "#output", f"the output of thread {thread_id!r}")


def _finish(run: Run, outcome: RunOutcome) -> Flow:
    _faults.hit("before_finish")
    rows = run.take_buffered()
    if rows:
        yield _Op("append", (run.lease, run.run_id, rows))
    yield _Op("finish_run", (run.lease, run.run_id, outcome))
    _faults.hit("after_finish")
