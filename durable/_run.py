"""A run in progress: turns task calls into replayed or freshly recorded outcomes.

`Run.call` is the hot path of the library: one key, one digest, one dict
lookup, and either an already-resolved future (replay) or a deferred one
whose job runs the body and records the outcome (`_execute` / `_aexecute`).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from contextvars import copy_context
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any

from . import _context, _faults
from ._codec import Codec
from ._context import Scope
from ._core import Replay
from ._digest import digest_call
from ._futures import TaskFuture, pool
from ._interrupts import INTERRUPT, PendingInterrupt
from ._retry import RetryPolicy, call_with_retry, call_with_retry_async
from ._serde import dump_value, load_value, type_name
from ._writers import DURABILITY_MODES, Durability, make_writer
from .errors import ConfigurationError, SerializationError, UsageError
from .stores._base import ERROR, OK, AsyncSession, JournalRow, Lease, Store

if TYPE_CHECKING:
    import asyncio

Args = tuple[Any, ...]
Kwargs = dict[str, Any]


Sink = Callable[[str, Any], None]  # (stream mode, chunk): where a streamed run's events go


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """What the engine needs to know about a task (or a nested entrypoint) to run it."""

    name: str
    fn: Callable[..., Any]
    is_async: bool
    retry: RetryPolicy | None = None


class Run:
    """One executing run of an entrypoint on a thread, holding its lease."""

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
        # Streaming: where events go ("updates", "custom"), and whether replayed tasks are re-emitted.
        self.sink = sink
        self.stream_replayed = getattr(sink, "replayed", False)
        self.pending: list[PendingInterrupt] = []
        self.misuse: UsageError | None = None  # fails the run once its body has stopped
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

    def answer(self, key: str) -> tuple[bool, Any]:
        """Whether the interrupt at ``key`` has been answered, and the answer."""
        row, _ = self.replay.lookup(key, INTERRUPT, None)
        if row is None:
            return False, None
        return True, self.codec.load(row.payload, self.run_id, key, INTERRUPT, f"the answer to interrupt {key}")

    # -- the hot path ---------------------------------------------------------------------------

    def call(self, spec: TaskSpec, scope: Scope, args: tuple[Any, ...], kwargs: dict[str, Any]) -> TaskFuture[Any]:
        key = scope.next_key()
        digest = digest_call(args, kwargs)
        row, attempt = self.replay.lookup(key, spec.name, digest)
        if row is not None:
            if self.stream_replayed and self.sink is not None and row.status == OK:
                replayed = self._replayed(row, spec.name)
                self.sink("updates", {spec.name: replayed.result()})
                return replayed
            return self._replayed(row, spec.name)
        loop = self.loop
        if loop is not None and _in_loop(loop):
            coro = self._aexecute(spec, key, attempt, digest, args, kwargs)
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

    def _replayed(self, row: JournalRow, name: str) -> TaskFuture[Any]:
        blob = self.codec.open(row.payload, self.run_id, row.key, name) if self.signed else row.payload
        try:
            value = self.serde.loads(blob)
        except Exception:
            load_value(self.serde, blob, f"the recorded result of task {name!r} (key {row.key})")
            raise  # load_value raised its SerializationError above; this line is not reached
        if row.status == ERROR:
            self.replay.note_error(value, row.key)
            return TaskFuture.failed(value)
        return TaskFuture.resolved(value)

    # -- executing a body -----------------------------------------------------------------------

    def _execute(self, spec: TaskSpec, key: str, attempt: int, digest: bytes | None, args: Args, kwargs: Kwargs) -> Any:
        if _faults._armed is not None:
            _faults.hit("before_body")
        started = time.time()
        scope = Scope(self, key + ".")
        token = _context.current.set(scope)
        try:
            if spec.retry is None and not spec.is_async:
                value = spec.fn(*args, **kwargs)
            else:
                value = self._call(spec, args, kwargs)
        except Exception as exc:
            drain(scope)
            _context.current.reset(token)
            self.record(self._error_row(spec, key, attempt, digest, exc, started))
            raise
        except BaseException:
            drain(scope)
            _context.current.reset(token)
            raise
        if scope.deferred is not None or scope.outstanding:
            drain(scope)
        _context.current.reset(token)
        try:
            payload = self.dumps(value)
        except Exception:
            dump_value(self.serde, value, f"the result of task {spec.name!r} (key {key})")  # raises, naming it
            raise
        if self.max_bytes is not None and len(payload) > self.max_bytes:
            self._too_large(spec, key, value, len(payload))
        if self.signed:
            payload = self.codec.seal(payload, self.run_id, key, spec.name)
        if _faults._armed is not None:
            _faults.hit("after_body")
        self.record(JournalRow(key, attempt, spec.name, OK, digest, payload, started, time.time()))
        if self.replay.retrying:
            self.replay.note_recorded(key)
        if _faults._armed is not None:
            _faults.hit("after_commit")
        if self.sink is not None:
            self.sink("updates", {spec.name: value})
        return value

    @staticmethod
    def _call(spec: TaskSpec, args: Args, kwargs: Kwargs) -> Any:
        if spec.is_async:
            import asyncio

            return asyncio.run(call_with_retry_async(spec.retry, spec.fn, args, kwargs))
        return call_with_retry(spec.retry, spec.fn, args, kwargs)

    async def _aexecute(
        self, spec: TaskSpec, key: str, attempt: int, digest: bytes | None, args: Args, kwargs: Kwargs
    ) -> Any:
        _faults.hit("before_body")
        started = time.time()
        try:
            if spec.is_async:
                value = await self._abody(spec, key, args, kwargs)
            else:
                # A sync task in an async run: its body runs in the pool, its outcome is recorded here.
                assert self.loop is not None
                body = partial(self._body, spec, key, args, kwargs)
                value = await self.loop.run_in_executor(pool(), copy_context().run, body)
        except Exception as exc:
            await self.arecord(self._error_row(spec, key, attempt, digest, exc, started))
            raise
        row = self._ok_row(spec, key, attempt, digest, value, started)
        _faults.hit("after_body")
        await self.arecord(row)
        self.replay.note_recorded(key)
        _faults.hit("after_commit")
        if self.sink is not None:
            self.sink("updates", {spec.name: value})
        return value

    def _body(self, spec: TaskSpec, key: str, args: Args, kwargs: Kwargs) -> Any:
        """Run a task's function in its own scope, and wait for the children it started."""
        scope = Scope(self, key + ".")
        token = _context.current.set(scope)
        try:
            return self._call(spec, args, kwargs)
        finally:
            drain(scope)
            _context.current.reset(token)

    async def _abody(self, spec: TaskSpec, key: str, args: Args, kwargs: Kwargs) -> Any:
        scope = Scope(self, key + ".")
        token = _context.current.set(scope)
        try:
            return await call_with_retry_async(spec.retry, spec.fn, args, kwargs)
        finally:
            await adrain(scope)
            _context.current.reset(token)

    def _too_large(self, spec: TaskSpec, key: str, value: Any, size: int) -> None:
        raise SerializationError(
            f"the result of task {spec.name!r} (key {key})",
            type_name(value),
            f"it is {size:,} bytes, over the store's max_result_bytes={self.max_bytes:,}; return a reference "
            f"(a path, a URL, an id) to large data instead",
        )

    def _ok_row(
        self, spec: TaskSpec, key: str, attempt: int, digest: bytes | None, value: Any, started: float
    ) -> JournalRow:
        payload = dump_value(self.serde, value, f"the result of task {spec.name!r} (key {key})")
        if self.max_bytes is not None and len(payload) > self.max_bytes:
            self._too_large(spec, key, value, len(payload))
        payload = self.codec.seal(payload, self.run_id, key, spec.name)
        return JournalRow(key, attempt, spec.name, OK, digest, payload, started, time.time())

    def _error_row(
        self, spec: TaskSpec, key: str, attempt: int, digest: bytes | None, exc: Exception, started: float
    ) -> JournalRow:
        self.replay.note_error(exc, key)
        self.replay.note_recorded(key)
        payload = self.codec.dump_error(exc, self.run_id, key, spec.name)
        return JournalRow(key, attempt, spec.name, ERROR, digest, payload, started, time.time())

    # -- recording ------------------------------------------------------------------------------

    def take_buffered(self) -> list[JournalRow]:
        """Stop the writer; the rows the run's end must still write ("exit" mode)."""
        return self.writer.close()


def _in_loop(loop: asyncio.AbstractEventLoop) -> bool:
    import asyncio  # loaded already: this runs only in async runs

    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False


def drain(scope: Scope) -> None:
    """Wait until every call a body made has finished; their errors belong to whoever awaits them."""
    deferred = scope.deferred
    if deferred is not None:
        scope.deferred = None
        deferred.exception()
    outstanding = scope.outstanding
    if outstanding:
        for fut in outstanding:
            fut.exception()
        outstanding.clear()


async def adrain(scope: Scope) -> None:
    # Gathering the finished ones too marks their errors as retrieved, so asyncio does not log them.
    waiting: Sequence[Any] = scope.outstanding or ()
    scope.outstanding = None
    if waiting:
        import asyncio

        await asyncio.gather(*waiting, return_exceptions=True)
