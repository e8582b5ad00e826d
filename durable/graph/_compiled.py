"""`CompiledStateGraph`: a graph that runs durably, with LangGraph's methods.

A compiled graph is an entrypoint underneath: its body is the superstep loop (`_loop`), each node
run is one of its tasks, and its state at the end of a run is what the next run starts from (the
entrypoint's ``previous``). So everything durable does for entrypoints holds for graphs: one
writer per thread, leases, signing, every store, `submit` and workers, `Threads` and the CLI.

What a method does with its input decides the run: new input starts a run from ``START``; ``None``
resumes an unfinished run, or goes on past a breakpoint; ``Command(resume=...)`` answers a
node's `interrupt`; ``Command(update=..., goto=...)`` and ``update_state`` change the state as a
node would have. A config naming an earlier checkpoint runs from there (time travel).
"""

from __future__ import annotations

import dataclasses
import inspect
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any, Generic, Literal, TypeVar

from .._api import Entrypoint, _check_durability, _check_version, _thread_id
from .._interrupts import Command, GraphOutput, Interrupt, Interrupted
from .._serde import DEFAULT_SERIALIZER
from .._stream import StreamMode, stream_async, stream_sync
from .._writers import Durability
from ..errors import ConfigurationError, IntegrityError, UsageError
from ._builder import END, START, NodeSpec, StateGraph, call_of
from ._channels import Barrier, Channel, DeferredTrigger, Ephemeral, Reduced, Tasks
from ._emit import Emitter, GraphSink
from ._loop import GraphCore, Invocation, Op, adrive, decode_op, drive, graph_flow, invocation
from ._node import Runner
from ._pregel import TASKS, NodePlan, Plan, branch_channel

if TYPE_CHECKING:
    from .._admin import Threads
    from .._dry import ResumePlan
    from .._state import ThreadState
    from ..stores._base import Store
    from ._draw import Graph

StateT = TypeVar("StateT")
ContextT = TypeVar("ContextT")
InputT = TypeVar("InputT")
OutputT = TypeVar("OutputT")

_INJECTABLE = ("config", "writer", "store", "runtime")
_INTERRUPT = "__interrupt__"


class CompiledStateGraph(Generic[StateT, ContextT, InputT, OutputT]):
    """A `StateGraph` compiled to run durably: ``invoke``, ``stream``, ``get_state``, ``update_state``...

    Each run is journaled per thread (``config={"configurable": {"thread_id": ...}}``); a node's
    result is one journal row, so a crash or a failed node loses nothing that finished: ``invoke(None,
    config)`` runs only what had not.
    """

    def __init__(
        self,
        builder: StateGraph[Any, Any, Any, Any],
        *,
        checkpointer: Store | str | bool | None,
        cache: Any,
        store: Any,
        interrupt_before: tuple[str, ...],
        interrupt_after: tuple[str, ...],
        name: str | None,
        serializer: Any,
        secret: Any,
        retry: Any,
    ) -> None:
        self.builder = builder
        self.name = name or "LangGraph"
        self.core = _core(builder, self.name, interrupt_before, interrupt_after, retry, nested=False)
        self._nested_core = dataclasses.replace(self.core, nested=True)
        if checkpointer is True or checkpointer is False:
            checkpointer = None  # a subgraph's own-checkpointer flag: a subgraph is journaled in its parent's run
        body = _abody(self.core) if self.core.has_async else _body(self.core)
        self.entrypoint: Entrypoint[Any, Any] = Entrypoint(
            body,
            checkpointer=checkpointer,
            name=self.name,
            serializer=serializer or DEFAULT_SERIALIZER,
            on_changed_args="raise",
            secret=secret,
            store=store,
            cache=cache,
            context_schema=builder.context_schema,
        )
        # A graph's saved state is all its next run needs: the thread keeps that one copy (see RunOutcome).
        spec = self.entrypoint._spec = dataclasses.replace(self.entrypoint._spec, forget_prior=True)
        if not self.core.has_async:
            self.entrypoint._aspec = dataclasses.replace(spec, fn=_abody(self.core), is_async=True)

    def __repr__(self) -> str:
        return f"<CompiledStateGraph {self.name}: {', '.join(self.builder.nodes)}>"

    @property
    def checkpointer(self) -> Store:
        """The store the graph journals to."""
        return self.entrypoint.checkpointer

    @property
    def store(self) -> Any:
        return self.entrypoint.store

    @property
    def cache(self) -> Any:
        return self.entrypoint.cache

    @property
    def nodes(self) -> Mapping[str, NodeSpec]:
        return self.builder.nodes

    @property
    def threads(self) -> Threads:
        """A `Threads` handle on this graph's store, listing only its runs."""
        return self.entrypoint.threads

    def __durable_entrypoint__(self) -> Entrypoint[Any, Any]:
        """The entrypoint a `Worker` (or ``durable worker``) resumes this graph's runs with."""
        return self.entrypoint

    def get_graph(self, config: Mapping[str, Any] | None = None, *, xray: bool | int = False) -> Graph:
        """The graph's nodes and edges, as LangGraph draws them: ``get_graph().draw_mermaid()``."""
        from ._draw import draw_graph

        core = self.core
        return draw_graph(
            self.builder, xray=xray, interrupt_before=core.interrupt_before, interrupt_after=core.interrupt_after
        )

    # -- running -------------------------------------------------------------------------------------------

    def invoke(
        self,
        input: InputT | Command[Any] | None,
        config: Mapping[str, Any] | None = None,
        *,
        context: ContextT | None = None,
        stream_mode: StreamMode = "values",
        interrupt_before: Literal["*"] | Sequence[str] | None = None,
        interrupt_after: Literal["*"] | Sequence[str] | None = None,
        durability: Durability = "sync",
        version: Literal["v1", "v2"] = "v1",
        thread_id: str | uuid.UUID | None = None,
    ) -> Any:
        """Run the graph on a thread until it ends, pauses or stops at a breakpoint; return its state.

        New input starts from ``START``; ``None`` resumes an unfinished run (a failed or killed one runs
        its unfinished nodes only) or goes on from a breakpoint; ``Command(resume=...)`` answers
        interrupts. A paused run's result has its interrupts under ``"__interrupt__"``; with
        ``version="v2"`` a `GraphOutput`. ``interrupt_before``/``interrupt_after`` replace the compiled
        breakpoints for this run. ``config["recursion_limit"]`` caps the supersteps (default 25).
        """
        nested = _nested_in_run(config, thread_id)
        if nested is not None:  # invoked inside a node of a running graph: a subgraph call, journaled in its run
            return self._nested_invoke(input, nested, _parent_emitter())
        if stream_mode != "values":
            return list(self.stream(input, config, context=context, stream_mode=stream_mode, durability=durability,
                                    interrupt_before=interrupt_before, interrupt_after=interrupt_after,
                                    version=version, thread_id=thread_id))  # fmt: skip
        _check_version(version)
        call = self._prepare(input, config, thread_id, context, interrupt_before, interrupt_after, durability)
        return self._shape(self._run(call, None), version)

    async def ainvoke(
        self,
        input: InputT | Command[Any] | None,
        config: Mapping[str, Any] | None = None,
        *,
        context: ContextT | None = None,
        stream_mode: StreamMode = "values",
        interrupt_before: Literal["*"] | Sequence[str] | None = None,
        interrupt_after: Literal["*"] | Sequence[str] | None = None,
        durability: Durability = "sync",
        version: Literal["v1", "v2"] = "v1",
        thread_id: str | uuid.UUID | None = None,
    ) -> Any:
        """Async `invoke`: async nodes run on the loop, sync ones in worker threads."""
        nested = _nested_in_run(config, thread_id)
        if nested is not None:
            return await self._nested_ainvoke(input, nested, _parent_emitter())
        if stream_mode != "values":
            return [chunk async for chunk in self.astream(
                input, config, context=context, stream_mode=stream_mode, durability=durability,
                interrupt_before=interrupt_before, interrupt_after=interrupt_after, version=version,
                thread_id=thread_id,
            )]  # fmt: skip
        _check_version(version)
        call = await _to_thread(
            self._prepare, input, config, thread_id, context, interrupt_before, interrupt_after, durability
        )
        return self._shape(await self._arun(call, None), version)

    def stream(
        self,
        input: InputT | Command[Any] | None,
        config: Mapping[str, Any] | None = None,
        *,
        context: ContextT | None = None,
        stream_mode: StreamMode | Sequence[StreamMode] | None = None,
        interrupt_before: Literal["*"] | Sequence[str] | None = None,
        interrupt_after: Literal["*"] | Sequence[str] | None = None,
        durability: Durability = "sync",
        subgraphs: bool = False,
        version: Literal["v1", "v2"] = "v1",
        thread_id: str | uuid.UUID | None = None,
    ) -> Iterator[Any]:
        """`invoke`, yielding LangGraph's chunks as the run goes (``stream_mode`` one or a list; default
        ``"updates"``): see `durable.graph._emit` for the shapes."""
        _check_version(version)
        call = self._prepare(input, config, thread_id, context, interrupt_before, interrupt_after, durability)
        return stream_sync(partial(self._run, call), stream_mode or "updates", False, subgraphs, version, GraphSink)

    def astream(
        self,
        input: InputT | Command[Any] | None,
        config: Mapping[str, Any] | None = None,
        *,
        context: ContextT | None = None,
        stream_mode: StreamMode | Sequence[StreamMode] | None = None,
        interrupt_before: Literal["*"] | Sequence[str] | None = None,
        interrupt_after: Literal["*"] | Sequence[str] | None = None,
        durability: Durability = "sync",
        subgraphs: bool = False,
        version: Literal["v1", "v2"] = "v1",
        thread_id: str | uuid.UUID | None = None,
    ) -> AsyncIterator[Any]:
        """Async `stream`."""
        _check_version(version)

        async def run(sink: GraphSink) -> Any:
            call = await _to_thread(
                self._prepare, input, config, thread_id, context, interrupt_before, interrupt_after, durability
            )
            return await self._arun(call, sink)

        return stream_async(run, stream_mode or "updates", False, subgraphs, version, GraphSink)

    def submit(self, input: InputT, config: Mapping[str, Any] | None = None, *,
               thread_id: str | uuid.UUID | None = None) -> str:  # fmt: skip
        """Record a run with ``input`` for a `durable.Worker` to carry; returns the thread id."""
        if input is None or isinstance(input, Command):
            raise UsageError("submit() starts a new run with new input: resume a thread with invoke(None, config)")
        return self.entrypoint.submit(input, config, thread_id=thread_id)

    def cancel(self, config: Mapping[str, Any] | None = None, *, thread_id: str | uuid.UUID | None = None) -> bool:
        """Cancel the thread's unfinished run (see `Entrypoint.cancel`)."""
        return self.entrypoint.cancel(config, thread_id=thread_id)

    def plan(
        self,
        input: InputT | Command[Any] | None,
        config: Mapping[str, Any] | None = None,
        *,
        context: ContextT | None = None,
        interrupt_before: Literal["*"] | Sequence[str] | None = None,
        interrupt_after: Literal["*"] | Sequence[str] | None = None,
        thread_id: str | uuid.UUID | None = None,
    ) -> ResumePlan:
        """What `invoke` (with the same arguments) would do on the thread now, without doing it: no node runs,
        nothing is written (see `durable.Entrypoint.plan`)."""
        from .._dry import ResumePlan

        call = self._prepare(input, config, thread_id, context, interrupt_before, interrupt_after, "sync")
        if call.done is not None:
            return ResumePlan(call.thread_id, self.entrypoint.name, "completed", "returns", output=call.done)
        token = invocation.set(call.given)
        try:
            return self.entrypoint._plan(call.input, call.thread_id, call.env)
        finally:
            invocation.reset(token)

    # -- reading and changing state ------------------------------------------------------------------------

    def get_state(self, config: Mapping[str, Any], *, subgraphs: bool = False) -> ThreadState:
        """The thread's state now (or at the config's ``checkpoint_id``): ``values``, ``next``, ``tasks``
        (with pending ``interrupts`` or the ``error`` of a failed node), ``interrupts``, ``config``..."""
        from ._snapshot import snapshot_at, state_now

        tid = _thread_id(None, config)
        wanted = _checkpoint(config)
        if wanted is not None:
            return snapshot_at(self, tid, wanted)
        return state_now(self, tid)

    async def aget_state(self, config: Mapping[str, Any], *, subgraphs: bool = False) -> ThreadState:
        """Async `get_state` (the reads run in a worker thread)."""
        state: ThreadState = await _to_thread(self.get_state, config, subgraphs=subgraphs)
        return state

    def get_state_history(
        self,
        config: Mapping[str, Any],
        *,
        filter: Mapping[str, Any] | None = None,
        before: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> Iterator[ThreadState]:
        """Every checkpoint of the thread, newest first: each superstep's, each input's and each update's.
        They are rebuilt from the journal (durable keeps each node's writes, not a copy of the state per
        step), so reading a long thread's whole history replays its writes once."""
        from ._snapshot import history

        found = history(self, _thread_id(None, config))
        stop = _checkpoint(before)
        if stop is not None:
            ids = [s.config["configurable"]["checkpoint_id"] for s in found]
            found = found[ids.index(stop) + 1 :] if stop in ids else []
        if filter:
            found = [s for s in found if all(s.metadata.get(k) == v for k, v in filter.items())]
        return iter(found if limit is None else found[:limit])

    async def aget_state_history(
        self,
        config: Mapping[str, Any],
        *,
        filter: Mapping[str, Any] | None = None,
        before: Mapping[str, Any] | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[ThreadState]:
        found = await _to_thread(lambda: list(self.get_state_history(config, filter=filter, before=before,
                                                                      limit=limit)))  # fmt: skip
        for snapshot in found:
            yield snapshot

    def update_state(self, config: Mapping[str, Any], values: Any, as_node: str | None = None) -> dict[str, Any]:
        """Change the state as node ``as_node`` would have by returning ``values`` (its reducers apply, its
        edges say what runs next); without ``as_node``, as the node that ran last. Journaled as a run of
        its own; returns the new checkpoint's config. The thread's last run must have finished or stopped
        at a breakpoint (`UnfinishedRunError` otherwise: answer its interrupt with ``Command(resume=...)``)."""
        from ._snapshot import restore_for

        tid = _thread_id(None, config, new=True)
        restore = restore_for(self, tid, _checkpoint(config))
        op = Op("update", values, as_node, (), restore)
        self.entrypoint._invoke(op.encode(), tid, "sync", None, env=self.entrypoint._env(None, tid, None))
        from ._snapshot import latest_config

        return latest_config(self, tid)

    async def aupdate_state(self, config: Mapping[str, Any], values: Any, as_node: str | None = None) -> dict[str, Any]:
        """Async `update_state`."""
        out: dict[str, Any] = await _to_thread(self.update_state, config, values, as_node)
        return out

    # -- internals -----------------------------------------------------------------------------------------

    def _prepare(
        self, input: Any, config: Mapping[str, Any] | None, thread_id: Any, context: Any,
        interrupt_before: Any, interrupt_after: Any, durability: Durability,
    ) -> _Invoke:  # fmt: skip
        """Decide what the invocation runs (reading the thread when ``None`` or a checkpoint asks to)."""
        from ._builder import _nodes_option
        from ._snapshot import restore_for, resume_or_done

        _check_durability(durability)
        tid = _thread_id(thread_id, config, new=input is not None and not isinstance(input, Command))
        env = self.entrypoint._env(_without_checkpoint(config), tid, context)
        before = None if interrupt_before is None else _nodes_option(interrupt_before, "interrupt_before")
        after = None if interrupt_after is None else _nodes_option(interrupt_after, "interrupt_after")
        restore = restore_for(self, tid, _checkpoint(config))
        given = Invocation(before, after)
        if isinstance(input, Command):
            if input.steers:
                if input.resume is not None:
                    raise ConfigurationError(
                        "Command(resume=..., update=/goto=...) on a graph: answer the interrupt with "
                        "Command(resume=...) and change the state with update_state() when the run has paused "
                        "at a breakpoint or finished; nothing was run"
                    )
                op = Op("command", input.update, None, _goto(input.goto), restore)
                return _Invoke(op.encode(), tid, durability, env, given)
            return _Invoke(input, tid, durability, env, given)
        if input is None:
            if restore is not None:
                return _Invoke(Op("resume", restore=restore).encode(), tid, durability, env, given)
            kind, done = resume_or_done(self, tid)
            if kind == "done":
                return _Invoke(None, tid, durability, env, given, done=done)
            if kind == "resume":
                return _Invoke(Op("resume").encode(), tid, durability, env, given)
            return _Invoke(None, tid, durability, env, given)
        return _Invoke(Op("input", input, restore=restore).encode(), tid, durability, env, given)

    def _run(self, call: _Invoke, sink: GraphSink | None) -> Any:
        if call.done is not None:
            return call.done
        token = invocation.set(call.given)
        try:
            out = self.entrypoint._invoke(call.input, call.thread_id, call.durability, sink, env=call.env)
        finally:
            invocation.reset(token)
        return self._finish(call, out, sink)

    async def _arun(self, call: _Invoke, sink: GraphSink | None) -> Any:
        if call.done is not None:
            return call.done
        token = invocation.set(call.given)
        try:
            out = await self.entrypoint._ainvoke(call.input, call.thread_id, call.durability, sink, env=call.env)
        finally:
            invocation.reset(token)
        return await _to_thread(self._finish, call, out, sink)

    def _finish(self, call: _Invoke, out: Any, sink: GraphSink | None) -> Any:
        """What ``invoke`` returns: the state; a paused run's state with its interrupts."""
        if not isinstance(out, Interrupted):
            return out
        machine = call.given.machine
        if machine is not None:
            values = self.core.output(machine)
        else:  # nothing ran (the run was paused already): read where it stopped
            from ._snapshot import state_now

            values = dict(state_now(self, call.thread_id).values)
        if sink is not None:
            emitter = call.given.emitter or Emitter(sink)  # none: nothing ran (the run was paused already)
            emitter.paused(out.interrupts, values)
        return _Paused(values, out.interrupts)

    def _shape(self, out: Any, version: str) -> Any:
        if isinstance(out, _Paused):
            if version == "v2":
                return GraphOutput(out.values, out.interrupts)
            return {**out.values, _INTERRUPT: list(out.interrupts)}
        return GraphOutput(out) if version == "v2" else out

    # -- as a subgraph -------------------------------------------------------------------------------------

    def _nested_invoke(self, input: Any, config: Mapping[str, Any], emitter: Emitter | None) -> Any:
        """Run inside a parent's node: its nodes are tasks of the parent node's task, journaled under it."""
        return drive(self._nested_core, graph_flow(self._nested_core, input, None, config, emitter))

    async def _nested_ainvoke(self, input: Any, config: Mapping[str, Any], emitter: Emitter | None) -> Any:
        return await adrive(self._nested_core, graph_flow(self._nested_core, input, None, config, emitter))


@dataclasses.dataclass(frozen=True)
class _Paused:
    values: dict[str, Any]
    interrupts: tuple[Interrupt, ...]


@dataclasses.dataclass
class _Invoke:
    """One invocation, decided: the run input (an input, an instruction, or ``None`` to resume)."""

    input: Any
    thread_id: str
    durability: Durability
    env: Any
    given: Invocation
    done: Any = None  # the thread needs no run: this is what invoke returns


def _nested_in_run(config: Mapping[str, Any] | None, thread_id: Any) -> Mapping[str, Any] | None:
    """The config of a subgraph call, when the graph is invoked inside a running graph's node (LangGraph's
    subgraph inside a node: it belongs to the run, whose thread its config names or leaves out); else None."""
    from .. import _context

    scope = _context.current.get()
    if scope is None or thread_id is not None:
        return None
    run = scope.run
    named = ((config or {}).get("configurable") or {}).get("thread_id")
    if named is not None and str(named) != run.thread_id:
        return None
    return config if config is not None else run.env.config


def _parent_emitter() -> Emitter | None:
    from ._node import current_node

    node = current_node.get()
    return node.subgraph() if node is not None else None


def _goto(goto: Any) -> tuple[Any, ...]:
    if isinstance(goto, str) or not isinstance(goto, Sequence):
        return (goto,) if goto else ()
    return tuple(goto)


def _checkpoint(config: Mapping[str, Any] | None) -> str | None:
    configurable = (config or {}).get("configurable") or {}
    found = configurable.get("checkpoint_id") if isinstance(configurable, Mapping) else None
    return None if found is None else str(found)


def _without_checkpoint(config: Mapping[str, Any] | None) -> Mapping[str, Any] | None:
    """The config nodes see: a time travel's checkpoint id is the graph's business, not theirs."""
    if _checkpoint(config) is None or config is None:
        return config
    configurable = {k: v for k, v in config["configurable"].items() if k != "checkpoint_id"}
    return {**config, "configurable": configurable}


async def _to_thread(fn: Any, *args: Any, **kwargs: Any) -> Any:
    import asyncio

    return await asyncio.to_thread(fn, *args, **kwargs)


# -- the entrypoint's body -------------------------------------------------------------------------------


def _run_flow(core: GraphCore, input: Any, previous: Any, config: Any) -> Any:
    """The graph's flow for the run in progress (streamed if the run is)."""
    from .. import _context

    scope = _context.current.get()
    assert scope is not None
    run = scope.run
    if previous is None and run.run_id > 1 and decode_op(input).restore is None:
        # Every graph run saves its state, and the next run starts from it: its absence is not "empty".
        raise IntegrityError(
            f"thread {run.thread_id!r}: run {run.run_id} has no state to start from, but the run before it saved "
            f"one: the journal was changed outside durable; restore it from a backup"
        )
    emitter = Emitter(run.sink) if isinstance(run.sink, GraphSink) else None
    return graph_flow(core, input, previous, config or {}, emitter, run.run_id)


def _body(core: GraphCore) -> Any:
    def graph(input: Any, *, previous: Any = None, config: Any = None) -> Any:
        return drive(core, _run_flow(core, input, previous, config))

    graph.__name__ = graph.__qualname__ = core.name
    return graph


def _abody(core: GraphCore) -> Any:
    async def graph(input: Any, *, previous: Any = None, config: Any = None) -> Any:
        return await adrive(core, _run_flow(core, input, previous, config))

    graph.__name__ = graph.__qualname__ = core.name
    return graph


# -- compiling ---------------------------------------------------------------------------------------------


def _core(builder: StateGraph[Any, Any, Any, Any], name: str, before: tuple[str, ...], after: tuple[str, ...],
          retry: Any, nested: bool) -> GraphCore:  # fmt: skip
    """Wire the builder's nodes and edges into channels and runners (LangGraph's compile, in durable's terms)."""
    channels: dict[str, Channel] = {k: c.fresh() for k, c in builder.channels.items()}
    channels[START] = Ephemeral(START, guard=True)
    channels[TASKS] = Tasks(TASKS)
    triggers: dict[str, list[str]] = {START: [START]}
    edge_writes: dict[str, list[tuple[str, Any]]] = {START: []}
    for node, spec in builder.nodes.items():
        trigger = branch_channel(node)
        channels[trigger] = DeferredTrigger(trigger) if spec.defer else Ephemeral(trigger)
        triggers[node] = [trigger]
        edge_writes[node] = []
    for start, end in sorted(builder.edges):
        if end != END:
            edge_writes[start].append((branch_channel(end), None))
    for starts, end in sorted(builder.waiting_edges):
        if end == END:
            continue
        key = f"join:{'+'.join(starts)}:{end}"
        channels[key] = Barrier(key, frozenset(starts), deferred=builder.nodes[end].defer)
        triggers[end].append(key)
        for start in starts:
            edge_writes[start].append((key, start))
    state_keys = tuple(builder.channels)
    plans: dict[str, NodePlan] = {
        START: NodePlan(START, (START,), tuple(builder._input.channels), (), tuple(edge_writes[START]), hidden=True)
    }
    for node, spec in builder.nodes.items():
        schema = spec.input_schema
        plans[node] = NodePlan(node, tuple(triggers[node]), tuple(schema.channels), tuple(schema.managed),
                               tuple(edge_writes[node]))  # fmt: skip
    plan = Plan(channels, plans, state_keys, dict(builder.managed))
    keys = frozenset(state_keys)
    messages = frozenset(k for k, c in builder.channels.items() if isinstance(c, Reduced) and _is_messages(c))
    nodes = frozenset(builder.nodes)
    runners: dict[str, Runner] = {}
    for node, nplan in plans.items():
        spec_ = builder.nodes.get(node)
        branches = tuple(builder.branches.get(node, {}).values())
        kind, is_async, injects = _kind(spec_.action) if spec_ is not None else ("start", False, ())
        runners[node] = Runner(
            name=node, spec=spec_, plan=nplan, branches=branches,
            branch_schema=spec_.input_schema if spec_ is not None else builder._state,
            input_schema=builder._input if spec_ is None else None,
            keys=keys, nodes=nodes, messages=messages, injects=injects, kind=kind, is_async=is_async,
            async_routes=any(b.is_async for b in branches),
        )  # fmt: skip
    has_async = any(r.is_async or r.async_routes or (r.kind == "graph" and r.spec is not None
                    and r.spec.action.core.has_async) for r in runners.values())  # fmt: skip
    output = tuple(builder._output.channels)
    return GraphCore(name, plan, runners, output, before, after, retry, has_async, nested)


def _is_messages(channel: Reduced) -> bool:
    from .message import is_add_messages

    return is_add_messages(channel.reducer)


def _kind(action: Any) -> tuple[str, bool, tuple[str, ...]]:
    """How a node's action is called: a subgraph, a LangChain runnable, or a function (sync or async)."""
    if isinstance(action, CompiledStateGraph):
        return "graph", False, ()
    fn = call_of(action)
    if not inspect.isroutine(action) and hasattr(action, "invoke") and (fn is None or hasattr(action, "ainvoke")):
        return "runnable", False, ()  # a LangChain runnable: invoke()/ainvoke() with the config
    is_async = inspect.iscoroutinefunction(action) or inspect.iscoroutinefunction(fn)
    try:
        params = inspect.signature(action).parameters
    except (TypeError, ValueError):
        params = {}  # type: ignore[assignment]
    return "function", is_async, tuple(p for p in _INJECTABLE if p in params)
