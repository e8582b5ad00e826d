"""A run in progress: turns task calls into replayed or freshly recorded outcomes.

`Run.call` is the hot path of the library: one key, one digest, one dict
lookup, and either an already-resolved future (replay) or a deferred one
whose job runs the body and records the outcome: `_execute`'s short path for
a plain sync task, `_attempts` for every other call (and every call of an
async run, on its event loop).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any

from . import _attempts, _chunks, _context, _faults, _versions
from ._answers import Answer, read_answer
from ._codec import Codec, too_large
from ._context import Scope
from ._core import Replay
from ._digest import digest_call
from ._futures import TaskFuture
from ._interrupts import INTERRUPT, PendingInterrupt
from ._retry import Retry
from ._runtime import EMPTY, RunEnv
from ._serde import dump_value, load_value
from ._stream import Sink as Sink  # where a streamed run's events go
from ._writers import DURABILITY_MODES, Durability, make_writer
from .errors import ConfigurationError, LeaseLostError, RecordedValueError, SerializationError, UsageError
from .stores._base import ERROR, OK, AsyncSession, JournalRow, Lease, Store

if TYPE_CHECKING:
    import asyncio

    from ._caching import CachePolicy
    from ._observe import Observer

Args = tuple[Any, ...]
Kwargs = dict[str, Any]


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What the engine needs to know about a task (or a nested entrypoint) to run it."""

    name: str
    fn: Callable[..., Any]
    is_async: bool
    retry: Retry | None = None
    timeout: float | None = None
    inherit_retry: bool = True  # the entrypoint's default policy applies (not to sub-entrypoints)
    # Names the journal may hold for this task from earlier versions (a default name that changed).
    aliases: tuple[str, ...] = ()
    cache: CachePolicy[Any] | None = None
    # A graph's node run: its argument is the graph's call object, not the caller's (nothing to digest), and
    # the graph streams its events in its own shapes (`durable.graph._emit`), not as a task's.
    node: bool = False
    # The version its values are journaled under (None: unversioned, read as version 1), and the converters
    # (old version, function) that turn an older version's value into the next one's: see `_versions`.
    version: int | None = None
    upgrade: tuple[tuple[int, Callable[[Any], Any]], ...] = ()
    # A sync body with no policy, timeout or cache of its own: the short path runs it (see Run._execute).
    simple: bool = field(init=False)

    def __post_init__(self) -> None:
        simple = self.retry is None and self.timeout is None and self.cache is None and not self.is_async
        object.__setattr__(self, "simple", simple)


class Run:
    """One executing run of an entrypoint on a thread, holding its lease."""

    dry = False  # a dry run (`_dry.DryRun`): nothing outside the journal may be touched

    def __init__(
        self,
        *,
        store: Store,
        lease: Lease,
        run_id: int,
        replay: Replay,
        codec: Codec,
        durability: Durability,
        session: AsyncSession | None = None,
        sink: Sink | None = None,
    ) -> None:
        if durability not in DURABILITY_MODES:
            raise ConfigurationError(f"durability={durability!r}: use 'sync', 'async' or 'exit'")
        self.store = store
        self.lease = lease
        self.run_id = run_id
        self.replay = replay
        self.codec = codec
        self.serde = serde = codec.serde
        self.signed = codec.keyring is not None
        self.max_bytes = store.max_result_bytes
        self.durability = durability
        self.session = session
        self.loop: asyncio.AbstractEventLoop | None = None
        if session is not None:
            import asyncio

            self.loop = asyncio.get_running_loop()
        self.dumps = serde.dumps
        self.writer = make_writer(durability, store, lease, run_id, session)
        # Journal one outcome per the durability mode (bound once: this is on every task's path).
        self.record = self.writer.write
        self.arecord = self.writer.awrite
        # Streaming: where events go (None: nothing streams, and no event is built).
        self.sink = sink
        self.pending: list[PendingInterrupt] = []
        self.asked: dict[str, PendingInterrupt] = {}  # the questions the run's last pause recorded, by key
        self.rejected: list[dict[str, str]] = []  # answers the question's type refused (it is asked again)
        self.misuse: UsageError | None = None  # fails the run once its body has stopped
        self.thread_id = lease.thread_id
        self.default_retry: Retry | None = None  # the entrypoint's, for tasks without their own
        # Sleeps this long or longer end the run for now, leaving it to a worker (None: sleep in-process).
        self.suspend_after: float | None = None
        self.lost: LeaseLostError | None = None  # a write was refused: the run stops at its next task call
        self.stopped = threading.Event()  # set with `lost` (a durable sleep waits on it)
        self.observer: Observer | None = None  # logs and traces tasks, when someone listens
        self.env: RunEnv = EMPTY  # the invocation's config, context, long-term memory and cache
        self.previous: Any = None  # what the thread's last run saved (get_runtime().previous)
        self.cache: Any = None  # the entrypoint's task cache, when it has one
        self.calls: dict[str, Any] | None = None  # a graph's node calls in progress by key (for get_config())
        self.patches: dict[str, bool] = {}  # `durable.patched` decisions, by patch id: one per run
        self._pending_lock = threading.Lock()

    def add_pending(self, pending: PendingInterrupt) -> None:
        """Register an interrupt the run will pause on; ids must be unique among those pending.

        A duplicate id is the run's error, not the task's: raised inside the task it would be
        journaled as that task's outcome and only surface after the human answered.
        """
        with self._pending_lock:
            for other in self.pending:
                if other.id == pending.id and self.misuse is None:
                    self.misuse = UsageError(
                        f"interrupt id {pending.id!r} is used twice (keys {other.key} and {pending.key}): "
                        f"give parallel interrupts distinct ids, or let durable number them"
                    )
            self.pending.append(pending)

    def refuse(self, what: str) -> None:
        """The body reaches outside its run (``what``: another thread's run, say). A run goes on; a dry run
        (`_dry.DryRun`) stops there, since it may run and write nothing."""

    def answer(self, key: str) -> tuple[Answer, int] | None:
        """The latest answer journaled for the interrupt at ``key``, and its attempt (``None``: unanswered)."""
        row, _ = self.replay.lookup(key, INTERRUPT, None)
        if row is None:
            return None
        return read_answer(self.codec, self.codec.open_row(row, self.run_id), row), row.attempt

    # -- the hot path ---------------------------------------------------------------------------

    def call(self, spec: TaskSpec, scope: Scope, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskFuture[Any]:
        if self.lost is not None:
            raise self.lost
        key = scope.next_key()
        digest = b"" if spec.node else digest_call(args, kwargs)
        row, attempt = self.replay.lookup(key, spec.name, digest, spec.aliases)
        if row is not None:
            if self.observer is not None:
                self.observer.replayed(spec.name, key, row.attempt)
            if self.sink is not None:
                return self._stream_replayed(self.sink, row, spec, key, args, kwargs)
            return self._replayed(row, spec.name, spec)
        if self.sink is not None:
            spec = _chunks.call_started(self.sink, spec, key, args, kwargs)
        loop = self.loop
        if loop is not None and _in_loop(loop):
            coro = _attempts.aexecute(self, spec, key, attempt, digest, args, kwargs)
            fut: TaskFuture[Any] = TaskFuture.wrap(loop.create_task(coro))
            scope.track(fut)
            return fut
        fut = TaskFuture.deferred(partial(self._execute, spec, key, attempt, digest, args, kwargs))
        # The previous call had no waiter before this one: it is a fan-out, start it now.
        previous = scope.deferred
        scope.deferred = fut
        if previous is not None:
            scope.start(previous)
        return fut

    def _stream_replayed(
        self, sink: Sink, row: JournalRow, spec: TaskSpec, key: str, args: Args, kwargs: Kwargs
    ) -> TaskFuture[Any]:
        replayed = self._replayed(row, spec.name, spec)
        error = replayed.exception()
        _chunks.call_replayed(sink, spec, key, args, kwargs, error, None if error is not None else replayed.result())
        return replayed

    def _replayed(self, row: JournalRow, name: str, spec: TaskSpec | None = None) -> TaskFuture[Any]:
        blob = self.codec.open_row(row, self.run_id) if self.signed else row.payload
        if row.status == ERROR:
            error = load_value(self.serde, blob, f"the recorded error of task {name!r} (key {row.key})")
            self.replay.note_error(error, row.key)
            return TaskFuture.failed(error)
        if spec is not None and spec.version is not None:
            return TaskFuture.resolved(self._upgraded(row, name, blob, spec.version, spec.upgrade))
        try:
            value = self.serde.loads(blob)
        except Exception as exc:
            if blob[:1] == _versions.TAG:  # recorded by a versioned task that this code no longer versions
                return TaskFuture.resolved(self._upgraded(row, name, blob))
            raise self.unreadable(row.key, name, exc) from exc
        if type(value) not in _PLAIN:
            _versions.check_fields(value, _versions.Where(self.thread_id, row.key, name))
        return TaskFuture.resolved(value)

    def _upgraded(
        self, row: JournalRow, name: str, blob: bytes, version: int = 1,
        upgrade: tuple[tuple[int, Callable[[Any], Any]], ...] = (),
    ) -> Any:  # fmt: skip
        """A recorded value (of the task ``name``, at ``version`` now), read and upgraded to that version."""
        recorded, inner = _versions.peel(blob)
        where = _versions.Where(self.thread_id, row.key, name)
        try:
            value = self.serde.loads(inner)
        except Exception as exc:
            raise self.unreadable(row.key, name, exc) from exc
        value = _versions.upgraded(value, recorded, version, dict(upgrade), where)
        _versions.check_fields(value, where)
        return value

    def unreadable(self, key: str, name: str, exc: Exception) -> RecordedValueError:
        """A recorded value that no longer deserializes (its module or class moved, another serializer)."""
        if isinstance(exc, RecordedValueError):
            return exc
        detail = exc.reason if isinstance(exc, SerializationError) else f"{type(exc).__name__}: {exc}"
        missing = _missing_type(exc)
        advice = (
            "keep the module and class it names importable (an alias will do), or fork the thread before this key"
            if missing != "value"
            else "its class changed in a way its recorded form no longer fits (slots, a custom __setstate__): keep "
            "the old class importable and give the task a version and an upgrade, or fork the thread before this key"
        )
        return RecordedValueError(self.thread_id, key, name, missing, detail, advice)

    # -- executing a body -----------------------------------------------------------------------

    def _execute(self, spec: TaskSpec, key: str, attempt: int, digest: bytes | None, args: Args, kwargs: Kwargs) -> Any:
        """Run a sync task's body and record its outcome, in a blocking run.

        A task with a policy, a timeout or a cache goes through `_attempts.attempts`; a plain one takes the
        short path below, which is that flow's steps for a single attempt, inline (the sequential hot path).
        """
        if not spec.simple or self.default_retry is not None:
            return _attempts.execute(self, spec, key, attempt, digest, args, kwargs)
        if _faults._armed is not None:
            _faults.hit("before_body")
        started = time.time()
        scope = Scope(self, key + ".", spec.name, attempt)
        token = _context.current.set(scope)
        try:
            value = spec.fn(*args, **kwargs)
        except Exception as exc:
            drain(scope)
            _context.current.reset(token)
            self.write(self.error_row(spec, key, attempt, digest, exc, started))
            self.failed(spec, key, attempt, started, exc)
            raise
        except BaseException:
            drain(scope)
            _context.current.reset(token)
            raise
        if scope.deferred is not None or scope.outstanding:
            drain(scope)
        _context.current.reset(token)
        self.write(self.ok_row(spec, key, attempt, digest, value, started))
        if self.observer is not None or self.sink is not None or self.replay.retrying or _faults._armed is not None:
            self.recorded(spec, key, attempt, started, value)
        return value

    # -- a task's outcome: its row (no I/O), then what follows its journaling -------------------

    def ok_row(
        self, spec: TaskSpec, key: str, attempt: int, digest: bytes | None, value: Any, started: float,
        inner: bytes | None = None,
    ) -> JournalRow:  # fmt: skip
        """A task's value as its journal row: serialized (``inner``: it is already) within the store's
        ``max_result_bytes``, signed when the run signs. Then the ``after_body`` fault point (not yet written)."""
        if inner is None:
            try:
                inner = self.dumps(value)
            except Exception:
                dump_value(self.serde, value, f"the result of task {spec.name!r} (key {key})")  # raises, naming it
                raise
            if self.max_bytes is not None and len(inner) > self.max_bytes:
                self._too_large(spec, key, value, len(inner))
        if spec.version is not None:
            inner = _versions.stamp(spec.version, inner)
        if self.signed:
            inner = self.codec.seal(inner, self.run_id, key, spec.name, attempt, OK, digest)
        if _faults._armed is not None:
            _faults.hit("after_body")
        return JournalRow(key, attempt, spec.name, OK, digest, inner, started, time.time())

    def error_row(
        self, spec: TaskSpec, key: str, attempt: int, digest: bytes | None, exc: Exception, started: float
    ) -> JournalRow:
        """A task's final error as its journal row (remembered as the call's, for the run's retry keys)."""
        self.replay.note_error(exc, key)
        self.replay.note_recorded(key)
        payload = self.codec.dump_error(exc, self.run_id, key, spec.name, attempt=attempt, status=ERROR, digest=digest)
        return JournalRow(key, attempt, spec.name, ERROR, digest, payload, started, time.time())

    def recorded(self, spec: TaskSpec, key: str, attempt: int, started: float, value: Any) -> None:
        """A task's value is journaled (the ``after_commit`` fault point): the observer, the replay, the stream."""
        if self.observer is not None:
            self.observer.task(spec.name, key, attempt, started, None)
        if self.replay.retrying:
            self.replay.note_recorded(key)
        if _faults._armed is not None:
            _faults.hit("after_commit")
        if self.sink is not None:
            _chunks.call_done(self.sink, spec, key, value)

    def failed(self, spec: TaskSpec, key: str, attempt: int, started: float, exc: Exception) -> None:
        """A task's error is journaled: the observer and the stream."""
        if self.observer is not None:
            self.observer.task(spec.name, key, attempt, started, exc)
        if self.sink is not None:
            _chunks.call_failed(self.sink, spec, key, exc)

    def _too_large(self, spec: TaskSpec, key: str, value: Any, size: int) -> None:
        assert self.max_bytes is not None
        raise too_large(f"the result of task {spec.name!r} (key {key})", value, size, self.max_bytes)

    # -- writing --------------------------------------------------------------------------------

    def lose(self, error: LeaseLostError) -> None:
        """The lease is gone (the heartbeat found out, or a write was refused): stop at the next step."""
        self.lost = error
        self.stopped.set()

    def write(self, row: JournalRow) -> None:
        """Journal a row; a refused write (the lease is gone: taken over, or the run cancelled) stops the run."""
        try:
            self.record(row)
        except LeaseLostError as exc:
            self.lose(exc)
            raise

    async def awrite(self, row: JournalRow) -> None:
        """`write` on the run's event loop: the store is awaited, the loop goes on."""
        try:
            await self.arecord(row)
        except LeaseLostError as exc:
            self.lose(exc)
            raise

    def post(self, row: JournalRow) -> None:
        """Journal a row from code on the run's event loop that cannot await (`durable.now()` in an async body):
        the writer takes it at once and commits it, in order, with the run's next write (or at the run's end);
        nothing blocks the loop."""
        try:
            self.writer.post(row)
        except LeaseLostError as exc:
            self.lose(exc)
            raise

    def on_loop(self) -> bool:
        """Whether the caller runs on this (async) run's event loop, where nothing may block."""
        loop = self.loop
        return loop is not None and _in_loop(loop)

    # -- recording ------------------------------------------------------------------------------

    def take_buffered(self) -> list[JournalRow]:
        """Stop the writer; the rows the run's end must still write ("exit" mode)."""
        return self.writer.close()


# Exact types whose replayed values need no check of their fields (`_versions.check_fields`).
_PLAIN = frozenset({type(None), bool, int, float, str, bytes, list, dict, tuple, set, frozenset})


def _missing_type(exc: Exception) -> str:
    """The type (or module) an unpickling error says it could not find, else "value"."""
    text = str(exc)
    for marker in ("Can't get attribute '", "No module named '"):
        if marker in text:
            return text.split(marker, 1)[1].split("'", 1)[0]
    return "value"


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    import asyncio  # loaded already: this runs only in async runs

    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def _unfinished(scope: Scope) -> list[TaskFuture[Any]]:
    """Take the calls a body made that may still be running (the deferred one first): its end waits for them."""
    waiting = scope.outstanding or []
    scope.outstanding = None
    deferred = scope.deferred
    if deferred is not None:
        scope.deferred = None
        waiting.insert(0, deferred)
    return waiting


def drain(scope: Scope) -> None:
    """Wait until every call a body made has finished; their errors belong to whoever awaits them."""
    for fut in _unfinished(scope):
        fut.exception()


async def adrain(scope: Scope) -> None:
    """`drain` for an async body (a deferred sync call is run in the pool, see `TaskFuture.__await__`)."""
    waiting = _unfinished(scope)
    if waiting:
        import asyncio

        # Gathering the finished ones too marks their errors as retrieved, so asyncio does not log them.
        await asyncio.gather(*waiting, return_exceptions=True)
