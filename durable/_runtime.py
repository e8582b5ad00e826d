"""What a workflow can reach while it runs: its config, context, long-term memory and stream, as LangGraph names them.

An invocation's `RunEnv` (the config it was given, its ``context=``, the entrypoint's ``store``
and ``cache``) travels with the run. The entrypoint's body receives parts of it as parameters it
declares by name (``config``, ``writer``, ``store``, ``runtime``, ``previous``), resolved once per
entrypoint, not per call; any code in the run, tasks included, reaches it through `get_config`,
`get_store`, `get_runtime` and `get_stream_writer`. Nothing here is journaled: the context and the
config are the caller's, given again on each invoke, as in LangGraph.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from . import _context
from .errors import UsageError

C = TypeVar("C")
StreamWriter = Callable[[Any], None]
INJECTABLE = ("previous", "config", "writer", "store", "runtime")


def _no_writer(chunk: Any) -> None:
    """Nothing is streaming: custom events are dropped."""


@dataclass(frozen=True, slots=True)
class RunEnv:
    """What one invocation brings besides its input (none of it is journaled)."""

    config: Mapping[str, Any] = field(default_factory=dict)
    context: Any = None
    store: Any = None  # the long-term memory: a `durable.Memory` (or any LangGraph BaseStore), or None
    cache: Any = None  # the task cache (`durable.Cache`), or None


EMPTY = RunEnv()


@dataclass(frozen=True, slots=True)
class Runtime(Generic[C]):
    """LangGraph's ``Runtime``: the run's ``context``, its long-term memory (``store``), its custom stream
    writer and, in an entrypoint, the thread's ``previous`` value. Injected as a ``runtime`` parameter,
    or from `get_runtime()` anywhere in the run."""

    context: C = None  # type: ignore[assignment]
    store: Any = None
    stream_writer: StreamWriter = _no_writer
    previous: Any = None

    def heartbeat(self) -> None:
        """LangGraph's idle-timeout signal; durable's task timeouts are wall-clock, so there is nothing to do."""


def _scope() -> Any:
    scope = _context.current.get()
    if scope is None:
        return None
    return scope


def get_stream_writer() -> StreamWriter:
    """A function that sends a custom event to whoever streams this run (``stream_mode="custom"``).

    Outside a streamed run the writer does nothing, so the same code runs under ``invoke``.
    """
    scope = _scope()
    sink = scope.run.sink if scope is not None else None
    if sink is None:
        return _no_writer
    return lambda chunk: sink("custom", chunk)


def get_config() -> dict[str, Any]:
    """The config the run was invoked with (LangGraph's ``RunnableConfig``: ``{"configurable": {"thread_id": ...}}``).

    Raises `UsageError` outside a run, as LangGraph raises outside a runnable context.
    """
    scope = _scope()
    if scope is None:
        raise UsageError("get_config() is called outside a durable run: call it in an @entrypoint or a @task it runs")
    calls = scope.run.calls
    if calls:  # in a graph's node (or a task it calls): the node's config, as LangGraph gives it
        key = scope.prefix[:-1]
        while key:
            call = calls.get(key)
            if call is not None:
                return dict(call.node_config())
            key = key.rpartition(".")[0]
    return dict(scope.run.env.config)


def get_store() -> Any:
    """The entrypoint's long-term memory (its ``store=``), shared across threads; ``None`` if it has none."""
    scope = _scope()
    if scope is None:
        raise UsageError("get_store() is called outside a durable run: call it in an @entrypoint or a @task it runs")
    return scope.run.env.store


def get_runtime(context_schema: type[C] | None = None) -> Runtime[C]:
    """The run's `Runtime` (context, store, stream writer, previous value). ``context_schema`` only types it."""
    scope = _scope()
    if scope is None:
        raise UsageError("get_runtime() is called outside a durable run: call it in an @entrypoint or a @task")
    run = scope.run
    return Runtime(run.env.context, run.env.store, get_stream_writer(), run.previous)


def injected(names: tuple[str, ...], env: RunEnv, previous: Any, writer: StreamWriter) -> dict[str, Any]:
    """The keyword arguments an entrypoint declared among `INJECTABLE`, for one invocation."""
    values: dict[str, Any] = {}
    for name in names:
        if name == "previous":
            values[name] = previous
        elif name == "config":
            values[name] = dict(env.config)
        elif name == "writer":
            values[name] = writer
        elif name == "store":
            values[name] = env.store
        else:
            values[name] = Runtime(env.context, env.store, writer, previous)
    return values
