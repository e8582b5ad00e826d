"""`TaskFuture`: what a task call returns at once.

A sync task call does not hop to a thread by default. Its future starts
*deferred*: if the caller next waits on it, the body runs inline in the
caller's thread (a sequential workflow never pays for a thread hop); if the
caller first makes another call, the deferred one is handed to the pool, so
a fan-out runs in parallel. A waiter also runs a still-queued future itself
instead of blocking on it, so nested waits cannot starve the pool.

In an async run, the future wraps an asyncio task (or an executor future for a
sync task) and is awaited.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Generator
from contextvars import copy_context
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from . import _context
from .errors import UsageError

if TYPE_CHECKING:
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

T = TypeVar("T")

_PENDING, _RUNNING, _DONE = 0, 1, 2

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def pool() -> ThreadPoolExecutor:
    """The process-wide pool that runs dispatched sync tasks (threads are created lazily)."""
    global _pool
    if _pool is None:
        from concurrent.futures import ThreadPoolExecutor

        with _pool_lock:
            if _pool is None:
                _pool = ThreadPoolExecutor(max_workers=64, thread_name_prefix="durable-task")
    return _pool


# One lock for every future's state changes: each critical section is a few bytecodes, so
# sharing it costs less than creating a lock per task call.
_state_lock = threading.Lock()


class TaskFuture(Generic[T]):
    """The result of a task call: ``.result()`` in sync code, ``await`` in async code."""

    __slots__ = ("__weakref__", "_aw", "_error", "_event", "_job", "_state", "_value")

    def __init__(
        self,
        state: int = _PENDING,
        value: Any = None,
        error: BaseException | None = None,
        job: Callable[[], T] | None = None,
        aw: asyncio.Future[T] | None = None,
    ) -> None:
        self._state = state
        self._value = value
        self._error = error
        self._event: threading.Event | None = None
        self._job = job
        self._aw = aw

    def __reduce__(self) -> Any:
        # Pickled silently, a future would be journaled as a call in progress and come back as one on replay.
        raise TypeError(
            "a TaskFuture cannot be journaled (it is a task call in progress, not its value): "
            "use future.result() (or await it) and journal the value"
        )

    # -- constructors ---------------------------------------------------------------------------

    @classmethod
    def resolved(cls, value: T) -> TaskFuture[T]:
        return cls(_DONE, value)

    @classmethod
    def failed(cls, error: BaseException) -> TaskFuture[T]:
        return cls(_DONE, None, error)

    @classmethod
    def deferred(cls, job: Callable[[], T]) -> TaskFuture[T]:
        return cls(_PENDING, None, None, job)

    @classmethod
    def wrap(cls, aw: asyncio.Future[T]) -> TaskFuture[T]:
        return cls(_RUNNING, None, None, None, aw)

    # -- state ----------------------------------------------------------------------------------

    def done(self) -> bool:
        """Whether the value (or error) is available without waiting."""
        if self._aw is not None:
            return self._aw.done()
        return self._state == _DONE

    def _claim(self) -> bool:
        if self._job is None:
            return False
        with _state_lock:
            if self._state != _PENDING:
                return False
            self._state = _RUNNING
            return True

    def _execute(self) -> None:
        job = self._job
        assert job is not None
        self._job = None
        value: Any = None
        error: BaseException | None = None
        try:
            value = job()
        except BaseException as exc:  # delivered to whoever waits
            error = exc
        with _state_lock:
            self._value, self._error, self._state = value, error, _DONE
            event = self._event
        if event is not None:
            event.set()

    def _run_if_pending(self) -> None:
        if self._claim():
            self._execute()

    def dispatch(self) -> None:
        """Hand a deferred future to the pool (with the caller's context); no-op otherwise."""
        if self._state == _PENDING and self._job is not None:
            pool().submit(copy_context().run, self._run_if_pending)

    # -- waiting --------------------------------------------------------------------------------

    def result(self, timeout: float | None = None) -> T:
        """Wait for the task and return its value, or raise its exception."""
        if self._aw is not None:
            if not self._aw.done():
                raise UsageError(
                    "this task runs on an event loop: use `await future` (or asyncio.gather) in an "
                    "async entrypoint instead of .result()"
                )
            return self._aw.result()
        if self._state != _DONE:
            scope = _context.current.get()
            if scope is not None:
                pending = scope.deferred
                if pending is not None:
                    scope.deferred = None
                    if pending is not self:
                        scope.start(pending)
            if self._claim():
                self._execute()
            else:
                self._wait(timeout)
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[no-any-return]

    def _wait(self, timeout: float | None) -> None:
        with _state_lock:
            if self._state == _DONE:
                return
            if self._event is None:
                self._event = threading.Event()
            event = self._event
        if not event.wait(timeout):
            raise TimeoutError(f"task still running after {timeout}s")

    def exception(self) -> BaseException | None:
        """Wait for the task and return its exception (``None`` if it succeeded)."""
        try:
            self.result()
        except BaseException as exc:
            return exc
        return None

    def __await__(self) -> Generator[Any, None, T]:
        if self._aw is not None:
            return (yield from self._aw.__await__())
        if self._state != _DONE:
            # A sync future awaited from async code: wait for it off the loop.
            import asyncio

            return (yield from asyncio.get_running_loop().run_in_executor(pool(), self.result).__await__())
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[no-any-return]

    def __repr__(self) -> str:
        state = "done" if self.done() else ("running" if self._state == _RUNNING else "pending")
        return f"<TaskFuture {state}>"
