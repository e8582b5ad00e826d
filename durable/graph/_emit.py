"""A streamed graph run's events, in LangGraph's chunk shapes for graphs.

The flow (`_loop.graph_flow`) tells the `Emitter` where the run is: a superstep about to start, a
superstep applied, a breakpoint, the end. A node's own task tells it when the node starts and
finishes, so only nodes that run now are streamed: a node replayed from the journal runs nothing
and streams nothing, and a resumed run streams from where it goes on, as LangGraph's does from its
last checkpoint. The checkpoint of a superstep's start is held until one of its nodes really runs.

Chunks, per mode: ``values`` the state (output keys) after each superstep that ran; ``updates``
``{node: {key: value}}`` as each node finishes; ``tasks`` a node's start ``{"id", "name",
"input", "triggers"}`` and end ``{"id", "name", "error", "result", "interrupts"}``;
``checkpoints`` ``{"config", "parent_config", "values", "metadata", "next", "tasks"}`` at each
superstep's start; ``debug`` the last three wrapped as ``{"step", "timestamp", "type", "payload"}``.
A subgraph's events carry its namespace (``("node:<task id>",)``) and are streamed only with
``subgraphs=True``. ``custom`` and ``messages`` events go through the run's `Sink` as in the
Functional API.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .. import _context
from .._chunks import interrupt_dict
from .._stream import Namespace, Sink, call_id
from ._pregel import START

if TYPE_CHECKING:
    from ._loop import Call, GraphCore, Op
    from ._pregel import Machine, Task, Write


def checkpoint_id(run_id: int, step: int) -> str:
    """The id of a graph's checkpoint: the run that reached it and its superstep (``"3:5"``)."""
    return f"{run_id}:{step}"


def _now() -> str:
    return datetime.now(timezone.utc).isoformat()


class GraphSink(Sink):
    """The run's sink, with custom events placed in the namespace of the graph whose node sends them."""

    __slots__ = ("graph_modes", "spaces")

    def __init__(self, modes: frozenset[str], put: Any, replayed: bool = False, subgraphs: bool = False) -> None:
        super().__init__(modes, put, replayed, subgraphs)
        self.graph_modes = modes
        self.spaces: dict[str, Namespace] = {}  # the key of a node task running a subgraph -> its namespace
        # The graph streams its run, its supersteps and its nodes (see Emitter); the engine streams only the
        # tasks a node calls (their updates and task events, as LangGraph's push tasks) and custom events.
        self.values = self.checkpoints = self.runs = False

    def __call__(self, mode: str, chunk: Any) -> None:
        if mode not in self.modes:
            return
        scope = _context.current.get()
        body = scope.prefix[:-1] if scope is not None and scope.run.sink is self else ""
        ns = self.space_of(body)
        if ns and not self.subgraphs:
            return
        self.put((mode, chunk, ns))

    def task_ns(self, key: str) -> Namespace | None:
        """A task a node calls streams in the namespace of the graph that node belongs to."""
        ns = self.space_of(key.rpartition(".")[0])
        return ns if not ns or self.subgraphs else None

    def space_of(self, key: str) -> Namespace:
        spaces = self.spaces
        while key and spaces:
            found = spaces.get(key)
            if found is not None:
                return found
            key = key.rpartition(".")[0]
        return ()


class Emitter:
    """Streams one graph's run (the top graph's, or a subgraph's inside a node, with its namespace)."""

    def __init__(self, sink: GraphSink, ns: Namespace = ()) -> None:
        self.sink = sink
        self.ns = ns
        modes = sink.graph_modes
        self.values, self.updates = "values" in modes, "updates" in modes
        self.tasks, self.checkpoints, self.debug = "tasks" in modes, "checkpoints" in modes, "debug" in modes
        self.shown = not ns or sink.subgraphs
        self.thread_id, self.run_id = "", 0
        self.live = False  # a node of this run has really run (what comes before was replayed)
        self.replayed = False  # a superstep of this run was replayed from the journal
        self.held: list[tuple[str, Any]] = []  # a paused node's result, streamed after the pause's chunks
        self.core: GraphCore | None = None
        self.resumed = False

    # -- the flow's events --------------------------------------------------------------------------------

    def begin(self, core: GraphCore, machine: Machine, op: Op) -> None:
        self.core = core
        scope = _context.current.get()
        if scope is not None:
            self.thread_id, self.run_id = scope.run.thread_id, scope.run.run_id
        self.resumed = op.kind != "input"

    def step(self, machine: Machine, calls: Sequence[Call]) -> None:
        """A superstep is about to run ``calls``: the checkpoint of the state they run from, and their starts.
        A superstep whose calls all replay from the journal streams nothing (it ran before)."""
        if not self.shown or not any(c.fresh for c in calls):
            self.replayed = True
            return
        assert self.core is not None
        if not self.live and (self.resumed or self.replayed) and self.values:
            self._put("values", self.core.output(machine))  # a resumed run first streams where it goes on from
        self.live = True
        if self.checkpoints or self.debug:
            chunk = self._checkpoint_chunk(machine, [c.task.name for c in calls], calls)
            if self.checkpoints:
                self._put("checkpoints", chunk)
            if self.debug:
                self._put("debug", {"step": machine.step, "timestamp": _now(), "type": "checkpoint", "payload": chunk})
        if self.tasks or self.debug:
            for call in calls:
                if call.fresh and call.task.name != START:
                    task = {"id": call_id(self.thread_id, self.run_id, call.key), "name": call.task.name,
                            "input": call.arg, "triggers": call.task.triggers}  # fmt: skip
                    if self.tasks:
                        self._put("tasks", task)
                    if self.debug:
                        self._put("debug", {"step": machine.step + 1, "timestamp": _now(), "type": "task",
                                            "payload": task})  # fmt: skip

    def stepped(self, machine: Machine, fresh: bool) -> None:
        """A superstep was applied; ``fresh``: some of its nodes ran now (else it was replayed)."""
        if fresh and self.values and self.shown:
            assert self.core is not None
            self._put("values", self.core.output(machine))

    def stopped(self, machine: Machine, tasks: Sequence[Task], breakpoint: bool = False) -> None:
        """The run ends (or stops at a breakpoint before ``tasks``): its last checkpoint."""
        if not self.shown:
            return
        if self.checkpoints or self.debug:
            chunk = self._checkpoint_chunk(machine, [t.name for t in tasks])
            if self.checkpoints:
                self._put("checkpoints", chunk)
            if self.debug:
                self._put("debug", {"step": machine.step, "timestamp": _now(), "type": "checkpoint", "payload": chunk})
        if breakpoint and self.updates:
            self._put("updates", {"__interrupt__": ()})

    def paused(self, interrupts: Sequence[Any], values: Any = None) -> None:
        """The graph's nodes paused: its ``{"__interrupt__": ...}`` update, its state with them (the top graph's),
        then its paused nodes' results, in LangGraph's order."""
        if self.updates and self.shown:
            self._put("updates", {"__interrupt__": tuple(interrupts)})
        if values is not None and self.values and self.shown:
            self._put("values", {**values, "__interrupt__": tuple(interrupts)})
        held, self.held = self.held, []
        for mode, chunk in held:
            self._put(mode, chunk)

    # -- a node's events ----------------------------------------------------------------------------------

    def child(self, task: Task, step: int) -> TaskEmitter:
        return TaskEmitter(self, task, step)

    # -- helpers --------------------------------------------------------------------------------------------

    def _put(self, mode: str, chunk: Any) -> None:
        self.sink.emit(mode, chunk, self.ns)

    def _checkpoint_chunk(self, machine: Machine, names: list[str],
                          calls: Sequence[Call] = ()) -> dict[str, Any]:  # fmt: skip
        cid = machine.id or checkpoint_id(self.run_id, machine.step)
        parent = machine.parent
        tasks = [
            {"id": call_id(self.thread_id, self.run_id, c.key) if c.key else "", "name": c.task.name,
             "interrupts": (), "state": None}
            for c in calls
        ] if calls else [{"id": "", "name": n, "interrupts": (), "state": None} for n in names]  # fmt: skip
        assert self.core is not None
        return {
            "config": _config(self.thread_id, cid),
            "parent_config": _config(self.thread_id, parent) if parent else None,
            "values": self.core.output(machine),
            "metadata": {"source": machine.source, "step": machine.step, "parents": {}},
            "next": names,
            "tasks": tasks,
        }


def _config(thread_id: str, cid: str) -> dict[str, Any]:
    return {"configurable": {"checkpoint_ns": "", "thread_id": thread_id, "checkpoint_id": cid}}


class TaskEmitter:
    """The events of one node's run, and the emitter of a subgraph it runs (namespaced under the node)."""

    def __init__(self, graph: Emitter, task: Task, step: int) -> None:
        self.graph = graph
        self.task = task
        self.step = step
        self.key = ""  # set when the node starts running (a cache hit never starts it)
        self._streamer: Any = None  # with "messages": the LangChain config the node's models stream under
        self._token: Any = None
        self._current: Any = None

    @property
    def hidden(self) -> bool:
        return self.task.name == START or not self.graph.shown

    def started(self, call: Call) -> None:
        """The node starts running (its start was streamed with its superstep's); a subgraph it invokes streams
        under it (`_node.current_node`) until it ends."""
        from ._node import current_node

        self.key = call.key
        self._current = current_node.set(self)
        config = self.langchain(call)
        if config is not None and call.runner.kind not in ("runnable", "start"):
            from .._messages import enter_node

            self._token = enter_node(self.graph.sink, config, call.arg)

    def langchain(self, call: Call) -> Any:
        """With ``stream_mode="messages"``: the LangChain config the node's models stream under (else None)."""
        sink = self.graph.sink
        if not sink.messages or not self.graph.shown:
            return None
        if self._streamer is None:
            from .._messages import node_config

            self._streamer = node_config(sink, call.node_config()["metadata"])
        return self._streamer

    def _ended(self) -> None:
        from ._node import current_node

        if self._current is not None:
            current_node.reset(self._current)
            self._current = None

    def _left(self, writes: Sequence[Write] | None) -> None:
        from .._messages import leave_node, node_returned

        if self._token is not None:
            leave_node(self._token)
            self._token = None
        if writes is not None and self._streamer is not None and not self.hidden:
            node_returned(self.graph.sink, self._streamer, dict(w for w in writes if not w[0].startswith("branch:")))

    def cached(self, call: Call, writes: Sequence[Write]) -> None:
        """The node's result came from the cache: its update, marked as LangGraph marks it."""
        graph = self.graph
        if self.hidden or not graph.updates:
            return
        keys = graph.core.plan.state_keys if graph.core is not None else ()
        graph._put("updates", {self.task.name: _update_of(writes, keys), "__metadata__": {"cached": True}})

    def done(self, call: Call, writes: Sequence[Write]) -> None:
        self._ended()
        graph = self.graph
        if self._streamer is not None:
            self._left(writes)
        if self.hidden:
            return
        keys = graph.core.plan.state_keys if graph.core is not None else ()
        update = _update_of(writes, keys)
        if graph.updates:
            graph._put("updates", {self.task.name: update})
        if graph.tasks or graph.debug:
            result = dict(w for w in writes if w[0] in keys)
            chunk: dict[str, Any] = {
                "id": self.id, "name": self.task.name, "error": None, "result": result, "interrupts": [],
            }  # fmt: skip
            self._task_event(chunk, "task_result")

    def failed(self, call: Call, error: BaseException) -> None:
        from .._interrupts import Pause

        self._ended()
        if self._streamer is not None:
            self._left(None)
        graph = self.graph
        if self.hidden or not (graph.tasks or graph.debug):
            return
        chunk: dict[str, Any]
        if isinstance(error, Pause):  # streamed after the pause's own chunks (`Emitter.paused`)
            asked = [interrupt_dict(error.interrupt)]
            chunk = {"id": self.id, "name": self.task.name, "error": None, "result": {}, "interrupts": asked}
            self._task_event(chunk, "task_result", hold=True)
            return
        chunk = {"id": self.id, "name": self.task.name, "error": error, "result": {}, "interrupts": []}
        self._task_event(chunk, "task_result")

    def subgraph(self) -> Emitter:
        """The emitter of a subgraph this node runs: its events (custom ones too) are in the node's namespace."""
        graph = self.graph
        ns = (*graph.ns, f"{self.task.name}:{self.id}")
        graph.sink.spaces[self.key] = ns
        return Emitter(graph.sink, ns)

    @property
    def id(self) -> str:
        return call_id(self.graph.thread_id, self.graph.run_id, self.key)

    def _task_event(self, chunk: dict[str, Any], kind: str, hold: bool = False) -> None:
        graph = self.graph
        put = graph.held.append if hold else (lambda event: graph._put(*event))
        if graph.tasks:
            put(("tasks", chunk))
        if graph.debug:
            put(("debug", {"step": self.step, "timestamp": _now(), "type": kind, "payload": chunk}))


def _update_of(writes: Sequence[Write], keys: Sequence[str]) -> Any:
    """A node's ``updates`` chunk: its state writes as a dict (``None`` if it wrote none); a key written
    twice makes a list of one-key dicts, as in LangGraph."""
    state = [(k, v) for k, v in writes if k in keys]
    if not state:
        return None
    names = [k for k, _ in state]
    if len(set(names)) != len(names):
        return [{k: v} for k, v in state]
    return dict(state)
