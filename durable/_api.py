"""The `entrypoint` decorator and `Entrypoint`: a workflow run durably on a thread (`task` is in `_task`).

The methods take LangGraph's arguments in LangGraph's order (``invoke(input, config, *, context=...,
version=...)``), so a Functional-API program ports by changing its imports; ``thread_id=`` is
durable's shorter form of the same config. Reading a thread's snapshots is in `_state`.
"""

from __future__ import annotations

import copy
import functools
import inspect
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator, Mapping, Sequence
from contextvars import copy_context
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, Literal, ParamSpec, Protocol, TypeVar, overload

from . import _context
from ._codec import Keyring, Secret, keyring
from ._core import Final, OnChangedArgs
from ._drivers import adrive, drive
from ._engine import EntrypointSpec, cancel_flow, invoke_flow, submit_flow, update_flow
from ._ids import check_thread_id
from ._interrupts import Command, GraphOutput, Interrupted, shaped
from ._retry import RetryPolicies, RetryPolicy, retry_option
from ._run import Sink, TaskSpec
from ._runtime import INJECTABLE, RunEnv
from ._serde import DEFAULT_SERIALIZER, Serializer
from ._state import ThreadState, app_reader, checkpoint_id, history, read_state
from ._stream import StreamMode, stream_async, stream_sync
from ._task import task_name
from ._urls import resolve_store
from ._writers import DURABILITY_MODES, Durability
from .errors import ConfigurationError, UsageError
from .stores._base import Lease, Store

if TYPE_CHECKING:
    from ._admin import Threads
    from ._dry import ResumePlan

P = ParamSpec("P")
Q = ParamSpec("Q")
S = TypeVar("S")
R = TypeVar("R")
I = TypeVar("I")  # noqa: E741 - the entrypoint's input
O = TypeVar("O")  # noqa: E741 - its output

_ON_CHANGED_ARGS = ("raise", "warn", "rerun")
Version = str  # "v1" | "v2"
RetryOption = RetryPolicy | Sequence[RetryPolicy] | None


# -- entrypoint -------------------------------------------------------------------------------------


class Entrypoint(Generic[I, O]):
    """A workflow: ordinary Python calling tasks, run durably on a thread with `invoke`."""

    __wrapped__: Callable[..., Any]
    _aspec: EntrypointSpec | None = None  # an async body run by ainvoke instead of the sync one (a graph's)
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
        retry: RetryOption | RetryPolicies = None,
        store: Any = None,
        cache: Any = None,
        context_schema: type[Any] | None = None,
    ) -> None:
        if on_changed_args not in _ON_CHANGED_ARGS:
            raise ConfigurationError(f"on_changed_args={on_changed_args!r}: use 'raise', 'warn' or 'rerun'")
        if isinstance(checkpointer, str | type(None)) is False and not isinstance(checkpointer, Store):
            raise ConfigurationError(f"checkpointer={checkpointer!r}: pass a store or a URL string")
        params = _check_body(fn)
        default, aliases = task_name(fn)
        self._spec = EntrypointSpec(
            name=name or default,
            fn=fn,
            is_async=inspect.iscoroutinefunction(fn),
            injects=tuple(p for p in INJECTABLE if p in params),
            serde=serializer,
            on_changed_args=on_changed_args,
            retry=retry if isinstance(retry, RetryPolicies) else retry_option(retry, None),
            aliases=() if name else aliases,
        )
        self._nested = TaskSpec(
            name=self._spec.name, fn=fn, is_async=self._spec.is_async, inherit_retry=False, aliases=self._spec.aliases
        )
        self._checkpointer = checkpointer
        self._journal: Store | None = None
        self._journal_lock = threading.Lock()
        self._secret = secret
        self._ring: Keyring | None = keyring(secret) if secret is not None else None
        for placed in (store, cache):  # a Memory() or Cache() with no store of its own lives in the journal
            attach = getattr(placed, "attach", None)
            if callable(attach):
                attach(lambda: self.checkpointer)
        self._memory, self._cache = store, cache
        self.context_schema = context_schema
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
        other._journal = None
        other._journal_lock = threading.Lock()
        other._ring = keyring(self._secret) if self._secret is not None else None
        return other

    @property
    def checkpointer(self) -> Store:
        """The store this entrypoint journals to (resolved on first use)."""
        if self._journal is None:
            with self._journal_lock:
                if self._journal is None:
                    journal = resolve_store(self._checkpointer)
                    if self._secret is None:
                        # The entrypoint's secret, else the store's, else $DURABLE_SECRET.
                        self._ring = keyring(journal.secret)
                    self._journal = journal
        return self._journal

    @property
    def store(self) -> Any:
        """LangGraph's ``store``: the long-term memory shared by this entrypoint's threads (a `durable.Memory`
        given as ``store=`` lives in the journal's database unless it names another), or ``None``."""
        return self._memory

    @property
    def cache(self) -> Any:
        """The cache of its tasks' results (``cache=``), in the journal's database like ``store``."""
        return self._cache

    def _env(self, config: Mapping[str, Any] | None, thread_id: str, context: Any) -> RunEnv:
        """What an invocation carries besides its input: its config (with the thread id), context, memory.

        A config naming a ``checkpoint_id`` other than the thread's latest (LangGraph's time travel) is refused:
        durable runs a thread from its latest state only; `durable.Threads.fork` copies a thread up to a key.
        """
        wanted = _checkpoint(config)
        if wanted is not None:
            thread = self.checkpointer.get_thread(thread_id)
            run = thread.run if thread is not None else None
            latest = None if run is None else checkpoint_id(run.run_id, "end" if run.status == "completed" else "input")
            if wanted != latest:
                raise ConfigurationError(
                    f"config names checkpoint {wanted!r} of thread {thread_id!r}, not its latest ({latest!r}): durable "
                    f"runs a thread from its latest state only. To run from an earlier point, fork the thread "
                    f"(durable.Threads(...).fork(thread_id, at=KEY)) and invoke the fork; nothing was run"
                )
        merged = dict(config or {})
        merged["configurable"] = {**dict(merged.get("configurable") or {}), "thread_id": thread_id}
        return RunEnv(merged, context, self.store, self.cache)

    # -- running -----------------------------------------------------------------------------------

    @overload
    def invoke(
        self,
        input: I | Command[Any] | None,
        config: Mapping[str, Any] | None = None,
        *,
        thread_id: str | uuid.UUID | None = None,
        context: Any = None,
        durability: Durability = "sync",
        version: Literal["v1"] = "v1",
    ) -> O | Interrupted: ...
    @overload
    def invoke(
        self,
        input: I | Command[Any] | None,
        config: Mapping[str, Any] | None = None,
        *,
        thread_id: str | uuid.UUID | None = None,
        context: Any = None,
        durability: Durability = "sync",
        version: Literal["v2"],
    ) -> GraphOutput[O]: ...
    def invoke(
        self,
        input: I | Command[Any] | None,
        config: Mapping[str, Any] | None = None,
        *,
        thread_id: str | uuid.UUID | None = None,
        context: Any = None,
        durability: Durability = "sync",
        version: Version = "v1",
    ) -> O | Interrupted | GraphOutput[O]:
        """Run on a thread until it finishes or pauses.

        The thread is ``config["configurable"]["thread_id"]`` (LangGraph's form) or ``thread_id=``.
        New input starts a run; ``None`` resumes the unfinished run (or returns a
        finished run's value, or a paused run's `Interrupted` again); a `Command`
        answers a paused run's interrupts and resumes it. Returns the run's value,
        or `Interrupted` when it paused; with ``version="v2"``, a `GraphOutput` either
        way. ``context`` reaches the body as ``runtime.context`` (not journaled).
        Called inside another run without a thread id, the entrypoint runs as part of
        that run, its tasks journaled under the caller's key.
        """
        scope = _context.current.get()
        if scope is not None and thread_id is None and config is None:
            return scope.run.call(self._nested, scope, (input,), {}).result()  # type: ignore[no-any-return]
        _check_version(version)
        tid = _thread_id(thread_id, config, new=input is not None)
        out = self._invoke(input, tid, durability, None, env=self._env(config, tid, context))
        return shaped(out, version)  # type: ignore[no-any-return]

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
        env: RunEnv | None = None,
    ) -> Any:
        _check_durability(durability)
        _outside(f"{self.name}.invoke on thread {tid!r}")
        if self._spec.is_async:
            import asyncio

            if _loop_running():
                raise UsageError(
                    f"{self.name!r} is an async entrypoint called with invoke() from a running event "
                    f"loop: use `await {self.name}.ainvoke(...)` instead"
                )
            return asyncio.run(self._ainvoke(input, tid, durability, sink, on, reserved, suspend_after, env))
        store, ring = self._ring_for(on)
        env = env if env is not None else self._env(None, tid, None)
        token = _context.current.set(None)
        try:
            flow = invoke_flow(
                self._spec, store, input, tid, durability, None, sink, ring, reserved, suspend_after, env
            )
            return drive(flow, store)
        finally:
            _context.current.reset(token)

    @overload
    async def ainvoke(
        self,
        input: I | Command[Any] | None,
        config: Mapping[str, Any] | None = None,
        *,
        thread_id: str | uuid.UUID | None = None,
        context: Any = None,
        durability: Durability = "sync",
        version: Literal["v1"] = "v1",
    ) -> O | Interrupted: ...
    @overload
    async def ainvoke(
        self,
        input: I | Command[Any] | None,
        config: Mapping[str, Any] | None = None,
        *,
        thread_id: str | uuid.UUID | None = None,
        context: Any = None,
        durability: Durability = "sync",
        version: Literal["v2"],
    ) -> GraphOutput[O]: ...
    async def ainvoke(
        self,
        input: I | Command[Any] | None,
        config: Mapping[str, Any] | None = None,
        *,
        thread_id: str | uuid.UUID | None = None,
        context: Any = None,
        durability: Durability = "sync",
        version: Version = "v1",
    ) -> O | Interrupted | GraphOutput[O]:
        """Async `invoke`. A sync entrypoint runs in a worker thread, so the loop is never blocked."""
        scope = _context.current.get()
        if scope is not None and thread_id is None and config is None:
            return await scope.run.call(self._nested, scope, (input,), {})  # type: ignore[no-any-return]
        _check_version(version)
        tid = _thread_id(thread_id, config, new=input is not None)
        out = await self._ainvoke(input, tid, durability, None, env=self._env(config, tid, context))
        return shaped(out, version)  # type: ignore[no-any-return]

    async def _ainvoke(
        self,
        input: Any,
        tid: str,
        durability: Durability,
        sink: Sink | None,
        on: Store | None = None,
        reserved: Lease | None = None,
        suspend_after: float | None = None,
        env: RunEnv | None = None,
    ) -> Any:
        _check_durability(durability)
        _outside(f"{self.name}.ainvoke on thread {tid!r}")
        spec = self._aspec or self._spec
        if not spec.is_async:
            import asyncio

            call = partial(self._invoke, input, tid, durability, sink, on, reserved, suspend_after, env)
            return await asyncio.get_running_loop().run_in_executor(None, copy_context().run, call)
        store, ring = self._ring_for(on)
        env = env if env is not None else self._env(None, tid, None)
        token = _context.current.set(None)
        try:
            async with store.asession() as session:
                flow = invoke_flow(
                    spec, store, input, tid, durability, session, sink, ring, reserved, suspend_after, env
                )
                return await adrive(flow, session)
        finally:
            _context.current.reset(token)

    def plan(
        self,
        input: I | Command[Any] | None,
        config: Mapping[str, Any] | None = None,
        *,
        thread_id: str | uuid.UUID | None = None,
        context: Any = None,
    ) -> ResumePlan:
        """What ``invoke(input, ...)`` would do on the thread now, worked out without doing it: no task body runs,
        no lease is taken, nothing is written.

        The body replays the journal as a resume would, up to the first call with nothing to replay. The
        returned `ResumePlan` says which keys replay, the task that would run next and why (never recorded,
        its error is retried, its retry policy owes an attempt, its arguments changed), the questions it would
        pause on, how long a durable sleep still has to wait, or where the journal no longer fits the code.
        A `Command` is checked as `invoke` checks it (a bad answer raises here) and planned with its answers.
        Inputs `invoke` would refuse raise the same errors here.
        """
        tid = _thread_id(thread_id, config, new=input is not None)
        return self._plan(input, tid, self._env(config, tid, context))

    def _plan(self, input: Any, tid: str, env: RunEnv) -> ResumePlan:
        from ._dry import forecast

        # Read-only unless the journal is open already: a plan must not create (or migrate) one.
        store = self._journal if self._journal is not None else resolve_store(self._checkpointer, read_only=True)
        return forecast(self._spec, store, self._ring_for(store)[1], tid, input, env)

    def submit(
        self,
        input: I,
        config: Mapping[str, Any] | None = None,
        *,
        thread_id: str | uuid.UUID | None = None,
    ) -> str:
        """Record a new run for a worker to carry, without running it here; returns its thread id.

        A `durable.Worker` (or ``durable worker``) on the same store picks the run
        up, so a web request can start a workflow and return at once. Without a
        thread id, a new one (a UUID) is made. The input rules are `invoke`'s: a
        thread whose last run is unfinished raises `UnfinishedRunError`.
        """
        tid = uuid.uuid4().hex if thread_id is None and config is None else _thread_id(thread_id, config)
        store = self.checkpointer
        _outside(f"{self.name}.submit on thread {tid!r}")
        return drive(submit_flow(self._spec, input, tid, self._ring, store), store)  # type: ignore[no-any-return]

    async def asubmit(
        self,
        input: I,
        config: Mapping[str, Any] | None = None,
        *,
        thread_id: str | uuid.UUID | None = None,
    ) -> str:
        """Async `submit`."""
        tid = uuid.uuid4().hex if thread_id is None and config is None else _thread_id(thread_id, config)
        _outside(f"{self.name}.asubmit on thread {tid!r}")
        store = self.checkpointer
        async with store.asession() as session:
            flow = submit_flow(self._spec, input, tid, self._ring, store)
            return await adrive(flow, session)  # type: ignore[no-any-return]

    def stream(
        self,
        input: I | Command[Any] | None,
        config: Mapping[str, Any] | None = None,
        *,
        thread_id: str | uuid.UUID | None = None,
        context: Any = None,
        durability: Durability = "sync",
        stream_mode: StreamMode | Sequence[StreamMode] = "updates",
        subgraphs: bool = False,
        version: Version = "v1",
        replayed: bool = False,
    ) -> Iterator[Any]:
        """`invoke`, yielding events as the run goes, in LangGraph's shapes (described in `durable._stream`).

        ``stream_mode`` (one, or a list for ``(mode, chunk)`` pairs): ``"updates"`` yields
        ``{task_name: result}`` per finished task, then ``{entrypoint_name: value}`` or
        ``{"__interrupt__": (Interrupt, ...)}``; ``"custom"`` what `get_stream_writer()` sends;
        ``"values"`` what `invoke` returns; ``"tasks"`` each task's start and result; ``"checkpoints"``
        the run's start and end snapshots; ``"debug"`` both, with steps and timestamps; ``"messages"``
        the tokens of LangChain chat models (needs ``langchain-core``). ``subgraphs=True`` adds what
        sub-entrypoints do, each event with its namespace; ``version="v2"`` yields
        ``{"type", "ns", "data"}`` parts. Replayed tasks' updates are emitted only with ``replayed=True``.
        The run goes on in a thread of its own: stopping the iteration early does not stop the run, and a
        program that ends meanwhile waits for the run to finish or pause before it exits (a SIGKILL or Ctrl-C
        Ctrl-C leaves it unfinished; ``invoke(None, ...)`` resumes it).
        """
        _check_version(version)
        tid = _thread_id(thread_id, config, new=input is not None)
        run = partial(self._invoke, input, tid, durability, env=self._env(config, tid, context))
        return stream_sync(run, stream_mode, replayed, subgraphs, version)

    def astream(
        self,
        input: I | Command[Any] | None,
        config: Mapping[str, Any] | None = None,
        *,
        thread_id: str | uuid.UUID | None = None,
        context: Any = None,
        durability: Durability = "sync",
        stream_mode: StreamMode | Sequence[StreamMode] = "updates",
        subgraphs: bool = False,
        version: Version = "v1",
        replayed: bool = False,
    ) -> AsyncIterator[Any]:
        """`ainvoke`, yielding events as the run goes (see `stream`)."""
        _check_version(version)
        tid = _thread_id(thread_id, config, new=input is not None)
        run = partial(self._ainvoke, input, tid, durability, env=self._env(config, tid, context))
        return stream_async(run, stream_mode, replayed, subgraphs, version)

    def cancel(self, config: Mapping[str, Any] | None = None, *, thread_id: str | uuid.UUID | None = None) -> bool:
        """Cancel the thread's unfinished run (running, paused, sleeping or waiting for a worker).

        The run is marked failed with `RunCancelledError`, at once, from any process. An executor
        still running it stops at its next task boundary: its next journal write is refused and its
        ``invoke`` raises `RunCancelledError`. The journal is kept; ``invoke(None, ...)`` resumes the
        run. Returns ``False`` if there was nothing to cancel (the last run had finished).
        """
        store = self.checkpointer
        tid = _thread_id(thread_id, config)
        _outside(f"{self.name}.cancel on thread {tid!r}")
        flow = cancel_flow(self._spec, self._spec.serde, tid, self._ring)
        return drive(flow, store)  # type: ignore[no-any-return]

    # -- reading and changing state ------------------------------------------------------------------

    @property
    def threads(self) -> Threads:
        """A `Threads` handle on this entrypoint's store, listing only its runs: list, inspect, fork, export..."""
        from ._admin import Threads

        store = self.checkpointer
        return Threads(store, secret=self._secret if self._secret is not None else store.secret, entrypoint=self.name)

    def get_state(
        self, config: Mapping[str, Any] | None = None, *, thread_id: str | uuid.UUID | None = None,
        subgraphs: bool = False,
    ) -> ThreadState:  # fmt: skip
        """The thread's status, output or error, and journal entries, with LangGraph's snapshot fields
        (``values``, ``next``, ``tasks``, ``config``...). A ``checkpoint_id`` in the config (one a snapshot
        gave) reads that snapshot. Raises `ThreadNotFoundError`."""
        tid = _thread_id(thread_id, config)
        wanted = _checkpoint(config)
        if wanted is not None:
            for snapshot in self.get_state_history(config):
                if snapshot.config["configurable"]["checkpoint_id"] == wanted:
                    return snapshot
            raise ConfigurationError(f"thread {tid!r} has no checkpoint {wanted!r}")
        return read_state(self.checkpointer, tid, app_reader(self._spec.serde, self._ring))

    async def aget_state(
        self, config: Mapping[str, Any] | None = None, *, thread_id: str | uuid.UUID | None = None,
        subgraphs: bool = False,
    ) -> ThreadState:  # fmt: skip
        """Async `get_state` (the reads run in a worker thread)."""
        import asyncio

        return await asyncio.to_thread(self.get_state, config, thread_id=thread_id)

    def get_state_history(
        self,
        config: Mapping[str, Any] | None = None,
        *,
        thread_id: str | uuid.UUID | None = None,
        filter: Mapping[str, Any] | None = None,
        before: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> Iterator[ThreadState]:
        """Every snapshot of the thread, newest first, as LangGraph's ``get_state_history``: each run's end
        (once finished) and its start. ``filter`` matches ``metadata``; ``before`` (a config with a
        ``checkpoint_id``) starts after that snapshot; ``limit`` caps how many."""
        tid = _thread_id(thread_id, config)
        found = history(self.checkpointer, tid, app_reader(self._spec.serde, self._ring))
        stop = _checkpoint(before)
        if stop is not None:
            ids = [s.config["configurable"]["checkpoint_id"] for s in found]
            found = found[ids.index(stop) + 1 :] if stop in ids else []
        if filter:
            found = [s for s in found if all(s.metadata.get(k) == v for k, v in filter.items())]
        return iter(found if limit is None else found[:limit])

    async def aget_state_history(
        self,
        config: Mapping[str, Any] | None = None,
        *,
        thread_id: str | uuid.UUID | None = None,
        filter: Mapping[str, Any] | None = None,
        before: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[ThreadState]:
        """Async `get_state_history`."""
        import asyncio

        read = partial(self.get_state_history, config, thread_id=thread_id, filter=filter, before=before, limit=limit)
        for snapshot in await asyncio.to_thread(lambda: list(read())):
            yield snapshot

    def update_state(self, config: Mapping[str, Any], values: Any, as_node: str | None = None) -> dict[str, Any]:
        """Set what the thread's next run receives as ``previous`` (and what ``get_state().values`` shows),
        as LangGraph's ``update_state`` does for an entrypoint; returns the new snapshot's config.

        It is journaled as a run that completes at once with ``values``. The thread's last run must
        have finished (`UnfinishedRunError` otherwise: resume or cancel it first; LangGraph lets an update
        change a paused run, which durable's journal of recorded calls cannot mean).
        """
        if as_node is not None and as_node != self.name:
            raise ConfigurationError(f"as_node={as_node!r}: an entrypoint's state is updated as {self.name!r}")
        tid = _thread_id(None, config)
        _outside(f"{self.name}.update_state on thread {tid!r}")
        store = self.checkpointer
        run_id = drive(update_flow(self._spec, values, tid, self._ring, store), store)
        return {"configurable": {"thread_id": tid, "checkpoint_ns": "", "checkpoint_id": checkpoint_id(run_id, "end")}}

    async def aupdate_state(self, config: Mapping[str, Any], values: Any, as_node: str | None = None) -> dict[str, Any]:
        """Async `update_state`."""
        import asyncio

        return await asyncio.to_thread(self.update_state, config, values, as_node)

    def clear_cache(self) -> int:
        """Forget every cached task result in this entrypoint's ``cache`` (all tasks); returns how many."""
        cache = self.cache
        return 0 if cache is None else int(cache.clear())

    async def aclear_cache(self) -> int:
        """Async `clear_cache`."""
        import asyncio

        return await asyncio.to_thread(self.clear_cache)


def as_entrypoint(obj: Any) -> Entrypoint[Any, Any] | None:
    """The entrypoint an object runs as: an `Entrypoint`, or what a compiled graph runs on; ``None`` otherwise."""
    if isinstance(obj, Entrypoint):
        return obj
    underneath = getattr(type(obj), "__durable_entrypoint__", None)
    return underneath(obj) if callable(underneath) else None


def _check_body(fn: Callable[..., Any]) -> Mapping[str, inspect.Parameter]:
    """The body's parameters, or a `ConfigurationError` for a body no invoke could ever run."""
    if not callable(fn):
        raise ConfigurationError(f"@entrypoint decorates a function, not {fn!r}")
    if inspect.isgeneratorfunction(fn) or inspect.isasyncgenfunction(fn):
        raise ConfigurationError(
            f"@entrypoint {getattr(fn, '__name__', fn)!r} is a generator: an entrypoint returns its value "
            f"(stream progress with get_stream_writer(), or a `writer` parameter, instead of yielding)"
        )
    params = inspect.signature(fn).parameters
    first = next(iter(params.values()), None)
    if first is None or first.kind not in (first.POSITIONAL_ONLY, first.POSITIONAL_OR_KEYWORD):
        raise ConfigurationError(
            f"@entrypoint {getattr(fn, '__name__', fn)!r} takes no input parameter: its first parameter "
            f"receives invoke's input (pass a dict for several values)"
        )
    return params


class _EntrypointDecorator(Protocol):
    @overload
    def __call__(self, fn: Callable[[I], Coroutine[Any, Any, O]], /) -> Entrypoint[I, O]: ...
    @overload
    def __call__(self, fn: Callable[[I], O], /) -> Entrypoint[I, O]: ...
    @overload
    def __call__(self, fn: Callable[..., Coroutine[Any, Any, O]], /) -> Entrypoint[Any, O]: ...
    @overload
    def __call__(self, fn: Callable[..., O], /) -> Entrypoint[Any, O]: ...


class _EntrypointFactory:
    """`@entrypoint` or `@entrypoint(checkpointer=..., store=..., cache=..., retry_policy=..., ...)`.

    ``checkpointer`` is a store or a URL (``"sqlite:///app.db"``, ``"memory://"``);
    without one, ``$DURABLE_URL`` or a ``durable.db`` file in the working
    directory. ``store`` is LangGraph's long-term memory (a `durable.Memory`, or any
    LangGraph ``BaseStore``), reached as a ``store`` parameter, ``runtime.store`` or
    `get_store()`; ``cache`` keeps task results across runs for tasks with a
    `CachePolicy`; ``context_schema`` types ``invoke(..., context=...)``.
    ``retry_policy`` (one `RetryPolicy` or a list; ``retry=`` is an alias) is the
    policy of its tasks that have none of their own. ``on_changed_args`` says what
    a replayed task called with other arguments than recorded does: ``"raise"``
    `ArgumentsChangedError` (the default), ``"warn"`` and replay the recorded
    result, or ``"rerun"`` the task. Return ``entrypoint.final(value=..., save=...)``
    to give the next run's ``previous`` parameter something other than the
    returned value. The body may declare ``previous``, ``config``, ``writer``,
    ``store`` and ``runtime`` parameters: they are given, as in LangGraph.
    """

    final = Final

    @overload
    def __call__(self, fn: Callable[[I], Coroutine[Any, Any, O]], /) -> Entrypoint[I, O]: ...
    @overload
    def __call__(self, fn: Callable[[I], O], /) -> Entrypoint[I, O]: ...
    @overload
    def __call__(self, fn: Callable[..., Coroutine[Any, Any, O]], /) -> Entrypoint[Any, O]: ...
    @overload
    def __call__(self, fn: Callable[..., O], /) -> Entrypoint[Any, O]: ...
    @overload
    def __call__(
        self,
        *,
        checkpointer: Store | str | None = None,
        store: Any = None,
        cache: Any = None,
        context_schema: type[Any] | None = None,
        retry_policy: RetryOption = None,
        name: str | None = None,
        serializer: Serializer | None = None,
        on_changed_args: OnChangedArgs = "raise",
        secret: Secret | None = None,
        retry: RetryOption = None,
    ) -> _EntrypointDecorator: ...
    def __call__(  # type: ignore[misc]  # mypy mis-reads the keyword-only overload
        self,
        fn: Callable[..., Any] | None = None,
        /,
        *,
        checkpointer: Store | str | None = None,
        store: Any = None,
        cache: Any = None,
        context_schema: type[Any] | None = None,
        retry_policy: RetryOption = None,
        name: str | None = None,
        serializer: Serializer | None = None,
        on_changed_args: OnChangedArgs = "raise",
        secret: Secret | None = None,
        retry: RetryOption = None,
    ) -> Any:
        policy = retry_option(retry_policy, retry)

        def decorate(func: Callable[..., Any]) -> Entrypoint[Any, Any]:
            return Entrypoint(
                func,
                checkpointer=checkpointer,
                name=name,
                serializer=serializer or DEFAULT_SERIALIZER,
                on_changed_args=on_changed_args,
                secret=secret,
                retry=policy,
                store=store,
                cache=cache,
                context_schema=context_schema,
            )

        return decorate if fn is None else decorate(fn)

    def __repr__(self) -> str:
        return "durable.entrypoint"


entrypoint = _EntrypointFactory()


def _thread_id(thread_id: str | uuid.UUID | None, config: Mapping[str, Any] | None, *, new: bool = False) -> str:
    """The thread an invocation names. With ``new`` (new input), naming none starts a thread of its own, as a
    LangGraph program without a checkpointer runs without one: its id is in `Interrupted.thread_id` and
    ``get_config()``, so a pause can still be answered."""
    from_config = None
    if config is not None:
        configurable = config.get("configurable") if isinstance(config, Mapping) else None
        if isinstance(configurable, Mapping) and "thread_id" in configurable:
            from_config = configurable["thread_id"]
        elif not new or (isinstance(config, Mapping) and "thread_id" in config):  # a thread id put in the wrong place
            raise ConfigurationError(
                f"config={config!r} has no thread id: pass config={{'configurable': {{'thread_id': ...}}}}"
            )
    if new and thread_id is None and from_config is None:
        return uuid.uuid4().hex
    if thread_id is not None and from_config is not None and str(thread_id) != str(from_config):
        raise ConfigurationError(f"thread_id={thread_id!r} and the config's {from_config!r} disagree: pass one")
    chosen = thread_id if thread_id is not None else from_config
    if chosen is None:
        raise ConfigurationError(
            "no thread id: pass thread_id='...' or config={'configurable': {'thread_id': ...}} (the journal is "
            "kept per thread)"
        )
    return check_thread_id(chosen)


def _checkpoint(config: Mapping[str, Any] | None) -> str | None:
    configurable = (config or {}).get("configurable") or {}
    found = configurable.get("checkpoint_id") if isinstance(configurable, Mapping) else None
    return None if found is None else str(found)


def _check_version(version: str) -> None:
    if version not in ("v1", "v2"):
        raise ConfigurationError(f"version={version!r}: use 'v1' (the default) or 'v2'")


def _check_durability(durability: str) -> None:
    if durability not in DURABILITY_MODES:
        raise ConfigurationError(f"durability={durability!r}: use 'sync', 'async' or 'exit'")


def _outside(what: str) -> None:
    """A run's body starting another thread's run: a dry run stops there (`Run.refuse`)."""
    scope = _context.current.get()
    if scope is not None:
        scope.run.refuse(what)


def _loop_running() -> bool:
    import asyncio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return False
    return True
