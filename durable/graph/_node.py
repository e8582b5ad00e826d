"""Running one node: call it, and turn what it returns into the writes its task journals.

A node's task returns its *writes*: the state keys it updates, then where it goes next (a
`Command`'s ``goto``, its plain edges and joins, then what its conditional edges decide). Routers
run here, in the node's task, on the state as the node's own writes leave it (LangGraph's "fresh"
read), so the route is journaled with the update: a replay follows the recorded route even if a
router is not deterministic. Messages for an `add_messages` key get their ids here too, for the
same reason.

Writes are journaled as plain lists (`encode`/`decode`), so a JSON journal can hold a graph whose
state is JSON: a `Send` becomes ``[node, arg]`` and a `Command` for the parent graph its fields.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from contextvars import ContextVar
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .._interrupts import Command, Send
from ..errors import InvalidUpdateError, UsageError
from ._builder import Branch, NodeSpec
from ._pregel import END, START, TASKS, NodePlan, Write, branch_channel
from ._schema import Schema, input_updates, updates_of

if TYPE_CHECKING:
    from ._emit import TaskEmitter
    from ._loop import Call

_VALUES = ("start", "update", "command")  # runner kinds whose "node" is the value it is given

# The node running in this context (its events' emitter): a subgraph invoked inside it runs as part of it.
current_node: ContextVar[TaskEmitter | None] = ContextVar("durable_graph_node", default=None)

PARENT = "__parent__"  # the write that carries a Command(graph=Command.PARENT) to the graph running this one


class ParentCommand(Exception):
    """A subgraph's node sent a `Command` to its parent: the parent's node that runs the subgraph takes it
    as its own return value."""

    def __init__(self, command: Command[Any]) -> None:
        super().__init__(command)
        self.command = command


@dataclass(frozen=True)
class Runner:
    """A node as its task runs it (``spec`` is ``None`` for START, which maps the input)."""

    name: str
    spec: NodeSpec | None
    plan: NodePlan
    branches: tuple[Branch, ...]
    branch_schema: Schema  # what its routers read
    input_schema: Schema | None  # START: the graph's input schema
    keys: frozenset[str]  # the state keys an update may write
    nodes: frozenset[str]  # where it may go
    messages: frozenset[str]  # keys reduced by add_messages: their messages get ids before journaling
    injects: tuple[str, ...]
    kind: str  # "function", "runnable", "graph"; or "start", "update", "command": writes of a given value
    is_async: bool
    async_routes: bool = False  # a conditional edge's router is a coroutine function

    # -- calling ----------------------------------------------------------------------------------------

    def call(self, call: Call, emitter: TaskEmitter | None) -> Any:
        """Call the node (sync). START, an update and a Command given to invoke are their own value."""
        arg = call.arg
        if self.kind in _VALUES:
            return arg
        assert self.spec is not None
        action = self.spec.action
        if self.kind == "graph":
            return action._nested_invoke(arg, call.node_config(), emitter.subgraph() if emitter is not None else None)
        if self.kind == "runnable":
            return action.invoke(arg, _langchain(call, emitter))
        if self.is_async:
            raise UsageError(
                f"node {self.name!r} is async: run the graph with ainvoke()/astream() (invoke() runs sync nodes only)"
            )
        return action(arg, **_injected(self, call)) if self.injects else action(arg)

    async def acall(self, call: Call, emitter: TaskEmitter | None) -> Any:
        """`call`, awaiting an async node (a sync one runs in a worker thread, off the event loop)."""
        arg = call.arg
        if self.kind in _VALUES:
            return arg
        assert self.spec is not None
        action = self.spec.action
        if self.kind == "graph":
            subgraph = emitter.subgraph() if emitter is not None else None
            return await action._nested_ainvoke(arg, call.node_config(), subgraph)
        if self.kind == "runnable":
            return await action.ainvoke(arg, _langchain(call, emitter))
        kwargs = _injected(self, call)
        if self.is_async:
            return await action(arg, **kwargs)
        import asyncio
        from contextvars import copy_context

        ctx = copy_context()
        return await asyncio.get_running_loop().run_in_executor(None, lambda: ctx.run(action, arg, **kwargs))

    # -- writes -----------------------------------------------------------------------------------------

    def updates(self, value: Any) -> tuple[list[Write], list[Any], Command[Any] | None]:
        """What the node returned, as its state writes, its `Command`'s routes (node names and `Send`\\ s) and
        a `Command` for the parent graph, if any."""
        if type(value) is dict and self.kind != "start" and not self.messages:  # the usual return: a plain update
            keys = self.keys
            return [(k, v) for k, v in value.items() if k in keys], [], None
        if self.kind == "start":
            assert self.input_schema is not None
            writes = input_updates(value, self.input_schema)
        elif self.kind == "command":
            writes = updates_of(Command(update=value.update), self.keys, START) if value.update is not None else []
        else:
            writes = updates_of(value, self.keys, self.name)
        if self.messages:
            from .message import with_ids

            writes = [(k, with_ids(v)) if k in self.messages else (k, v) for k, v in writes]
        routes: list[Any] = []
        parent = None
        for command in _commands(value):
            if command.graph == Command.PARENT:
                parent = command
            elif command.graph is not None:
                raise InvalidUpdateError(
                    f"node {self.name!r} returned Command(graph={command.graph!r}): use graph=Command.PARENT "
                    f"to send it to the parent graph, or leave graph out"
                )
            else:
                routes += self._routes(_as_list(command.goto), lambda: f"Command(goto=...) of node {self.name!r}")
        return writes, routes, parent

    def router_input(self, call: Call, writes: list[Write]) -> Any:
        """What a conditional edge reads: the state as this node's own writes leave it (LangGraph's fresh read)."""
        schema = self.branch_schema
        values = call.machine.fresh_values(schema.keys, writes)
        if schema.managed:
            call.machine.add_managed(values, tuple(schema.managed), call.stop)
        return schema.build(values)

    def route(self, branch: Branch, decided: Any) -> list[Any]:
        """The routes a router's decision names (node names and `Send`\\ s), checked against the graph."""
        results = decided if isinstance(decided, list | tuple) else (decided,)

        def where() -> str:  # only an error says where it happened
            return f"the conditional edge {getattr(branch.path, '__name__', 'path')!r} after {self.name!r}"

        ends = branch.ends
        if ends is not None:
            mapped: list[Any] = []
            for r in results:
                if isinstance(r, Send):
                    mapped.append(r)
                    continue
                try:
                    mapped.append(ends[r])
                except (KeyError, TypeError):
                    raise InvalidUpdateError(
                        f"{where()} returned {r!r}, which its path map {list(ends)} does not have"
                    ) from None
            results = mapped
        for r in results:
            if r is None or r == START:
                raise InvalidUpdateError(f"{where()} did not return a valid destination (got {list(results)!r})")
        return self._routes(results, where)

    def _routes(self, targets: Sequence[Any], where: Callable[[], str]) -> list[Any]:
        routes: list[Any] = []
        nodes = self.nodes
        for target in targets:
            if type(target) is str and target in nodes:
                routes.append(target)
            elif isinstance(target, Send):
                if target.node == END:
                    raise InvalidUpdateError(f"{where()}: cannot send a packet to the END node")
                if target.node not in nodes:
                    raise InvalidUpdateError(f"{where()}: Send to {target.node!r}, which is not a node of this graph")
                routes.append(target)
            elif target != END:
                raise InvalidUpdateError(
                    f"{where()} goes to {target!r}, which is not a node of this graph (nodes: {sorted(nodes)})"
                )
        return routes


def _commands(value: Any) -> list[Command[Any]]:
    if isinstance(value, Command):
        return [value]
    if isinstance(value, list | tuple):
        return [v for v in value if isinstance(v, Command)]
    return []


def _as_list(goto: Any) -> list[Any]:
    if isinstance(goto, str | Send):
        return [goto]
    return list(goto or ())


# -- one node's task ----------------------------------------------------------------------------------


# The two bodies differ only in calling (or awaiting) the node and its routers. They stay two plain functions: a
# node's task is the hot path of a graph, and one generator driven twice would cost more than these lines.


def node_task(runner: Runner, call: Call) -> list[Any]:
    """The body of a node's journaled task (sync): what it wrote and where it goes, encoded for the journal."""
    emitter = call.emitter
    if emitter is not None:
        emitter.started(call)
    try:
        try:
            value = runner.call(call, emitter)
        except ParentCommand as sent:  # a subgraph it ran sent this node a Command
            value = unparented(sent.command)
        writes, routes, parent = runner.updates(value)
        for branch in runner.branches:
            if branch.is_async:
                raise UsageError("a conditional edge's router is async: run the graph with ainvoke()/astream()")
            routes += runner.route(branch, branch.path(runner.router_input(call, writes)))
    except BaseException as exc:
        if emitter is not None:
            emitter.failed(call, exc)
        raise
    if emitter is not None:
        emitter.done(call, writes)
    return encode(writes, routes, parent)


async def anode_task(runner: Runner, call: Call) -> list[Any]:
    """The body of a node's journaled task (async): `node_task`, awaiting the node and its routers."""
    emitter = call.emitter
    if emitter is not None:
        emitter.started(call)
    try:
        try:
            value = await runner.acall(call, emitter)
        except ParentCommand as sent:
            value = unparented(sent.command)
        writes, routes, parent = runner.updates(value)
        for branch in runner.branches:
            decided = branch.path(runner.router_input(call, writes))
            routes += runner.route(branch, await decided if inspect.isawaitable(decided) else decided)
    except BaseException as exc:
        if emitter is not None:
            emitter.failed(call, exc)
        raise
    if emitter is not None:
        emitter.done(call, writes)
    return encode(writes, routes, parent)


def _langchain(call: Call, emitter: TaskEmitter | None) -> dict[str, Any]:
    """The config a LangChain runnable node is invoked with: the node's, with the message streamer when the run
    streams ``messages``."""
    config = call.node_config()
    lc = emitter.langchain(call) if emitter is not None else None
    return {**config, **lc} if lc else config


def _injected(runner: Runner, call: Call) -> dict[str, Any]:
    """The parameters a node function declared among ``config``, ``writer``, ``store``, ``runtime``."""
    if not runner.injects:
        return {}
    from .._runtime import Runtime, get_store, get_stream_writer

    out: dict[str, Any] = {}
    for name in runner.injects:
        if name == "config":
            out[name] = call.node_config()
        elif name == "writer":
            out[name] = get_stream_writer()
        elif name == "store":
            out[name] = get_store()
        elif name == "runtime":
            from .._runtime import get_runtime

            base: Runtime[Any] = get_runtime()
            out[name] = Runtime(base.context, base.store, get_stream_writer(), None)
    return out


def unparented(value: Any) -> Any:
    """A subgraph's Command(graph=PARENT), as the parent's node returns it: a plain Command to the parent."""
    if isinstance(value, Command) and value.graph == Command.PARENT:
        return Command(update=value.update, goto=value.goto)
    return value


# -- the journal's form of a node's result ----------------------------------------------------------------


def encode(writes: Sequence[Write], routes: Sequence[Any], parent: Command[Any] | None) -> list[Any]:
    """A node's result as the journal keeps it, plain data any serializer takes: ``[updates, routes]`` (and
    ``[update, goto]`` of a Command to the parent graph). Updates are a dict (pairs when a key is written
    twice); a route is a node name, or ``[node, arg]`` for a `Send`. Its edges' writes are not kept: they
    are the graph's, added back by `decode`."""
    updates: Any = dict(writes)
    if len(updates) != len(writes):  # a key written twice: its writes in order
        updates = [[k, v] for k, v in writes]
    encoded = [r if type(r) is str else [r.node, r.arg] for r in routes] if routes else []
    if parent is None:
        return [updates, encoded]
    goto = [[g.node, g.arg] if isinstance(g, Send) else g for g in _as_list(parent.goto)]
    return [updates, encoded, [parent.update, goto]]


def decode(runner: Runner, data: Sequence[Any]) -> list[Write]:
    """The writes a journaled node result makes: its updates, its routes, then its edges'."""
    updates, routes = data[0], data[1]
    writes: list[Write] = list(updates.items()) if type(updates) is dict else [(k, v) for k, v in updates]
    for route in routes:
        if type(route) is str:
            writes.append((branch_channel(route), None))
        else:
            writes.append((TASKS, Send(route[0], route[1])))
    edges = runner.plan.edge_writes
    if edges and runner.kind != "command":
        writes.extend(edges)
    if len(data) > 2:
        update, goto = data[2]
        goto = [Send(g[0], g[1]) if isinstance(g, list) else g for g in goto]
        writes.append((PARENT, Command(update=update, goto=goto, graph=Command.PARENT)))
    return writes
