"""A graph run, written once as a flow of supersteps (`graph_flow`) and carried out by two thin drivers.

The flow decides; it does no I/O. It restores the state the thread's last run saved, applies what
the invocation brings (`Op`: new input, a resume, an update, a `Command`), then runs supersteps:
it yields the superstep's `Call`\\ s, and is sent back each call's `Outcome` (its journaled writes,
or its error). `drive` and `adrive` make each call a durable task of the running entrypoint (so a
node's result is one journal row, its nested tasks and interrupts are keyed under it, and a
replay returns it without running it) and wait for them, blocking or on the event loop.

A superstep whose nodes all finished before a crash replays from the journal; one that did not
runs its unfinished nodes from their beginning; its finished ones are not run again.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Generator, Mapping, Sequence
from contextvars import ContextVar
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple

from .. import _context
from .._core import Final
from .._flow import acarry, carry
from .._interrupts import Command, Pause, Send
from .._retry import Retry
from .._run import TaskSpec
from .._stream import call_id
from ..errors import GraphRecursionError, InvalidUpdateError, UsageError
from ._node import PARENT, ParentCommand, Runner, anode_task, decode, node_task
from ._pregel import INTERRUPT, START, Machine, Plan, Task, Write

if TYPE_CHECKING:
    from ._emit import Emitter, TaskEmitter

# LangGraph 1.x's default, and its variable to change it: a ported program stops where it stopped there.
DEFAULT_RECURSION_LIMIT = int(os.environ.get("LANGGRAPH_DEFAULT_RECURSION_LIMIT", "10007"))
OP_KEY = "__graph__"  # a run input that is an instruction to the graph, not the graph's input


@dataclass(frozen=True)
class GraphCore:
    """What a compiled graph's runs need: its wiring, its nodes as runners, its options."""

    name: str
    plan: Plan
    runners: Mapping[str, Runner]
    output_keys: tuple[str, ...]
    interrupt_before: tuple[str, ...] = ()
    interrupt_after: tuple[str, ...] = ()
    retry: Retry | None = None
    has_async: bool = False
    nested: bool = False  # a subgraph: runs inside its parent's node, has no checkpoint of its own
    specs: dict[tuple[str, str, bool], TaskSpec] = field(default_factory=dict, compare=False, repr=False)

    def output(self, machine: Machine) -> Any:
        return machine.values(self.output_keys)


# -- what an invocation brings ----------------------------------------------------------------------


@dataclass(frozen=True)
class Op:
    """A run's input, decoded: ``input`` (new input), ``resume`` (go on from where the graph stopped),
    ``update`` (``update_state``), ``command`` (a `Command` with ``update``/``goto``). ``restore`` is the
    saved state of an earlier checkpoint to start from instead of the thread's latest (time travel)."""

    kind: str
    value: Any = None
    as_node: str | None = None
    goto: tuple[Any, ...] = ()
    restore: Mapping[str, Any] | None = None

    def encode(self) -> Any:
        if self.kind == "input" and self.restore is None:
            return self.value
        data: dict[str, Any] = {"op": self.kind}
        if self.value is not None:
            data["value"] = self.value
        if self.as_node is not None:
            data["as_node"] = self.as_node
        if self.goto:
            data["goto"] = [[g.node, g.arg] if isinstance(g, Send) else g for g in self.goto]
        if self.restore is not None:
            data["restore"] = self.restore
        return {OP_KEY: data}


def decode_op(input: Any) -> Op:
    if isinstance(input, dict) and len(input) == 1 and OP_KEY in input:
        data = input[OP_KEY]
        goto = tuple(Send(g[0], g[1]) if isinstance(g, list) else g for g in data.get("goto", ()))
        return Op(data["op"], data.get("value"), data.get("as_node"), goto, data.get("restore"))
    return Op("input", input)


# -- the flow ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Call:
    """A task of the superstep, ready to run: the node, what it reads, the state it runs in, its journal key."""

    task: Task
    runner: Runner
    arg: Any
    config: Mapping[str, Any]  # the run's
    machine: Machine
    emitter: TaskEmitter | None = None
    step: int = 0  # the superstep it runs in
    stop: int = 0  # the superstep the recursion limit stops before (managed values read it)
    key: str = ""
    fresh: bool = True  # it will run now (it has no outcome in the journal to replay)
    ids: tuple[str, int] = ("", 0)  # its run's thread and number
    _node_config: dict[str, Any] | None = None

    @property
    def task_id(self) -> str:
        return call_id(self.ids[0], self.ids[1], self.key)

    def node_config(self) -> dict[str, Any]:
        """The config the node runs with (its ``config`` parameter, `get_config()`, a runnable's config): the
        run's, with LangGraph's metadata for this task (made on first use: most nodes never read it)."""
        found = self._node_config
        if found is None:
            config = self.config
            configurable = dict(config.get("configurable") or {})
            metadata = dict(config.get("metadata") or {})
            metadata.update((k, configurable[k]) for k in _PROPAGATED if configurable.get(k) is not None)
            ns = f"{self.task.name}:{self.task_id}"
            metadata.update(
                langgraph_step=self.step, langgraph_node=self.task.name, langgraph_triggers=self.task.triggers,
                langgraph_path=self.task.path, langgraph_checkpoint_ns=ns,
            )  # fmt: skip
            configurable["checkpoint_ns"] = ns
            found = self._node_config = {**config, "metadata": metadata, "configurable": configurable}
        return found


_PROPAGATED = ("thread_id", "checkpoint_id", "task_id", "run_id", "assistant_id", "graph_id")  # LangGraph's


class Outcome(NamedTuple):
    writes: list[Write] | None
    error: BaseException | None
    fresh: bool  # it ran now (not replayed from the journal)


Steps = Generator[list[Call], list[Outcome], Any]


@dataclass
class Invocation:
    """What one ``invoke`` of the top graph gives its run besides the input (its breakpoints), and where the
    run got to when it stopped (its state: a paused run's values are read from it)."""

    interrupt_before: tuple[str, ...] | None = None
    interrupt_after: tuple[str, ...] | None = None
    machine: Machine | None = None
    emitter: Emitter | None = None


invocation: ContextVar[Invocation | None] = ContextVar("durable_graph_invocation", default=None)


def graph_flow(core: GraphCore, input: Any, previous: Any, config: Mapping[str, Any],
               emitter: Emitter | None, run_id: int = 0) -> Steps:  # fmt: skip
    """Run ``run_id`` of the graph; returns ``Final(output, saved state)`` (or the output only, nested)."""
    op = decode_op(input)
    saved = op.restore if op.restore is not None else previous
    machine = Machine(core.plan, saved if isinstance(saved, Mapping) else None)
    before, after = core.interrupt_before, core.interrupt_after
    given = invocation.get() if not core.nested else None
    if given is not None:
        given.machine, given.emitter = machine, emitter
        before = given.interrupt_before if given.interrupt_before is not None else before
        after = given.interrupt_after if given.interrupt_after is not None else after
    limit = int(config.get("recursion_limit", DEFAULT_RECURSION_LIMIT))
    stop = machine.step + 1 + limit + 1
    if emitter is not None:
        emitter.begin(core, machine, op)
    if op.restore is not None and op.kind == "resume":
        machine.made(run_id, "fork", machine.step + 1)  # time travel: it goes on from a copy of the checkpoint
    if op.kind == "input":
        discarded = machine.next_tasks()  # new input drops what the last run left pending, as in LangGraph
        machine.apply_input([(START, op.value)], discarded)
        machine.made(run_id, "input", machine.step + 1)
    elif op.kind in ("resume", "command"):
        machine.pass_breakpoints()
        if op.kind == "command":
            command: Command[Any] = Command(update=op.value, goto=op.goto)
            call = Call(Task(START, (INTERRUPT, 0), ()), _as(core.runners[START], "command"), command, {}, machine)
            outcomes = yield _keyed_calls([call])
            machine.apply_input(_settle(core, [call], outcomes)[0][1])
            machine.made(run_id, "loop", machine.step)
    elif op.kind == "update":
        yield from _update(core, machine, op)
        machine.made(run_id, "update", machine.step + 1)
        if emitter is not None:
            emitter.stopped(machine, machine.next_tasks())
        return Final(core.output(machine), machine.save())
    else:
        raise InvalidUpdateError(f"this graph run has an instruction durable does not know: {op.kind!r}")
    while True:
        if machine.step + 1 > stop:
            raise GraphRecursionError(limit)
        tasks = machine.next_tasks()
        if not tasks:
            break
        if before and machine.breakpoint(before, tasks):
            return _stopped(core, machine, emitter, tasks)
        step = machine.step + 1
        calls = _keyed_calls([_call(core, machine, task, step, stop, config, emitter) for task in tasks])
        if emitter is not None:
            emitter.step(machine, calls)
        outcomes = yield calls
        try:
            done = _settle(core, calls, outcomes)
        except Pause:
            if emitter is not None and core.nested:  # a subgraph streams its own pause, in its namespace
                emitter.paused([o.error.interrupt for o in outcomes if isinstance(o.error, Pause)])
            raise
        machine.apply(done)
        machine.made(run_id, "loop", step)
        if emitter is not None:
            emitter.stepped(machine, any(o.fresh for o in outcomes))
        if after and machine.breakpoint(after, tasks):
            return _stopped(core, machine, emitter, machine.next_tasks())
    if emitter is not None:
        emitter.stopped(machine, [])
    if core.nested:
        return core.output(machine)
    return Final(core.output(machine), machine.save())


def _keyed_calls(calls: list[Call]) -> list[Call]:
    """Give each call the journal key the driver's task call will get, and say whether it will replay."""
    scope = _context.current.get()
    if scope is not None:
        run = scope.run
        replay, ids = run.replay, (run.thread_id, run.run_id)
        for i, call in enumerate(calls):
            call.key = key = f"{scope.prefix}{scope.n + i}"
            call.fresh = not replay.recorded(key)
            call.ids = ids
    return calls


def _stopped(core: GraphCore, machine: Machine, emitter: Emitter | None, tasks: list[Task]) -> Any:
    """A breakpoint: the run ends here, its state saved with the next tasks pending (``invoke(None)`` goes on)."""
    if core.nested:
        raise UsageError(
            f"subgraph {core.name!r} has interrupt_before/interrupt_after breakpoints: inside a parent graph, "
            f"pause with interrupt() in a node instead"
        )
    if emitter is not None:
        emitter.stopped(machine, tasks, breakpoint=True)
    return Final(core.output(machine), machine.save())


def _call(core: GraphCore, machine: Machine, task: Task, step: int, stop: int, config: Mapping[str, Any],
          emitter: Emitter | None) -> Call:  # fmt: skip
    runner = core.runners.get(task.name)
    if runner is None:
        raise InvalidUpdateError(f"a Send names node {task.name!r}, which this graph does not have")
    if task.push:
        arg = task.arg
    else:
        values = machine.task_input(task, stop)
        arg = values if runner.kind == "start" else runner.spec.input_schema.build(values)  # type: ignore[union-attr]
    child = emitter.child(task, step) if emitter is not None else None
    return Call(task, runner, arg, config, machine, child, step, stop)


def _settle(core: GraphCore, calls: Sequence[Call], outcomes: Sequence[Outcome]) -> list[tuple[Task, list[Write]]]:
    """The superstep's writes, once every task is done; the first error (or the pause) if any task had one."""
    done = []
    for call, outcome in zip(calls, outcomes, strict=True):
        if outcome.error is not None:
            errors = [o.error for o in outcomes if o.error is not None]
            raise next((e for e in errors if not isinstance(e, Pause)), errors[0])
        writes = outcome.writes or []
        if writes and writes[-1][0] == PARENT:  # `decode` puts a Command for the parent graph last
            if not core.nested:
                raise InvalidUpdateError(
                    f"node {call.task.name!r} returned Command(graph=Command.PARENT), but graph {core.name!r} runs "
                    f"at the top: there is no parent graph to send it to"
                )
            raise ParentCommand(writes[-1][1])
        done.append((call.task, writes))
    return done


def _update(core: GraphCore, machine: Machine, op: Op) -> Steps:
    """``update_state``: the node ``as_node`` (or the one that wrote last) writes ``value``, as if it had run."""
    as_node = op.as_node or infer_as_node(machine, core)
    runner = core.runners.get(as_node)
    if runner is None:
        raise InvalidUpdateError(f"update_state(as_node={as_node!r}): this graph has no node {as_node!r}")
    task = Task(as_node, (INTERRUPT, 0), (INTERRUPT,))
    call = Call(task, _as(runner, "start" if runner.kind == "start" else "update"), op.value, {}, machine)
    outcomes = yield _keyed_calls([call])
    machine.apply(_settle(core, [call], outcomes))


def _as(runner: Runner, kind: str) -> Runner:
    """The node's writers only, for a given value: what it would write had it returned it (it does not run)."""
    from dataclasses import replace

    return replace(runner, kind=kind, is_async=False, async_routes=runner.async_routes)


def infer_as_node(machine: Machine, core: GraphCore) -> str:
    """The node an update is applied as when none is named: the one that ran last (LangGraph's rule)."""
    seen = [(v, n) for n, s in machine.seen.items() if n in core.runners for v in s.values()]
    if not any(v for v, _ in seen):
        return START
    seen.sort()
    if len(seen) == 1 or seen[-1][0] != seen[-2][0]:
        return seen[-1][1]
    raise InvalidUpdateError(
        "Ambiguous update, specify as_node: several nodes wrote the state last; pass as_node='name'"
    )


# -- the drivers ------------------------------------------------------------------------------------


def _spec(call: Call, core: GraphCore, asynchronous: bool) -> tuple[TaskSpec, tuple[Any, ...]]:
    """The durable task that runs one call, and its arguments. A node's task takes the call itself (made once per
    node and driver); a cached node's takes its input, which its cache key is made from."""
    runner = call.runner
    node = runner.spec
    if node is None or node.cache is None:
        key = (runner.name, runner.kind, asynchronous)
        spec = core.specs.get(key)
        if spec is None:
            spec = core.specs[key] = _task_spec(runner, core, asynchronous, None)
        return spec, (call,)
    return _task_spec(runner, core, asynchronous, call), (call.arg,)


def _task_spec(runner: Runner, core: GraphCore, asynchronous: bool, cached: Call | None) -> TaskSpec:
    node = runner.spec
    run_async = asynchronous and (runner.is_async or runner.kind in ("graph", "runnable") or runner.async_routes)
    body = anode_task if run_async else node_task
    fn: Callable[..., Any] = partial(body, runner)
    if cached is not None:
        fn = _keyed(partial(fn, cached), run_async)
    return TaskSpec(
        name=runner.name,
        fn=fn,
        is_async=run_async,
        retry=(node.retry if node is not None else None) or core.retry,
        timeout=node.timeout if node is not None else None,
        cache=node.cache if node is not None else None,
        node=True,
    )


def _keyed(fn: Callable[..., Any], run_async: bool) -> Callable[..., Any]:
    """A cached node's task takes its input as an argument (the cache key is made from it) and ignores it."""
    if run_async:

        async def acached(_arg: Any) -> Any:
            return await fn()

        return acached

    def cached(_arg: Any) -> Any:
        return fn()

    return cached


def drive(core: GraphCore, flow: Steps) -> Any:
    """Carry a graph run out in a blocking run: each superstep's nodes as parallel durable tasks."""
    scope = _context.current.get()
    assert scope is not None
    return carry(flow, partial(_superstep, core, scope))


async def adrive(core: GraphCore, flow: Steps) -> Any:
    """Carry a graph run out on the event loop: async nodes as tasks, sync ones in worker threads."""
    scope = _context.current.get()
    assert scope is not None
    return await acarry(flow, partial(_asuperstep, core, scope))


def _superstep(core: GraphCore, scope: Any, calls: Sequence[Call]) -> list[Outcome]:
    """A superstep's nodes run; each one's outcome (a node's error is an outcome: the flow decides what it means)."""
    running = _running(scope.run, calls)
    outcomes = []
    for call, (fut, fresh) in zip(calls, _started(core, scope, calls, False), strict=True):
        try:
            outcomes.append(Outcome(_done(call, fut.result(), fresh), None, fresh))
        except BaseException as exc:
            outcomes.append(Outcome(None, exc, fresh))
        running.pop(call.key, None)
    return outcomes


async def _asuperstep(core: GraphCore, scope: Any, calls: Sequence[Call]) -> list[Outcome]:
    import asyncio

    running = _running(scope.run, calls)
    futures = _started(core, scope, calls, True)
    results = await asyncio.gather(*(_awaited(f) for f, _ in futures), return_exceptions=True)
    for call in calls:
        running.pop(call.key, None)
    return [
        Outcome(None, r, fresh) if isinstance(r, BaseException) else Outcome(_done(c, r, fresh), None, fresh)
        for c, r, (_, fresh) in zip(calls, results, futures, strict=True)
    ]


def _started(core: GraphCore, scope: Any, calls: Sequence[Call], in_loop: bool) -> list[tuple[Any, bool]]:
    """Call a superstep's nodes as durable tasks: each one's future, and whether it runs now (not replayed)."""
    futures = []
    for call in calls:
        spec, args = _spec(call, core, in_loop)
        fut = scope.run.call(spec, scope, args, {})
        futures.append((fut, not fut.done()))
    return futures


async def _awaited(fut: Any) -> Any:
    return await fut


def _running(run: Any, calls: Sequence[Call]) -> dict[str, Call]:
    """Register the calls about to run by key, for `get_config()` in their nodes (see `_runtime`)."""
    running: dict[str, Call] | None = run.calls
    if running is None:
        running = run.calls = {}
    for call in calls:
        running[call.key] = call
    return running


def _done(call: Call, result: Any, fresh: bool) -> list[Write]:
    """A call's writes; a call that should have run but did not start was served from the cache."""
    writes = decode(call.runner, result)
    emitter = call.emitter
    if fresh and emitter is not None and not emitter.key:
        emitter.cached(call, writes)
    return writes
