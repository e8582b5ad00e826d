"""The superstep machine: which nodes run next, and how their writes change the state. No I/O.

A graph runs in supersteps, as LangGraph's Pregel loop does. `Machine.next_tasks` lists the
tasks of the next superstep: every node with a trigger channel written since it last ran (a
*pull* task, reading the state) and one *push* task per `Send` packet (reading the packet's
argument). The tasks run side by side; `Machine.apply` then applies all their writes together,
in the tasks' path order (pull tasks by node name, then push tasks in packet order), so a
reducer folds parallel writes in the same order on every run and on every replay.

`Plan` is the compiled graph's wiring (channels, triggers, the writes each edge makes), shared by
every run; `Machine` is one run's state over it, saved at the run's end as plain data
(`Machine.save`) and restored at the next run's start. The engine drives it from the journal
(`_loop`); `get_state` drives it without running anything (`_snapshot`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._interrupts import Send
from ..errors import InvalidUpdateError
from ._channels import MISSING, Barrier, Channel, DeferredTrigger, Ephemeral, LastValue, Tasks

START = "__start__"
END = "__end__"
PULL = "__pregel_pull"
PUSH = "__pregel_push"
TASKS = "__pregel_tasks"
INTERRUPT = "__interrupt__"  # the versions a breakpoint has seen (LangGraph's name)
Write = tuple[str, Any]


def branch_channel(node: str) -> str:
    """The channel whose write triggers ``node`` in the next superstep."""
    return f"branch:to:{node}"


@dataclass(frozen=True)
class NodePlan:
    """How one node is wired: what triggers it, what it reads, what its edges write after it."""

    name: str
    triggers: tuple[str, ...]
    reads: tuple[str, ...]  # the state keys of its input schema
    managed: tuple[str, ...]  # its input schema's managed values (RemainingSteps...)
    edge_writes: tuple[Write, ...]  # its plain edges and joins
    hidden: bool = False  # START: not a node of the user's (no updates, no breakpoints)
    path: tuple[str, str] = field(init=False)  # its pull tasks' path
    sorted_triggers: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", (PULL, self.name))
        object.__setattr__(self, "sorted_triggers", tuple(sorted(self.triggers)))


@dataclass(frozen=True)
class Plan:
    """A compiled graph's wiring: its channels (empty, copied per run) and nodes."""

    channels: Mapping[str, Channel]
    nodes: Mapping[str, NodePlan]
    state_keys: tuple[str, ...]  # the state's channels, in schema order
    managed: Mapping[str, Any]  # the managed values (RemainingSteps...) by key
    trigger_to_nodes: Mapping[str, tuple[str, ...]] = field(init=False)
    # The channels a superstep that did not write them changes (they forget their value), and those the end
    # of a graph changes (deferred triggers and joins): the others need not be asked, every superstep.
    stepped: tuple[str, ...] = field(init=False)
    finishing: tuple[str, ...] = field(init=False)

    def __post_init__(self) -> None:
        found: dict[str, list[str]] = defaultdict(list)
        for node in self.nodes.values():
            for trigger in node.triggers:
                found[trigger].append(node.name)
        object.__setattr__(self, "trigger_to_nodes", {k: tuple(sorted(v)) for k, v in found.items()})
        kinds = self.channels.items()
        object.__setattr__(self, "stepped", tuple(k for k, c in kinds if isinstance(c, Ephemeral | Tasks)))
        finishing = tuple(
            k for k, c in kinds if isinstance(c, DeferredTrigger) or (isinstance(c, Barrier) and c.deferred)
        )
        object.__setattr__(self, "finishing", finishing)


class Task:
    """A task of a superstep: a node to run, on the state (pull) or on a `Send`'s argument (push)."""

    __slots__ = ("arg", "name", "path", "push", "triggers")

    def __init__(self, name: str, path: tuple[Any, ...], triggers: tuple[str, ...], arg: Any = MISSING) -> None:
        self.name = name
        self.path = path  # (PULL, name) or (PUSH, index)
        self.triggers = triggers
        self.arg = arg  # a push task's argument
        self.push = path[0] == PUSH

    def __repr__(self) -> str:
        return f"Task({self.name!r}, {self.path!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Task) and (self.name, self.path, self.triggers) == (other.name, other.path,
                                                                                      other.triggers)  # fmt: skip

    __hash__ = None  # type: ignore[assignment]

    @property
    def sort_key(self) -> str:
        # LangGraph's order (``task_path_str``): "~__pregel_pull, b" < "~__pregel_push, 0000000003".
        kind, last = self.path
        return f"~{kind}, {last:010d}" if isinstance(last, int) else f"~{kind}, {last}"


class Machine:
    """One run's channels, their versions and what each node has seen; ``step`` is the superstep."""

    def __init__(self, plan: Plan, saved: Mapping[str, Any] | None = None) -> None:
        self.plan = plan
        self.channels: dict[str, Channel] = {k: c.fresh() for k, c in plan.channels.items()}
        self.versions: dict[str, int] = {}
        self.seen: dict[str, dict[str, int]] = {}
        self.step = -2  # the superstep of the last checkpoint: a new thread's input is at -1, as in LangGraph
        self.updated: set[str] | None = None  # the channels the last apply changed (None: unknown)
        self.version = 0  # the highest channel version
        self.origin = 0  # the run that made this state (a checkpoint's id is its run and superstep)
        self.source = "input"  # what made it: "input", "loop" (a superstep), "update" (update_state), "fork"
        self.parent: str | None = None  # the checkpoint this one was made from
        if saved:
            self._restore(saved)

    # -- saving -----------------------------------------------------------------------------------------

    def save(self) -> dict[str, Any]:
        """The run's state as plain data (lists and dicts of strings and ints, and the state's values)."""
        values = {}
        for key, channel in self.channels.items():
            data = channel.save()
            if data is not MISSING:
                values[key] = data
        return {
            "v": 1, "run": self.origin, "source": self.source, "parent": self.parent, "step": self.step,
            "values": values, "versions": dict(self.versions), "seen": {k: dict(v) for k, v in self.seen.items()},
        }  # fmt: skip

    def _restore(self, saved: Mapping[str, Any]) -> None:
        if saved.get("v") != 1:
            raise InvalidUpdateError(f"this graph checkpoint has format {saved.get('v')!r}, which durable cannot read")
        self.step = int(saved["step"])
        self.origin = int(saved.get("run", 0))
        self.source = str(saved.get("source", "loop"))
        self.parent = saved.get("parent")
        self.versions = {k: int(v) for k, v in saved["versions"].items()}
        self.version = max(self.versions.values(), default=0)
        self.seen = {k: {c: int(n) for c, n in v.items()} for k, v in saved["seen"].items()}
        for key, data in saved["values"].items():
            channel = self.channels.get(key)
            if channel is not None:  # a key the graph no longer has is dropped
                channel.load(data)

    @property
    def id(self) -> str | None:
        """The id of the checkpoint this state is (``"<run>:<superstep>"``); ``None`` before the first one."""
        return f"{self.origin}:{self.step}" if self.origin else None

    def made(self, run_id: int, source: str, step: int) -> None:
        """This state is a new checkpoint, at superstep ``step``, made by run ``run_id`` from the one it was."""
        origin = self.origin
        self.parent = f"{origin}:{self.step}" if origin else None
        self.origin, self.source, self.step = run_id, source, step

    def copy(self) -> Machine:
        other = Machine(self.plan)
        other._restore(self.save())
        other.origin, other.source, other.parent = self.origin, self.source, self.parent
        other.updated = None if self.updated is None else set(self.updated)
        return other

    # -- reading ----------------------------------------------------------------------------------------

    def values(self, keys: Sequence[str] | None = None) -> dict[str, Any]:
        """The state keys that have a value."""
        out = {}
        channels = self.channels
        for key in self.plan.state_keys if keys is None else keys:
            channel = channels.get(key)
            if channel is not None and channel.value is not MISSING:  # a state key's channel has its value there
                out[key] = channel.value
        return out

    def fresh_values(self, keys: Sequence[str], writes: Sequence[Write]) -> dict[str, Any]:
        """The state as a node's own writes leave it (what its conditional edges read), others' not yet applied."""
        out = self.values(keys)
        touched: dict[str, list[Any]] = {}
        for chan, value in writes:
            if chan in out or chan in keys:
                found = touched.get(chan)
                if found is None:
                    touched[chan] = [value]
                else:
                    found.append(value)
        for key, values in touched.items():
            channel = self.channels[key]
            if type(channel) is LastValue and len(values) == 1:
                out[key] = values[0]
                continue
            channel = _copy(channel)
            channel.update(values)
            if channel.available():
                out[key] = channel.get()
        return out

    # -- planning ---------------------------------------------------------------------------------------

    def next_tasks(self) -> list[Task]:
        """The tasks of the next superstep, in path order (its journal keys follow it)."""
        tasks: list[Task] = []
        versions = self.versions
        if versions:
            plan = self.plan
            nodes, channels, seen_by = plan.nodes, self.channels, self.seen
            updated = self.updated
            if updated is None:
                candidates: Iterable[str] = sorted(nodes)
            else:
                to_nodes = plan.trigger_to_nodes
                found: list[str] = []
                for chan in updated:
                    names = to_nodes.get(chan)
                    if names:
                        found.extend(names)
                candidates = found if len(found) < 2 else sorted(set(found))
            for name in candidates:
                node = nodes[name]
                seen = seen_by.get(name)
                for chan in node.triggers:  # triggered: a trigger with a value written since the node last ran
                    if channels[chan].available() and (seen is None or versions.get(chan, 0) > seen.get(chan, 0)):
                        tasks.append(Task(name, node.path, node.sorted_triggers))
                        break
        packets = self.channels[TASKS]
        if packets.value is not MISSING and packets.value:
            for index, send in enumerate(packets.get()):
                tasks.append(Task(send.node, (PUSH, index), (PUSH,), send.arg))
        return tasks

    def task_input(self, task: Task, stop: int) -> Any:
        """What a pull task's node reads: its input keys that have a value, and its managed values."""
        node = self.plan.nodes[task.name]
        if not task.push and node.hidden:
            return self.channels[START].get()
        values = self.values(node.reads)
        if node.managed:
            self.add_managed(values, node.managed, stop)
        return values

    def add_managed(self, values: dict[str, Any], keys: Sequence[str], stop: int) -> None:
        """The managed values a node (or a router) reads in the next superstep (``RemainingSteps``...)."""
        for key in keys:
            managed = self.plan.managed.get(key)
            if managed is not None:
                values[key] = managed.compute(self.step + 1, stop)

    # -- applying ---------------------------------------------------------------------------------------

    def apply_input(self, writes: Sequence[Write], discarded: Sequence[Task] = ()) -> set[str]:
        """Writes from outside any node (the input, a Command); ``discarded``: tasks dropped unrun, whose
        triggers count as seen."""
        done: list[tuple[Task, Sequence[Write]]] = [(t, []) for t in discarded]
        return self._apply([(_INPUT_TASK, list(writes)), *done], bump=bool(discarded))

    def apply(self, done: Sequence[tuple[Task, Sequence[Write]]]) -> set[str]:
        """A superstep's writes, all together, in path order; returns the channels that changed."""
        if len(done) > 1:
            done = sorted(done, key=lambda d: d[0].sort_key)
        return self._apply(done, bump=True)

    def _apply(self, done: Sequence[tuple[Task, Sequence[Write]]], bump: bool) -> set[str]:
        channels, versions, plan, seen_by = self.channels, self.versions, self.plan, self.seen
        self.version = version = self.version + 1
        grouped: dict[str, list[Any]] = {}
        for task, writes in done:
            triggers = task.triggers
            if triggers and not task.push:
                seen = seen_by.get(task.name)
                if seen is None:
                    seen = seen_by[task.name] = {}
                for chan in triggers:
                    if chan in versions:
                        seen[chan] = versions[chan]
                    # Each trigger channel triggers one node, so no other task of the superstep reads it.
                    channel = channels.get(chan)
                    if channel is not None and channel.consume():
                        versions[chan] = version
            for chan, value in writes:
                found = grouped.get(chan)
                if found is None:
                    grouped[chan] = [value]
                else:
                    found.append(value)
        updated: set[str] = set()
        for chan, values in grouped.items():
            channel = channels.get(chan)
            if channel is None:
                raise InvalidUpdateError(f"a node wrote to {chan!r}, which this graph does not have")
            if channel.update(values):
                versions[chan] = version
                if channel.available():
                    updated.add(chan)
        if bump:
            # A superstep that did not write an ephemeral channel empties it (the others keep their value).
            for chan in plan.stepped:
                channel = channels[chan]
                if chan not in updated and channel.available() and channel.update(()):
                    versions[chan] = version
                    if channel.available():
                        updated.add(chan)
            if plan.finishing and updated.isdisjoint(plan.trigger_to_nodes):  # the graph would end
                for chan in plan.finishing:
                    channel = channels[chan]
                    if channel.finish():
                        versions[chan] = version
                        if channel.available():
                            updated.add(chan)
        self.updated = updated
        return updated

    # -- breakpoints ------------------------------------------------------------------------------------

    def breakpoint(self, nodes: tuple[str, ...], tasks: Sequence[Task]) -> list[Task]:
        """The tasks a breakpoint on ``nodes`` stops at, if the state changed since the last breakpoint."""
        if not nodes:
            return []
        seen = self.seen.get(INTERRUPT, {})
        if not any(v > seen.get(c, 0) for c, v in self.versions.items()):
            return []
        every = nodes == ("*",)
        return [t for t in tasks if (not self.plan.nodes[t.name].hidden if every else t.name in nodes)]

    def pass_breakpoints(self) -> None:
        """Mark the state as seen by breakpoints: the run that goes on from here does not stop again at once."""
        self.seen[INTERRUPT] = dict(self.versions)


_INPUT_TASK = Task("__input__", ("__input__", ""), ())


def _copy(channel: Channel) -> Channel:
    other = channel.fresh()
    data = channel.save()
    if data is not MISSING:
        other.load(data)
    elif isinstance(channel, Tasks):
        other.value = MISSING
    return other


def send_writes(sends: Iterable[Send]) -> list[Write]:
    return [(TASKS, s) for s in sends]
