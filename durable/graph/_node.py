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
from collections.abc import Callable, Generator, Sequence
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

    def call(self, arg: Any, kwargs: dict[str, Any], config: dict[str, Any], emitter: TaskEmitter | None) -> Any:
        """Call the node (sync). START, an update and a Command given to invoke are their own value."""
        if self.kind in _VALUES:
            return arg
        assert self.spec is not None
        action = self.spec.action
        if self.kind == "graph":
            return action._nested_invoke(arg, config, emitter.subgraph() if emitter is not None else None)
        if self.kind == "runnable":
            return action.invoke(arg, config)
        if self.is_async:
            raise UsageError(
                f"node {self.name!r} is async: run the graph with ainvoke()/astream() (invoke() runs sync nodes only)"
            )
        return action(arg, **kwargs)

    async def acall(self, arg: Any, kwargs: dict[str, Any], config: dict[str, Any], emitter: TaskEmitter | None) -> Any:
        if self.kind in _VALUES:
            return arg
        assert self.spec is not None
        action = self.spec.action
        if self.kind == "graph":
            return await action._nested_ainvoke(arg, config, emitter.subgraph() if emitter is not None else None)
        if self.kind == "runnable":
            return await action.ainvoke(arg, config)
        if self.is_async:
            return await action(arg, **kwargs)
        import asyncio
        from contextvars import copy_context

        ctx = copy_context()
        return await asyncio.get_running_loop().run_in_executor(None, lambda: ctx.run(action, arg, **kwargs))

    # -- writes -----------------------------------------------------------------------------------------

    def updates(self, value: Any) -> list[Write]:
        """The state writes (and the Command routes) of what the node returned, before its edges."""
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
        for command in _commands(value):
            if command.graph == Command.PARENT:
                writes.append((PARENT, command))
                continue
            if command.graph is not None:
                raise InvalidUpdateError(
                    f"node {self.name!r} returned Command(graph={command.graph!r}): use graph=Command.PARENT "
                    f"to send it to the parent graph, or leave graph out"
                )
            writes.extend(self._routes(_as_list(command.goto), f"Command(goto=...) of node {self.name!r}"))
        return writes

    def routes(
        self, fresh: Callable[[Sequence[str], Sequence[Write]], dict[str, Any]], writes: list[Write]
    ) -> Generator[Any, Any, list[Write]]:
        """The writes of its edges and its routers' decisions. Written once for both drivers: it yields each
        router's result (awaitable or `_Done`) and is sent the decision (`run_routes`, `arun_routes`)."""
        if self.kind == "command":  # a Command given to invoke goes where its goto says, nowhere else
            return []
        out = list(self.plan.edge_writes)
        for branch in self.branches:
            state = self.branch_schema.build(fresh(self.branch_schema.keys, writes))
            chosen = branch.path(state)
            decided = yield chosen if inspect.isawaitable(chosen) else _Done(chosen)
            out.extend(self._branch(branch, decided))
        return out

    def _branch(self, branch: Branch, decided: Any) -> list[Write]:
        results = decided if isinstance(decided, list | tuple) else [decided]
        where = f"the conditional edge {getattr(branch.path, '__name__', 'path')!r} after {self.name!r}"
        if branch.ends is not None:
            mapped: list[Any] = []
            for r in results:
                if isinstance(r, Send):
                    mapped.append(r)
                    continue
                try:
                    mapped.append(branch.ends[r])
                except (KeyError, TypeError):
                    raise InvalidUpdateError(
                        f"{where} returned {r!r}, which its path map {list(branch.ends)} does not have"
                    ) from None
            results = mapped
        if any(r is None or r == START for r in results):
            raise InvalidUpdateError(f"{where} did not return a valid destination (got {list(results)!r})")
        return self._routes(results, where)

    def _routes(self, targets: Sequence[Any], where: str) -> list[Write]:
        writes: list[Write] = []
        for target in targets:
            if isinstance(target, Send):
                if target.node == END:
                    raise InvalidUpdateError(f"{where}: cannot send a packet to the END node")
                if target.node not in self.nodes:
                    raise InvalidUpdateError(f"{where}: Send to {target.node!r}, which is not a node of this graph")
                writes.append((TASKS, target))
            elif target == END:
                continue
            elif isinstance(target, str) and target in self.nodes:
                writes.append((branch_channel(target), None))
            else:
                raise InvalidUpdateError(
                    f"{where} goes to {target!r}, which is not a node of this graph (nodes: {sorted(self.nodes)})"
                )
        return writes


class _Done:
    """A router's result that needs no awaiting."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value


def run_routes(gen: Any) -> list[Write]:
    """Drive `Runner.routes` with sync routers only."""
    try:
        step = next(gen)
        while True:
            if not isinstance(step, _Done):
                if hasattr(step, "close"):
                    step.close()  # the coroutine will never run: say so now, not in a warning at exit
                raise UsageError("a conditional edge's router is async: run the graph with ainvoke()/astream()")
            step = gen.send(step.value)
    except StopIteration as done:
        return list(done.value)


async def arun_routes(gen: Any) -> list[Write]:
    """Drive `Runner.routes`, awaiting async routers."""
    try:
        step = next(gen)
        while True:
            value = step.value if isinstance(step, _Done) else await step
            step = gen.send(value)
    except StopIteration as done:
        return list(done.value)


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


def node_task(runner: Runner, call: Call) -> list[Any]:
    """The body of a node's journaled task (sync): its writes, encoded for the journal."""
    emitter = call.emitter
    if emitter is not None:
        emitter.started(call)
    try:
        try:
            value = runner.call(call.arg, _injected(runner, call), call.config, emitter)
        except ParentCommand as sent:  # a subgraph it ran sent this node a Command
            value = unparented(sent.command)
        writes = runner.updates(value)
        writes += run_routes(runner.routes(call.machine.fresh_values, writes))
    except BaseException as exc:
        if emitter is not None:
            emitter.failed(call, exc)
        raise
    if emitter is not None:
        emitter.done(call, writes)
    return encode(writes)


async def anode_task(runner: Runner, call: Call) -> list[Any]:
    """The body of a node's journaled task (async)."""
    emitter = call.emitter
    if emitter is not None:
        emitter.started(call)
    try:
        try:
            value = await runner.acall(call.arg, _injected(runner, call), call.config, emitter)
        except ParentCommand as sent:
            value = unparented(sent.command)
        writes = runner.updates(value)
        writes += await arun_routes(runner.routes(call.machine.fresh_values, writes))
    except BaseException as exc:
        if emitter is not None:
            emitter.failed(call, exc)
        raise
    if emitter is not None:
        emitter.done(call, writes)
    return encode(writes)


def _injected(runner: Runner, call: Call) -> dict[str, Any]:
    """The parameters a node function declared among ``config``, ``writer``, ``store``, ``runtime``."""
    if not runner.injects:
        return {}
    from .._runtime import Runtime, get_store, get_stream_writer

    out: dict[str, Any] = {}
    for name in runner.injects:
        if name == "config":
            out[name] = call.config
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


# -- the journal's form of writes ---------------------------------------------------------------------


def encode(writes: Sequence[Write]) -> list[Any]:
    """Writes as plain lists: ``[channel, value]``; a Send's value ``[node, arg]``, a parent Command's its fields."""
    out: list[Any] = []
    for chan, value in writes:
        if chan == TASKS:
            value = [value.node, value.arg]
        elif chan == PARENT:
            goto = value.goto
            goto = [[g.node, g.arg] if isinstance(g, Send) else g for g in _as_list(goto)]
            value = [value.update, goto]
        out.append([chan, value])
    return out


def decode(data: Sequence[Any]) -> list[Write]:
    out: list[Write] = []
    for chan, value in data:
        if chan == TASKS:
            value = Send(value[0], value[1])
        elif chan == PARENT:
            goto = [Send(g[0], g[1]) if isinstance(g, list) else g for g in value[1]]
            value = Command(update=value[0], goto=goto, graph=Command.PARENT)
        out.append((chan, value))
    return out
