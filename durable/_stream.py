"""`stream` and `astream`: a run's events as it goes, in LangGraph's stream modes and chunk shapes.

Modes (``stream_mode=``, one or a list; with a list, each event is a ``(mode, chunk)`` pair):

- ``"updates"`` (default): ``{task_name: result}`` as each task finishes (a cache hit adds
  ``"__metadata__": {"cached": True}``), ``{entrypoint_name: value}`` when the run finishes,
  ``{"__interrupt__": (Interrupt, ...)}`` when it pauses. A task that raised yields nothing here.
  Tasks replayed from the journal are not emitted again unless ``replayed=True``.
- ``"custom"``: whatever tasks or the entrypoint send through `get_stream_writer()`.
- ``"values"``: the run's value when it finishes, or its `Interrupted` when it pauses. A run that
  resumes (``None`` on an unfinished or paused thread, or a `Command`) first yields the values it
  resumes from: the previous run's value, ``None`` for a thread's first run (LangGraph's leading
  ``None``). We yield it, as LangGraph does, because it is ``get_state().values`` at that moment and
  costs one read of the thread's runs, on resumes only; take the last chunk for the final value.
- ``"tasks"``: ``{"id", "name", "input", "triggers"}`` when a task (or the entrypoint) starts, and
  ``{"id", "name", "error", "result", "interrupts"}`` when it ends: a task's ``result`` is
  ``{"__return__": value}``, the entrypoint's ``{"__end__": value}``; ``{}`` with the exception as
  ``error``, or with the pending ``interrupts`` (``{"value", "id", "response_schema"}`` dicts) when
  the run pauses. The entrypoint's ``input`` is the run's input, a task's ``(args, kwargs)``; its
  ``triggers`` are ``("__start__",)``, a task's ``("__pregel_push",)``. A task replayed from the
  journal yields its start only (a replayed error also its result, as LangGraph's re-run does); a
  task that pauses and a cache hit yield no result. Ids are UUIDs that never change for a call:
  ``uuid5`` of (thread, run, key), the entrypoint's of (thread, run).
- ``"checkpoints"``: LangGraph's checkpoint at a run's start (``metadata.source`` ``"input"``, with
  the values it starts from, ``next`` and ``tasks`` naming the entrypoint, and the interrupts or
  error of the run being resumed) and when it completes (``"loop"``). Their ``config`` and ``step``
  are `get_state()`'s for the same snapshot. A paused run has no checkpoint of its end.
- ``"debug"``: each checkpoint and task event as ``{"step", "timestamp", "type": "checkpoint" |
  "task" | "task_result", "payload": chunk}``.
- ``"messages"`` (needs ``langchain-core``): ``(AIMessageChunk, metadata)`` for each token a
  LangChain chat model produces in a task or the entrypoint, and the messages a task or the
  entrypoint returns that were not streamed; ``metadata`` has LangGraph's ``langgraph_node``,
  ``langgraph_step``, ``langgraph_path``, ``langgraph_checkpoint_ns``... and the model's ``ls_*``.

``subgraphs=True`` also streams what happens inside a sub-entrypoint (``inner.invoke(x)`` in a run)
and gives each event its namespace: ``(ns, chunk)``, or ``(ns, mode, chunk)`` for a list of modes;
``()`` at the top, ``("outer:<id>", ...)`` inside, named after the calls it runs under. Without it,
a sub-entrypoint's events are not streamed, and its call is not a task update of its caller (as in
LangGraph). ``version="v2"`` yields ``{"type": mode, "ns": ns, "data": chunk}`` parts instead; a
``"values"`` part also has ``"interrupts"`` (its ``data`` is ``{}`` when the run paused).

Deliberate differences from LangGraph:

- a paused run's ``"values"`` chunk is durable's `Interrupted` (what ``invoke`` returns, a mapping
  whose only key is ``"__interrupt__"``, so LangGraph code reading the chunk works), not a dict;
- interrupt ids are durable's call-order keys (``"1"``, ``"0.2"``), not hashes;
- a sub-entrypoint has no checkpoints of its own (it is journaled in its caller's run): none are
  streamed for it, in ``"checkpoints"`` or ``"debug"``;
- streaming ``None`` on a paused thread runs nothing (LangGraph runs the body again up to the same
  interrupt): it yields the values, checkpoint, start and pause, not its tasks' replayed starts nor
  the custom events the body would send again;
- the metadata of a returned message says ``"ls_integration": "durable"`` (LangGraph's says
  ``"langgraph"``): tracing tools should not take a durable run for a LangGraph one.

The run goes on in a worker thread (``stream``) or a task (``astream``) and its events are handed
over through a queue. A consumer that stops early does not stop the run: it still finishes, pauses
or fails, and is journaled as usual.
"""

from __future__ import annotations

import importlib
import queue
import threading
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping, Sequence
from contextvars import copy_context
from typing import Any, Literal

from . import _context
from ._interrupts import Interrupted
from .errors import ConfigurationError

StreamMode = Literal["updates", "custom", "values", "tasks", "checkpoints", "debug", "messages"]
MODES = ("updates", "custom", "values", "tasks", "checkpoints", "debug", "messages")
Namespace = tuple[str, ...]
Event = tuple[str, Any, Namespace]
_DONE: Any = object()
_IDS = uuid.UUID("0b8f6a3e-4a56-5d0c-9a43-2f1c7e9d5b61")  # the namespace of streamed task ids; never change it


def entry_id(thread_id: str, run_id: int) -> str:
    """The id of a run's entrypoint task in "tasks" and "checkpoints" chunks."""
    return str(uuid.uuid5(_IDS, f"{thread_id}\x00{run_id}"))


def call_id(thread_id: str, run_id: int, key: str) -> str:
    """The id of the task call at ``key`` of a run."""
    return str(uuid.uuid5(_IDS, f"{thread_id}\x00{run_id}\x00{key}"))


class Sink:
    """Where a streamed run's events go: the modes asked for, as flags an emitter checks before it
    builds a chunk, and what places an event in its namespace.

    Keys name where an event happens: ``""`` is the entrypoint's body, ``"3"`` the call at key 3 (or
    its body). ``graphs`` holds the keys of sub-entrypoint calls; ``names`` the name of every call
    (kept only when namespaces are shown, or messages streamed).
    """

    config: Mapping[str, Any]

    __slots__ = (
        "checkpoints", "config", "custom", "debug", "eid", "graphs", "handler", "index", "messages", "modes", "name",
        "names", "put", "replayed", "run_id", "runs", "starts", "step", "subgraphs", "task_events", "tasks",
        "thread_id", "track", "updates", "values",
    )  # fmt: skip

    def __init__(
        self, modes: frozenset[str], put: Callable[[Event], None], replayed: bool = False, subgraphs: bool = False
    ) -> None:
        self.modes, self.put, self.replayed, self.subgraphs = modes, put, replayed, subgraphs
        self.updates, self.custom, self.values = "updates" in modes, "custom" in modes, "values" in modes
        self.tasks, self.checkpoints, self.debug = "tasks" in modes, "checkpoints" in modes, "debug" in modes
        self.messages = "messages" in modes
        self.task_events = self.tasks or self.debug
        self.track = subgraphs or self.messages
        self.starts = self.task_events or self.track  # whether a task's start has anything to stream or note
        self.names: dict[str, str] = {}
        self.graphs: set[str] = set()
        self.runs = True  # the engine streams the run's own events (a graph streams its own, in its shapes)
        self.handler: Any = None  # the LangChain callback handler, for "messages"
        # For "messages": each task call's index among the task calls of its caller's body (LangGraph's
        # ``langgraph_path`` counts those only: not interrupts, sub-entrypoints or durable.now()), by key.
        self.index: dict[str, int] = {}
        self.bind("", 0, "")

    def bind(self, thread_id: str, run_id: int, name: str, config: Mapping[str, Any] | None = None) -> None:
        """The run the events come from (its ids and steps are made from it), and the config it was given."""
        self.thread_id, self.run_id, self.name = thread_id, run_id, name
        self.config = config or {}
        self.eid = entry_id(thread_id, run_id) if name else ""
        self.step = 2 * run_id - 2  # the step of the run's tasks, as in LangGraph (its checkpoints: -1, 0, 1...)

    def __call__(self, mode: str, chunk: Any) -> None:
        """An event sent from code in the run (`get_stream_writer`): placed after the body sending it."""
        if mode not in self.modes:
            return
        if not self.graphs and not self.subgraphs:
            self.put((mode, chunk, ()))
            return
        scope = _context.current.get()
        body = scope.prefix[:-1] if scope is not None and scope.run.sink is self else ""
        if not self.subgraphs:
            if self.graph_of(body) == "":
                self.put((mode, chunk, ()))
        else:
            self.put((mode, chunk, self.chain(body)))

    def emit(self, mode: str, chunk: Any, ns: Namespace = ()) -> None:
        """An event of a mode asked for, in its namespace."""
        self.put((mode, chunk, ns))

    def call_id(self, key: str) -> str:
        return call_id(self.thread_id, self.run_id, key) if key else self.eid

    # -- namespaces --------------------------------------------------------------------------------

    def graph_of(self, body: str) -> str:
        """The key of the sub-entrypoint whose graph a body runs in (``""``: the entrypoint's)."""
        graphs = self.graphs
        if not graphs:
            return ""
        while body:
            if body in graphs:
                return body
            body = body.rpartition(".")[0]
        return ""

    def chain(self, body: str) -> Namespace:
        """The namespace of what a body sends: ``name:id`` of the entrypoint and of each call it runs under."""
        if not body:
            return ()
        parts = body.split(".")
        out = [f"{self.name}:{self.eid}"]
        for i in range(1, len(parts)):
            key = ".".join(parts[:i])
            out.append(f"{self.names.get(key, '?')}:{self.call_id(key)}")
        return tuple(out)

    def task_ns(self, key: str) -> Namespace | None:
        """Where a task call's events go (its graph's namespace), or ``None`` if they are not streamed."""
        if not self.graphs:
            return ()
        graph = self.graph_of(key.rpartition(".")[0])
        if graph == "":
            return ()
        return self.chain(graph) if self.subgraphs else None

    def graph_ns(self, key: str) -> Namespace | None:
        """Where a sub-entrypoint's own events go (inside it), or ``None`` without ``subgraphs``."""
        return self.chain(key) if self.subgraphs else None


def _modes(stream_mode: str | Sequence[str]) -> tuple[frozenset[str], bool]:
    single = isinstance(stream_mode, str)
    modes = [stream_mode] if isinstance(stream_mode, str) else list(stream_mode)
    bad = [m for m in modes if m not in MODES]
    if bad or not modes:
        raise ConfigurationError(f"stream_mode={stream_mode!r}: use {', '.join(map(repr, MODES))} or a list of them")
    if "messages" in modes:
        try:
            importlib.import_module("langchain_core.callbacks")
        except ImportError:
            raise ConfigurationError(
                "stream_mode='messages' streams the tokens of LangChain chat models, which needs langchain-core: "
                "pip install langchain-core (or durable-exec[bench])"
            ) from None
    return frozenset(modes), single


class _Shape:
    """Turns a (mode, chunk, namespace) event into what the iterator yields, per ``subgraphs`` and ``version``."""

    __slots__ = ("single", "subgraphs", "v2")

    def __init__(self, single: bool, subgraphs: bool, version: str) -> None:
        self.single, self.subgraphs, self.v2 = single, subgraphs, version == "v2"

    def __call__(self, mode: str, chunk: Any, ns: Namespace) -> Any:
        if self.v2:
            if mode != "values":
                return {"type": mode, "ns": ns, "data": chunk}
            if isinstance(chunk, Interrupted):
                return {"type": mode, "ns": ns, "data": {}, "interrupts": chunk.interrupts}
            return {"type": mode, "ns": ns, "data": chunk, "interrupts": ()}
        if self.subgraphs:
            return (ns, chunk) if self.single else (ns, mode, chunk)
        return chunk if self.single else (mode, chunk)


def stream_sync(
    run: Callable[[Any], Any], stream_mode: str | Sequence[str], replayed: bool, subgraphs: bool = False,
    version: str = "v1", sink_type: type[Sink] = Sink,
) -> Iterator[Any]:  # fmt: skip
    """Iterate the events of ``run(sink)``, which runs in a thread of its own (``stream``)."""
    modes, single = _modes(stream_mode)
    return _iterate(run, modes, _Shape(single, subgraphs, version), replayed, subgraphs, sink_type)


def _iterate(
    run: Callable[[Any], Any], modes: frozenset[str], shape: _Shape, replayed: bool, subgraphs: bool,
    sink_type: type[Sink],
) -> Iterator[Any]:  # fmt: skip
    events: queue.SimpleQueue[Event] = queue.SimpleQueue()
    sink = sink_type(modes, events.put, replayed, subgraphs)

    def work() -> None:
        try:
            run(sink)
        except BaseException as exc:  # handed to the consumer
            events.put((_DONE, exc, ()))
        else:
            events.put((_DONE, None, ()))

    # Not a daemon: a consumer that stops early does not stop the run, and neither does the end of the program,
    # which waits for the run to finish (or pause) as it would for an `invoke`, instead of killing it mid-task.
    threading.Thread(target=copy_context().run, args=(work,), name="durable-stream", daemon=False).start()
    while True:
        mode, chunk, ns = events.get()
        if mode is _DONE:
            if chunk is not None:
                raise chunk
            return
        yield shape(mode, chunk, ns)


def stream_async(
    run: Callable[[Any], Awaitable[Any]], stream_mode: str | Sequence[str], replayed: bool, subgraphs: bool = False,
    version: str = "v1", sink_type: type[Sink] = Sink,
) -> AsyncIterator[Any]:  # fmt: skip
    """Iterate the events of ``await run(sink)``, which runs as a task of the loop (``astream``)."""
    modes, single = _modes(stream_mode)
    return _aiterate(run, modes, _Shape(single, subgraphs, version), replayed, subgraphs, sink_type)


async def _aiterate(
    run: Callable[[Any], Awaitable[Any]], modes: frozenset[str], shape: _Shape, replayed: bool, subgraphs: bool,
    sink_type: type[Sink],
) -> AsyncIterator[Any]:  # fmt: skip
    import asyncio

    loop = asyncio.get_running_loop()
    events: asyncio.Queue[Event] = asyncio.Queue()
    loop_thread = threading.get_ident()

    def put(event: Event) -> None:
        # Sync tasks run in worker threads: they hand events to the loop thread.
        if threading.get_ident() == loop_thread:
            events.put_nowait(event)
        else:
            loop.call_soon_threadsafe(events.put_nowait, event)

    task = asyncio.ensure_future(run(sink_type(modes, put, replayed, subgraphs)))
    task.add_done_callback(lambda _: put((_DONE, None, ())))
    while True:
        mode, chunk, ns = await events.get()
        if mode is _DONE:
            await task  # its value is in the events; its exception, if any, is raised here
            return
        yield shape(mode, chunk, ns)
