"""The `entrypoint` decorator and `Entrypoint`: a workflow run durably on a thread (`task` is in `_task`)."""

from __future__ import annotations

import copy
import functools
import inspect
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from contextvars import copy_context
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, ParamSpec, Protocol, TypeVar, overload

from . import _context
from ._codec import Keyring, Secret, keyring
from ._core import Final, OnChangedArgs
from ._drivers import adrive, drive
from ._engine import EntrypointSpec, cancel_flow, invoke_flow, submit_flow
from ._ids import check_thread_id
from ._interrupts import Command, Interrupted
from ._retry import RetryPolicy
from ._run import Sink, TaskSpec
from ._serde import DEFAULT_SERIALIZER, Serializer
from ._state import ThreadState, app_reader, read_state
from ._stream import StreamMode, stream_async, stream_sync
from ._task import _qualname
from ._urls import resolve_store
from ._writers import DURABILITY_MODES, Durability
from .errors import ConfigurationError, UsageError
from .stores._base import Lease, Store

if TYPE_CHECKING:
    from ._admin import Threads

P = ParamSpec("P")
Q = ParamSpec("Q")
S = TypeVar("S")
R = TypeVar("R")
I = TypeVar("I")  # noqa: E741 - the entrypoint's input
O = TypeVar("O")  # noqa: E741 - its output

_ON_CHANGED_ARGS = ("raise", "warn", "rerun")


# -- entrypoint -------------------------------------------------------------------------------------


class Entrypoint(Generic[I, O]):
    """A workflow: ordinary Python calling tasks, run durably on a thread with `invoke`."""

    __wrapped__: Callable[..., Any]
    __name__: str
    __qualname__: str
    __doc__: str | None

    def __init__(
        self,
        fn: Callable[..., Any],
        *,
        checkpointer: Store | str | None,
        name: str | None,
        serializer: Serializer,
        on_changed_args: OnChangedArgs,
        secret: Secret | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        if retry is not None and not isinstance(retry, RetryPolicy):
            raise ConfigurationError(f"retry={retry!r}: pass a RetryPolicy(...)")
        if on_changed_args not in _ON_CHANGED_ARGS:
            raise ConfigurationError(f"on_changed_args={on_changed_args!r}: use 'raise', 'warn' or 'rerun'")
        if isinstance(checkpointer, str | type(None)) is False and not isinstance(checkpointer, Store):
            raise ConfigurationError(f"checkpointer={checkpointer!r}: pass a store or a URL string")
        params = inspect.signature(fn).parameters
        self._spec = EntrypointSpec(
            name=name or _qualname(fn),
            fn=fn,
            is_async=inspect.iscoroutinefunction(fn),
            takes_previous="previous" in params,
            serde=serializer,
            on_changed_args=on_changed_args,
            retry=retry,
        )
        self._nested = TaskSpec(name=self._spec.name, fn=fn, is_async=self._spec.is_async, inherit_retry=False)
        self._checkpointer = checkpointer
        self._store: Store | None = None
        self._store_lock = threading.Lock()
        self._secret = secret
        self._ring: Keyring | None = keyring(secret) if secret is not None else None
        functools.update_wrapper(self, fn)

    def __repr__(self) -> str:
        return f"<Entrypoint {self._spec.name}>"

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Entrypoints are run with a thread id: calling one directly is a mistake this explains."""
        raise UsageError(
            f"{self.name!r} is an entrypoint: run it with .invoke(input, thread_id=...) (or .ainvoke), "
            f"or call the plain function as {self.name}.__wrapped__(...)"
        )

    @property
    def name(self) -> str:
        """The name runs are recorded under."""
        return self._spec.name

    def using(self, checkpointer: Store | str) -> Entrypoint[I, O]:
        """The same entrypoint journaling to another store (a store or URL): to resume or inspect a thread
        that was exported, or moved, elsewhere. Its name, serializer, secret and policies stay."""
        if not isinstance(checkpointer, Store | str):
            raise ConfigurationError(f"using({checkpointer!r}): pass a store or a URL string")
        other: Entrypoint[I, O] = copy.copy(self)
        other._checkpointer = checkpointer
        other._store = None
        other._store_lock = threading.Lock()
        other._ring = keyring(self._secret) if self._secret is not None else None
        return other

    @property
    def checkpointer(self) -> Store:
        """The store this entrypoint journals to (resolved on first use)."""
        if self._store is None:
            with self._store_lock:
                if self._store is None:
                    store = resolve_store(self._checkpointer)
                    if self._secret is None:
                        # The entrypoint's secret, else the store's, else $DURABLE_SECRET.
                        self._ring = keyring(store.secret)
                    self._store = store
        return self._store

    def invoke(
        self,
        input: I | Command[Any] | None,
        *,
        thread_id: str | uuid.UUID | None = None,
        config: Mapping[str, Any] | None = None,
        durability: Durability = "sync",
    ) -> O | Interrupted:
        """Run on a thread until it finishes or pauses.

        New input starts a run; ``None`` resumes the unfinished run (or returns a
        finished run's value, or a paused run's `Interrupted` again); a `Command`
        answers a paused run's interrupts and resumes it. Returns the run's value,
        or `Interrupted` when it paused. Called inside another run without a
        thread id, the entrypoint runs as part of that run, its tasks journaled
        under the caller's key.
        """
        scope = _context.current.get()
        if scope is not None and thread_id is None and config is None:
            return scope.run.call(self._nested, scope, (input,), {}).result()  # type: ignore[no-any-return]
        return self._invoke(input, _thread_id(thread_id, config), durability, None)  # type: ignore[no-any-return]

    def _ring_for(self, store: Store | None) -> tuple[Store, Keyring | None]:
        """The store to run on (this entrypoint's, unless a worker gives its own) and the key to sign with."""
        if store is None:
            store = self.checkpointer
            return store, self._ring
        return store, self._ring if self._secret is not None else keyring(store.secret)

    def _invoke(
        self,
        input: Any,
        tid: str,
        durability: Durability,
        sink: Sink | None,
        on: Store | None = None,
        reserved: Lease | None = None,
        suspend_after: float | None = None,
    ) -> Any:
        _check_durability(durability)
        if self._spec.is_async:
            import asyncio

            if _loop_running():
                raise UsageError(
                    f"{self.name!r} is an async entrypoint called with invoke() from a running event "
                    f"loop: use `await {self.name}.ainvoke(...)` instead"
                )
            return asyncio.run(self._ainvoke(input, tid, durability, sink, on, reserved, suspend_after))
        store, ring = self._ring_for(on)
        token = _context.current.set(None)
        try:
            flow = invoke_flow(self._spec, store, input, tid, durability, None, sink, ring, reserved, suspend_after)
            return drive(flow, store)
        finally:
            _context.current.reset(token)

    async def ainvoke(
        self,
        input: I | Command[Any] | None,
        *,
        thread_id: str | uuid.UUID | None = None,
        config: Mapping[str, Any] | None = None,
        durability: Durability = "sync",
    ) -> O | Interrupted:
        """Async `invoke`. A sync entrypoint runs in a worker thread, so the loop is never blocked."""
        scope = _context.current.get()
        if scope is not None and thread_id is None and config is None:
            return await scope.run.call(self._nested, scope, (input,), {})  # type: ignore[no-any-return]
        return await self._ainvoke(input, _thread_id(thread_id, config), durability, None)  # type: ignore[no-any-return]

    async def _ainvoke(
        self,
        input: Any,
        tid: str,
        durability: Durability,
        sink: Sink | None,
        on: Store | None = None,
        reserved: Lease | None = None,
        suspend_after: float | None = None,
    ) -> Any:
        _check_durability(durability)
        if not self._spec.is_async:
            import asyncio

            call = partial(self._invoke, input, tid, durability, sink, on, reserved, suspend_after)
            return await asyncio.get_running_loop().run_in_executor(None, copy_context().run, call)
        store, ring = self._ring_for(on)
        token = _context.current.set(None)
        try:
            async with store.asession() as session:
                flow = invoke_flow(
                    self._spec, store, input, tid, durability, session, sink, ring, reserved, suspend_after
                )
                return await adrive(flow, session)
        finally:
            _context.current.reset(token)

    def submit(
        self,
        input: I,
        *,
        thread_id: str | uuid.UUID | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> str:
        """Record a new run for a worker to carry, without running it here; returns its thread id.

        A `durable.Worker` (or ``durable worker``) on the same store picks the run
        up, so a web request can start a workflow and return at once. Without a
        thread id, a new one (a UUID) is made. The input rules are `invoke`'s: a
        thread whose last run is unfinished raises `UnfinishedRunError`.
        """
        tid = uuid.uuid4().hex if thread_id is None and config is None else _thread_id(thread_id, config)
        store = self.checkpointer
        return drive(submit_flow(self._spec, input, tid, self._ring, store), store)  # type: ignore[no-any-return]

    async def asubmit(
        self,
        input: I,
        *,
        thread_id: str | uuid.UUID | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> str:
        """Async `submit`."""
        tid = uuid.uuid4().hex if thread_id is None and config is None else _thread_id(thread_id, config)
        store = self.checkpointer
        async with store.asession() as session:
            flow = submit_flow(self._spec, input, tid, self._ring, store)
            return await adrive(flow, session)  # type: ignore[no-any-return]

    def stream(
        self,
        input: I | Command[Any] | None,
        *,
        thread_id: str | uuid.UUID | None = None,
        config: Mapping[str, Any] | None = None,
        durability: Durability = "sync",
        stream_mode: StreamMode | Sequence[StreamMode] = "updates",
        replayed: bool = False,
    ) -> Iterator[Any]:
        """`invoke`, yielding events as the run goes.

        ``stream_mode`` (one, or a list for ``(mode, chunk)`` pairs): ``"updates"`` yields
        ``{task_name: result}`` per finished task, then ``{entrypoint_name: value}`` or
        ``{"__interrupt__": (Interrupt, ...)}``; ``"custom"`` what `get_stream_writer()` sends;
        ``"values"`` what `invoke` returns. Replayed tasks are emitted only with ``replayed=True``.
        The run goes on in a worker thread; stopping the iteration early does not stop the run.
        """
        tid = _thread_id(thread_id, config)
        return stream_sync(partial(self._invoke, input, tid, durability), stream_mode, replayed)

    def astream(
        self,
        input: I | Command[Any] | None,
        *,
        thread_id: str | uuid.UUID | None = None,
        config: Mapping[str, Any] | None = None,
        durability: Durability = "sync",
        stream_mode: StreamMode | Sequence[StreamMode] = "updates",
        replayed: bool = False,
    ) -> AsyncIterator[Any]:
        """`ainvoke`, yielding events as the run goes (see `stream`)."""
        tid = _thread_id(thread_id, config)
        return stream_async(partial(self._ainvoke, input, tid, durability), stream_mode, replayed)

    def cancel(self, *, thread_id: str | uuid.UUID | None = None, config: Mapping[str, Any] | None = None) -> bool:
        """Cancel the thread's unfinished run (running, paused, sleeping or waiting for a worker).

        The run is marked failed with `RunCancelledError`, at once, from any process. An executor
        still running it stops at its next task boundary: its next journal write is refused and its
        ``invoke`` raises `RunCancelledError`. The journal is kept; ``invoke(None, ...)`` resumes the
        run. Returns ``False`` if there was nothing to cancel (the last run had finished).
        """
        store = self.checkpointer
        flow = cancel_flow(self.name, self._spec.serde, _thread_id(thread_id, config), self._ring)
        return drive(flow, store)  # type: ignore[no-any-return]

    @property
    def threads(self) -> Threads:
        """A `Threads` handle on this entrypoint's store, listing only its runs: list, inspect, fork, export..."""
        from ._admin import Threads

        store = self.checkpointer
        return Threads(store, secret=self._secret if self._secret is not None else store.secret, entrypoint=self.name)

    def get_state(
        self, *, thread_id: str | uuid.UUID | None = None, config: Mapping[str, Any] | None = None
    ) -> ThreadState:
        """The thread's status, output or error, and journal entries. Raises `ThreadNotFoundError`."""
        store = self.checkpointer
        return read_state(store, _thread_id(thread_id, config), app_reader(self._spec.serde, self._ring))


class _EntrypointDecorator(Protocol):
    @overload
    def __call__(self, fn: Callable[[I], Coroutine[Any, Any, O]], /) -> Entrypoint[I, O]: ...
    @overload
    def __call__(self, fn: Callable[[I], O], /) -> Entrypoint[I, O]: ...


class _EntrypointFactory:
    """`@entrypoint` or `@entrypoint(checkpointer=..., name=..., on_changed_args=...)`.

    ``checkpointer`` is a store or a URL (``"sqlite:///app.db"``, ``"memory://"``);
    without one, ``$DURABLE_URL`` or a ``durable.db`` file in the working
    directory. ``on_changed_args`` says what a replayed task called with other
    arguments than recorded does: ``"raise"`` `ArgumentsChangedError` (the
    default), ``"warn"`` and replay the recorded result, or ``"rerun"`` the task.
    ``retry`` is the `RetryPolicy` of its tasks that have none of their own.
    Return ``entrypoint.final(value=..., save=...)`` to give the next run's
    ``previous`` parameter something other than the returned value.
    """

    final = Final

    @overload
    def __call__(self, fn: Callable[[I], Coroutine[Any, Any, O]], /) -> Entrypoint[I, O]: ...
    @overload
    def __call__(self, fn: Callable[[I], O], /) -> Entrypoint[I, O]: ...
    @overload
    def __call__(
        self,
        *,
        checkpointer: Store | str | None = None,
        name: str | None = None,
        serializer: Serializer | None = None,
        on_changed_args: OnChangedArgs = "raise",
        secret: Secret | None = None,
        retry: RetryPolicy | None = None,
    ) -> _EntrypointDecorator: ...
    def __call__(  # type: ignore[misc]  # mypy mis-reads the keyword-only overload
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        checkpointer: Store | str | None = None,
        name: str | None = None,
        serializer: Serializer | None = None,
        on_changed_args: OnChangedArgs = "raise",
        secret: Secret | None = None,
        retry: RetryPolicy | None = None,
    ) -> Any:
        def decorate(func: Callable[..., Any]) -> Entrypoint[Any, Any]:
            if not callable(func):
                raise ConfigurationError(f"@entrypoint decorates a function, not {func!r}")
            return Entrypoint(
                func,
                checkpointer=checkpointer,
                name=name,
                serializer=serializer or DEFAULT_SERIALIZER,
                on_changed_args=on_changed_args,
                secret=secret,
                retry=retry,
            )

        return decorate if fn is None else decorate(fn)

    def __repr__(self) -> str:
        return "durable.entrypoint"


entrypoint = _EntrypointFactory()


def _thread_id(thread_id: str | uuid.UUID | None, config: Mapping[str, Any] | None) -> str:
    from_config = None
    if config is not None:
        configurable = config.get("configurable") if isinstance(config, Mapping) else None
        if not isinstance(configurable, Mapping) or "thread_id" not in configurable:
            raise ConfigurationError(
                f"config={config!r} has no thread id: pass config={{'configurable': {{'thread_id': ...}}}}"
            )
        from_config = configurable["thread_id"]
    if thread_id is not None and from_config is not None and str(thread_id) != str(from_config):
        raise ConfigurationError(f"thread_id={thread_id!r} and the config's {from_config!r} disagree: pass one")
    chosen = thread_id if thread_id is not None else from_config
    if chosen is None:
        raise ConfigurationError("no thread id: pass thread_id='...' (the journal is kept per thread)")
    return check_thread_id(chosen)


def _check_durability(durability: str) -> None:
    if durability not in DURABILITY_MODES:
        raise ConfigurationError(f"durability={durability!r}: use 'sync', 'async' or 'exit'")


def _loop_running() -> bool:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
